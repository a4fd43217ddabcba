"""Every `lacre` admin command through `bot.cli.main` on a real SQLite file, human and --json."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.bootstrap import bootstrap
from bot.cli import main
from bot.settings import Settings
from core.accounts import Role
from storage import migrate
from storage.db import make_engine, refresh_statistics
from tests.conftest import make_settings
from tests.support.builders import envelope_json
from tests.support.databases import fresh_postgres, fresh_sqlite


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Run]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[[Settings], Cli]:
    def bind(settings: Settings) -> Cli:
        def call(*argv: str) -> Run:
            code = main(list(argv), settings=settings)
            captured = capsys.readouterr()
            return Run(code, captured.out, captured.err)

        return call

    return bind


@pytest.fixture
def db_file(tmp_path: Path) -> Iterator[str]:
    with fresh_sqlite(tmp_path) as url:
        yield url


@pytest.fixture
def lacre(run: Callable[[Settings], Cli], db_file: str) -> Cli:
    """`lacre` on a migrated SQLite file."""
    return run(make_settings(db_file))


def new_account(lacre: Cli, *args: str) -> int:
    result = lacre("account", "create", "--name", "Imobiliária Sol", *args, "--json")
    assert result.code == 0, result.err
    account_id: int = result.json["account"]["id"]
    return account_id


def write_import(tmp_path: Path, account_id: int | str, *envelopes: dict[str, Any]) -> str:
    path = tmp_path / "envelopes.json"
    path.write_text(
        json.dumps({"account_id": account_id, "envelopes": list(envelopes)}, ensure_ascii=False),
        encoding="utf-8",
    )
    return str(path)


def execute(url: str, *statements: str, **params: Any) -> None:
    """Corrupt the database on purpose, behind the use cases' back."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.execute(text(sql), params)
    finally:
        engine.dispose()


# -- db upgrade ---------------------------------------------------------------------------------


def test_db_upgrade_migrates_an_empty_sqlite_file(
    run: Callable[[Settings], Cli], tmp_path: Path
) -> None:
    with fresh_sqlite(tmp_path, migrated=False) as url:
        lacre = run(make_settings(url))
        result = lacre("db", "upgrade", "--json")
        assert result.code == 0, result.err
        assert result.json["revisions"] == sorted(migrate.head_revisions())
        assert result.json["database"].endswith("lacre-test.db")
        engine = make_engine(url)
        assert migrate.is_current(engine) and migrate.drift(engine) == []
        engine.dispose()
        again = lacre("db", "upgrade")
        assert again.code == 0 and again.out.startswith("database sqlite:///")


def test_db_upgrade_migrates_an_empty_postgresql_database_and_hides_the_password(
    run: Callable[[Settings], Cli],
) -> None:
    with fresh_postgres(migrated=False) as url:
        secret_url = url.replace("postgres@", "postgres:s3cr3t@")
        result = run(make_settings(secret_url))("db", "upgrade", "--json")
        assert result.code == 0, result.err
        assert "s3cr3t" not in result.out and "***" in result.json["database"]
        engine = make_engine(url)
        assert migrate.is_current(engine) and migrate.drift(engine) == []
        engine.dispose()
        created = run(make_settings(url))("account", "create", "--name", "Sol", "--json")
        assert created.code == 0 and created.json["account"]["credits"] == 30


@pytest.mark.parametrize(
    "argv",
    [
        ("account", "create", "--name", "Sol"),
        ("account", "link", "1"),
        ("credits", "grant", "1", "--credits", "5"),
        ("credits", "show", "1"),
        ("signer", "sign", "ENV-1", "maria@example.com"),
        ("ledger", "audit"),
    ],
)
def test_every_command_on_a_database_not_yet_migrated_says_to_run_db_upgrade(
    run: Callable[[Settings], Cli], tmp_path: Path, argv: tuple[str, ...]
) -> None:
    with fresh_sqlite(tmp_path, migrated=False) as url:
        lacre = run(make_settings(url))
        result = lacre(*argv)
        assert result.code == 1
        assert result.out == ""
        assert result.err == "error: the database is not up to date: run `lacre db upgrade` first\n"
        as_json = lacre(*argv, "--json")
        assert as_json.code == 1
        assert as_json.json["error"]["code"] == "not_migrated"
        engine = make_engine(url)
        assert migrate.current_revisions(engine) == frozenset()  # nothing was created
        engine.dispose()


# -- accounts -----------------------------------------------------------------------------------


def test_account_create_prints_the_account_with_its_plan_credits(lacre: Cli) -> None:
    human = lacre("account", "create", "--name", "Escritório Lima", "--plan", "profissional")
    assert human.code == 0
    assert human.out == (
        "account 1 created: Escritório Lima (profissional, America/Sao_Paulo); "
        "credits 120, notification credits 5\n"
    )
    as_json = lacre(
        "account", "create", "--name", "Ana", "--plan", "pessoa-fisica",
        "--timezone", "America/Manaus", "--json",
    )  # fmt: skip
    account = as_json.json["account"]
    assert (account["id"], account["plan_code"], account["timezone"]) == (
        2,
        "pessoa-fisica",
        "America/Manaus",
    )
    assert (account["credits"], account["notification_credits"]) == (20, 5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--plan", "ouro"), "unknown plan 'ouro'; known plans: pessoa-fisica, essencial"),
        (("--timezone", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_account_create_with_a_bad_plan_or_time_zone_fails_and_creates_nothing(
    lacre: Cli, args: tuple[str, ...], message: str
) -> None:
    result = lacre("account", "create", "--name", "Sol", *args)
    assert result.code == 1 and message in result.err
    as_json = lacre("account", "create", "--name", "Sol", *args, "--json")
    assert as_json.json["error"]["code"] == "invalid_input"
    assert lacre("credits", "show", "1").code == 1  # no account 1 was made


def test_account_link_prints_a_one_time_token_and_the_deep_link(
    run: Callable[[Settings], Cli], db_file: str
) -> None:
    lacre = run(make_settings(db_file, telegram_bot_username="LacreBot"))
    account_id = new_account(lacre)
    result = lacre("account", "link", str(account_id), "--role", "admin", "--json")
    assert result.code == 0
    data = result.json
    assert (data["role"], data["expires_in_seconds"]) == ("admin", 900)
    assert data["link"] == f"https://t.me/LacreBot?start={data['token']}"
    assert len(data["token"]) >= 22
    human = lacre("account", "link", str(account_id))
    assert "as member, valid 15 minutes" in human.out
    assert "https://t.me/LacreBot?start=" in human.out


def test_account_link_without_a_bot_username_prints_the_start_command(lacre: Cli) -> None:
    account_id = new_account(lacre)
    result = lacre("account", "link", str(account_id))
    assert result.code == 0
    assert result.out.splitlines()[1].startswith("send the bot: /start ")
    assert lacre("account", "link", str(account_id), "--json").json["link"] is None


def test_account_link_for_an_unknown_account_fails(lacre: Cli) -> None:
    result = lacre("account", "link", "42", "--json")
    assert result.code == 1
    assert result.json["error"] == {
        "code": "not_found",
        "message": "no account 42",
        "data": {"what": "account", "id": 42},
    }


# -- credits ------------------------------------------------------------------------------------


def test_credits_grant_and_show_move_and_print_both_balances(lacre: Cli) -> None:
    account_id = new_account(lacre)
    granted = lacre(
        "credits", "grant", str(account_id), "--credits", "7",
        "--notification-credits", "3", "--reason", "cortesia", "--json",
    )  # fmt: skip
    assert granted.code == 0
    assert granted.json["balances"] == {"credits": 37, "notification_credits": 8}
    again = lacre("credits", "grant", str(account_id), "--credits", "1")
    assert again.out == f"account {account_id}: credits 38, notification credits 8\n"
    shown = lacre("credits", "show", str(account_id), "--json")
    assert shown.json == {
        "account_id": account_id,
        "balances": {"credits": 38, "notification_credits": 8},
    }
    assert lacre("ledger", "audit").code == 0


def test_credits_grant_of_nothing_fails_and_changes_nothing(lacre: Cli) -> None:
    account_id = new_account(lacre)
    result = lacre("credits", "grant", str(account_id))
    assert result.code == 1
    assert "nothing to grant: give --credits or --notification-credits" in result.err
    assert lacre("credits", "show", str(account_id), "--json").json["balances"] == {
        "credits": 30,
        "notification_credits": 5,
    }


def test_credits_for_an_unknown_account_fail(lacre: Cli) -> None:
    assert lacre("credits", "show", "99").err == "error: no account 99\n"
    assert lacre("credits", "grant", "99", "--credits", "1").code == 1


# -- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "the following arguments are required: command"),
        (("fly",), "invalid choice: 'fly'"),
        (("account", "create"), "the following arguments are required: --name"),
        (("account", "link", "abc"), "expected a whole number, got 'abc'"),
        (("account", "link", "0"), "expected a number above 0, got 0"),
        (("account", "link", "1", "--role", "owner"), "invalid choice: 'owner'"),
        (("credits", "grant", "1", "--credits", "-5"), "expected 0 or more, got -5"),
        (("credits", "grant", "1", "--credits", "2.5"), "expected a whole number, got '2.5'"),
        (("credits", "show"), "the following arguments are required: account_id"),
        (("envelopes", "import"), "the following arguments are required: file"),
        (("signer", "sign", "ENV-1"), "the following arguments are required: email"),
        (("ledger", "audit", "--fix"), "unrecognized arguments: --fix"),
    ],
)
def test_bad_arguments_exit_2_with_a_usage_message_and_touch_nothing(
    lacre: Cli, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        lacre(*argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage: lacre" in err


# -- envelopes import and signatures ------------------------------------------------------------


def test_envelopes_import_reports_created_then_updated_and_unchanged(
    lacre: Cli, tmp_path: Path
) -> None:
    account_id = new_account(lacre)
    path = write_import(tmp_path, account_id, envelope_json("ENV-1"), envelope_json("ENV-2"))
    first = lacre("envelopes", "import", path, "--json")
    assert first.code == 0, first.err
    assert first.json == {"created": ["ENV-1", "ENV-2"], "updated": [], "unchanged": []}
    path = write_import(
        tmp_path, account_id, envelope_json("ENV-1"), envelope_json("ENV-2", title="Aditivo")
    )
    second = lacre("envelopes", "import", path)
    assert second.out == "imported: 0 created, 1 updated, 1 unchanged\n"


def test_envelopes_import_of_a_bad_file_fails_naming_the_envelope_and_field(
    lacre: Cli, tmp_path: Path
) -> None:
    account_id = new_account(lacre)
    bad = envelope_json("ENV-7", credits="três")
    path = write_import(tmp_path, account_id, envelope_json("ENV-1"), bad)
    result = lacre("envelopes", "import", path, "--json")
    assert result.code == 1
    error = result.json["error"]
    assert error["code"] == "invalid_input"
    assert error["message"] == "envelope ENV-7: envelope.credits: expected int, got str"
    assert error["data"] == {"ref": "ENV-7", "field": "envelope.credits"}
    assert "ENV-7" in result.err
    retry = write_import(tmp_path, account_id, envelope_json("ENV-1"))
    assert lacre("envelopes", "import", retry, "--json").json["created"] == ["ENV-1"]


def test_envelopes_import_of_a_missing_file_fails_before_touching_the_database(
    lacre: Cli, tmp_path: Path
) -> None:
    result = lacre("envelopes", "import", str(tmp_path / "nope.json"), "--json")
    assert result.code == 1
    assert result.json["error"]["code"] == "file"
    assert "cannot read" in result.json["error"]["message"]
    assert "No such file or directory" in result.err


def test_envelopes_import_of_malformed_json_fails(lacre: Cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"account_id": 1, "envelopes": [', encoding="utf-8")
    result = lacre("envelopes", "import", str(path))
    assert result.code == 1
    assert result.err.startswith("error: the file is not valid JSON:")


def test_signer_sign_records_signatures_until_the_envelope_completes(
    lacre: Cli, tmp_path: Path
) -> None:
    account_id = new_account(lacre)
    path = write_import(tmp_path, account_id, envelope_json("ENV-1", status="pendente"))
    assert lacre("envelopes", "import", path).code == 0
    first = lacre("signer", "sign", "ENV-1", "MARIA@example.com", "--json")
    assert first.code == 0, first.err
    assert first.json == {"ref": "ENV-1", "status": "pendente"}
    last = lacre("signer", "sign", "ENV-1", "joao@example.com", "--account", str(account_id))
    assert last.out == "ENV-1: signature recorded; envelope is concluido\n"
    twice = lacre("signer", "sign", "ENV-1", "joao@example.com", "--json")
    assert twice.code == 1 and twice.json["error"]["code"] == "invalid_state"
    assert lacre("ledger", "audit").code == 0


@pytest.mark.parametrize(
    ("ref", "email", "message"),
    [
        ("ENV-404", "maria@example.com", "no envelope with ref 'ENV-404'"),
        ("ENV-1", "ninguem@example.com", "signer not found"),
    ],
)
def test_signer_sign_for_an_unknown_envelope_or_signer_fails(
    lacre: Cli, tmp_path: Path, ref: str, email: str, message: str
) -> None:
    account_id = new_account(lacre)
    lacre("envelopes", "import", write_import(tmp_path, account_id, envelope_json("ENV-1")))
    result = lacre("signer", "sign", ref, email, "--json")
    assert result.code == 1
    assert result.json["error"]["code"] == "not_found"
    assert message in result.json["error"]["message"]


# -- ledger audit -------------------------------------------------------------------------------


def sealed_account(lacre: Cli, tmp_path: Path, url: str) -> int:
    """An account (30 credits) whose envelope ENV-1 (3 credits) is sealed by a linked admin."""
    account_id = new_account(lacre)
    lacre("envelopes", "import", write_import(tmp_path, account_id, envelope_json("ENV-1")))
    app = bootstrap(make_settings(url))
    try:
        admin = app.lacre.link(
            app.lacre.create_link_token(account_id, Role.ADMIN), 555_001, "Ana Admin"
        )
        assert app.lacre.seal(admin.id, 1).charged == 3  # the file's first envelope
    finally:
        app.engine.dispose()
    return account_id


def test_ledger_audit_of_a_consistent_database_exits_0(
    lacre: Cli, tmp_path: Path, db_file: str
) -> None:
    sealed_account(lacre, tmp_path, db_file)
    human = lacre("ledger", "audit")
    assert (human.code, human.out) == (0, "ledger audit: every invariant holds\n")
    as_json = lacre("ledger", "audit", "--json")
    assert as_json.json == {"ok": True, "violations": []}


def test_ledger_audit_names_invariant_3_when_a_balance_is_edited_directly(
    lacre: Cli, tmp_path: Path, db_file: str
) -> None:
    account_id = sealed_account(lacre, tmp_path, db_file)
    execute(db_file, "UPDATE accounts SET credits = credits + 50 WHERE id = :a", a=account_id)
    result = lacre("ledger", "audit", "--json")
    assert result.code == 1
    assert result.json["ok"] is False
    assert result.json["violations"] == [
        {
            "invariant": 3,
            "check": "balance_equals_ledger_credits",
            "detail": f"{account_id}, 77, 27",
        }
    ]
    human = lacre("ledger", "audit")
    assert human.code == 1
    assert human.out.splitlines() == [
        "ledger audit: 1 violation(s)",
        f"  invariant 3 (balance_equals_ledger_credits): {account_id}, 77, 27",
    ]


def test_ledger_audit_names_invariant_2_when_a_seal_is_charged_twice(
    lacre: Cli, tmp_path: Path, db_file: str
) -> None:
    account_id = sealed_account(lacre, tmp_path, db_file)
    execute(
        db_file,
        "INSERT INTO ledger_entries (account_id, pool, amount, reason, idempotency_key, "
        "envelope_id, actor_user_id, note, created_at) VALUES "
        "(:a, 'credits', -3, 'seal', 'seal:1:replayed', 1, 1, '', '2026-11-27 12:00:00')",
        "UPDATE accounts SET credits = credits - 3 WHERE id = :a",
        a=account_id,
    )
    result = lacre("ledger", "audit", "--json")
    assert result.code == 1
    checks = {(v["invariant"], v["check"]) for v in result.json["violations"]}
    assert checks == {(2, "seal_charged_once")}


def test_ledger_audit_names_invariant_3_when_an_entry_is_deleted_behind_the_trigger(
    lacre: Cli, tmp_path: Path, db_file: str
) -> None:
    account_id = sealed_account(lacre, tmp_path, db_file)
    execute(
        db_file,
        "DROP TRIGGER ledger_entries_no_delete",
        "DELETE FROM ledger_entries WHERE reason = 'seal'",
    )
    result = lacre("ledger", "audit", "--json")
    assert result.code == 1
    assert {(v["invariant"], v["check"]) for v in result.json["violations"]} == {
        (3, "balance_equals_ledger_credits")
    }
    assert result.json["violations"][0]["detail"] == f"{account_id}, 27, 30"


def test_ledger_audit_names_invariant_6_for_a_paid_debit_nobody_confirmed(
    lacre: Cli, tmp_path: Path, db_file: str
) -> None:
    account_id = sealed_account(lacre, tmp_path, db_file)
    execute(
        db_file,
        "INSERT INTO ledger_entries (account_id, pool, amount, reason, idempotency_key, "
        "envelope_id, actor_user_id, note, created_at) VALUES "
        "(:a, 'credits', -2, 'icp', 'icp:ghost', 1, NULL, '', '2026-11-27 12:00:00')",
        "UPDATE accounts SET credits = credits - 2 WHERE id = :a",
        a=account_id,
    )
    result = lacre("ledger", "audit")
    assert result.code == 1
    assert "invariant 6 (paid_debit_has_authorised_actor)" in result.out


def test_a_cli_command_leaves_no_database_connection_open(
    run: Callable[[Settings], Cli],
) -> None:
    with fresh_postgres() as url:
        lacre = run(make_settings(url))
        name = url.rsplit("/", 1)[1]
        for _ in range(3):
            assert lacre("account", "create", "--name", "Sol").code == 0
            assert lacre("ledger", "audit").code == 0
        engine = create_engine(url)
        with engine.connect() as conn:
            others = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :name "
                    "AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).scalar_one()
        engine.dispose()
        assert others == 0


def test_a_large_import_refreshes_postgresqls_statistics_at_once(
    run: Callable[[Settings], Cli], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until autovacuum analyses the tables (about a minute), PostgreSQL plans an account's
    freshly imported list from the row counts of before. An import of `ANALYZE_AFTER`
    envelopes or more runs ANALYZE itself; a small one leaves it to autovacuum."""
    monkeypatch.setattr("bot.cli.ANALYZE_AFTER", 3)
    with fresh_postgres() as url:
        lacre = run(make_settings(url))
        account_id = new_account(lacre)
        engine = create_engine(url)

        def analysed() -> dict[str, bool]:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                        "WHERE relname IN ('envelopes', 'documents', 'signers')"
                    )
                )
                return {name: bool(done) for name, done in rows}

        try:
            small = write_import(tmp_path, account_id, envelope_json("ENV-1"))
            assert lacre("envelopes", "import", small).code == 0
            assert analysed() == {"envelopes": False, "documents": False, "signers": False}
            large = write_import(
                tmp_path, account_id, *(envelope_json(f"ENV-{i}") for i in range(2, 5))
            )
            assert lacre("envelopes", "import", large).out == (
                "imported: 3 created, 0 updated, 0 unchanged\n"
            )
            assert analysed() == {"envelopes": True, "documents": True, "signers": True}
        finally:
            engine.dispose()


def test_statistics_are_left_to_sqlite(db_file: str) -> None:
    engine = make_engine(db_file)
    try:
        assert refresh_statistics(engine) is False
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                ).scalar_one()
                == 0
            )
    finally:
        engine.dispose()
