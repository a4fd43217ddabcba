"""The envelope import of DESIGN.md on SQLite and PostgreSQL: idempotent by ref, refused whole."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from sqlalchemy import select

from bot.bootstrap import App, bootstrap
from core.clock import FixedClock
from core.envelopes import EnvelopeStatus, SignerStatus
from core.errors import DomainError, InvalidInput, NotFound
from core.importing import parse_import
from core.services import ImportResult
from storage.schema import metadata
from tests.conftest import START, make_settings
from tests.support.builders import Seeded, envelope_json, seed_account
from tests.support.databases import fresh_postgres, fresh_sqlite


def dump(app: App) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary key order: equal dumps mean nothing changed."""
    with app.engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in metadata.sorted_tables
        }


def do_import(app: App, raw: str | bytes | dict[str, Any]) -> ImportResult:
    """What `lacre envelopes import` does with the file's bytes."""
    data = raw if isinstance(raw, str | bytes) else json.dumps(raw, ensure_ascii=False)
    return app.lacre.import_envelopes(parse_import(data, app.lacre.phones))


def file_of(account_id: Any, *envelopes: dict[str, Any]) -> dict[str, Any]:
    return {"account_id": account_id, "envelopes": list(envelopes)}


def ids_of(app: App, account_id: int, ref: str) -> tuple[int, list[int], int]:
    """(envelope id, signer ids, version)."""
    with app.uow(write=False) as uow:
        env = uow.envelopes.get_by_ref(account_id, ref)
    assert env is not None and env.id is not None
    return env.id, [s.id or 0 for s in env.signers], env.version


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One database per engine for the module: each test works in an account of its own."""
    databases: AbstractContextManager[str] = (
        fresh_sqlite(tmp_path_factory.mktemp("import"))
        if request.param == "sqlite"
        else fresh_postgres()
    )
    with databases as url:
        built = bootstrap(make_settings(url), clock=FixedClock(START))
        yield built
        built.engine.dispose()


@pytest.fixture
def seeded(app: App) -> Seeded:
    """A new account that already holds ENV-9, so "unchanged" is about more than one row."""
    s = seed_account(app, credits=10)
    do_import(app, file_of(s.account.id, envelope_json("ENV-9", status="pendente")))
    return s


# -- idempotent by ref --------------------------------------------------------------------------


def test_an_import_creates_envelopes_with_their_documents_and_signers(
    app: App, seeded: Seeded
) -> None:
    result = do_import(app, file_of(seeded.account.id, envelope_json("ENV-1")))
    assert result == ImportResult(created=("ENV-1",))
    env = app.lacre.envelope(seeded.admin.id, ids_of(app, seeded.account.id, "ENV-1")[0])
    assert (env.title, env.description, env.status, env.quoted_credits) == (
        "Contrato de locação",
        "Apartamento 12",
        EnvelopeStatus.RASCUNHO,
        3,
    )
    assert env.expires_at is not None and env.expires_at.isoformat() == (
        "2026-12-10T21:00:00+00:00"
    )
    assert [(d.name, d.pages) for d in env.documents] == [("contrato.pdf", 4)]
    assert [(s.name, s.email, s.phone, s.order) for s in env.signers] == [
        ("Maria Souza", "maria@example.com", "+5511987654321", 0),
        ("João Lima", "joao@example.com", None, 0),
    ]


def test_a_second_import_updates_in_place_without_duplicating(app: App, seeded: Seeded) -> None:
    account = seeded.account.id
    do_import(app, file_of(account, envelope_json("ENV-1"), envelope_json("ENV-2")))
    env_id, signer_ids, version = ids_of(app, account, "ENV-1")
    changed = envelope_json("ENV-1", title="Contrato de locação — aditivo", credits=4)
    changed["signers"][0]["phone"] = "+55 21 99876-5432"
    result = do_import(app, file_of(account, changed, envelope_json("ENV-2")))
    assert result == ImportResult(updated=("ENV-1",), unchanged=("ENV-2",))
    assert ids_of(app, account, "ENV-1") == (env_id, signer_ids, version + 1)
    env = app.lacre.envelope(seeded.admin.id, env_id)
    assert (env.title, env.quoted_credits) == ("Contrato de locação — aditivo", 4)
    assert env.signers[0].phone == "+5521998765432"
    with app.engine.connect() as conn:
        envelopes = metadata.tables["envelopes"]
        refs = [
            r.ref
            for r in conn.execute(
                select(envelopes.c.ref)
                .where(envelopes.c.account_id == account)
                .order_by(envelopes.c.ref)
            )
        ]
    assert refs == ["ENV-1", "ENV-2", "ENV-9"]


def test_importing_the_same_file_again_reports_every_ref_unchanged_and_writes_nothing(
    app: App, seeded: Seeded
) -> None:
    data = file_of(
        seeded.account.id, envelope_json("ENV-1"), envelope_json("ENV-9", status="pendente")
    )
    do_import(app, data)
    before = dump(app)
    assert do_import(app, data) == ImportResult(unchanged=("ENV-1", "ENV-9"))
    assert dump(app) == before


def test_an_import_adds_and_removes_signers_keeping_the_ids_of_those_who_stay(
    app: App, seeded: Seeded
) -> None:
    account = seeded.account.id
    do_import(app, file_of(account, envelope_json("ENV-1")))
    _, (maria_id, _joao_id), _ = ids_of(app, account, "ENV-1")
    data = envelope_json("ENV-1")
    data["signers"] = [
        data["signers"][0],
        {"name": "Rita Alves", "email": "rita@example.com", "phone": "(21) 99876-5432"},
    ]
    assert do_import(app, file_of(account, data)).updated == ("ENV-1",)
    _, signer_ids, _ = ids_of(app, account, "ENV-1")
    assert signer_ids[0] == maria_id and len(signer_ids) == 2
    with app.uow(write=False) as uow:
        env = uow.envelopes.get_by_ref(account, "ENV-1")
    assert env is not None
    assert [s.email for s in env.signers] == ["maria@example.com", "rita@example.com"]


def test_a_signature_is_never_undone_by_an_import(app: App, seeded: Seeded) -> None:
    account = seeded.account.id
    app.lacre.record_signature("ENV-9", "maria@example.com", account)
    assert do_import(app, file_of(account, envelope_json("ENV-9", status="pendente"))) == (
        ImportResult(unchanged=("ENV-9",))
    )
    with app.uow(write=False) as uow:
        env = uow.envelopes.get_by_ref(account, "ENV-9")
    assert env is not None
    assert env.signer_by_email("maria@example.com").status is SignerStatus.ASSINADO


def test_status_moves_forward_by_import(app: App, seeded: Seeded) -> None:
    account = seeded.account.id
    do_import(app, file_of(account, envelope_json("ENV-1")))
    for status in ("pendente", "bloqueado", "cancelado"):
        result = do_import(app, file_of(account, envelope_json("ENV-1", status=status)))
        assert result.updated == ("ENV-1",)
    signed = envelope_json("ENV-9", status="concluído")
    for s in signed["signers"]:
        s["status"] = "assinado"
    assert do_import(app, file_of(account, signed)).updated == ("ENV-9",)
    with app.uow(write=False) as uow:
        statuses = [
            (e.ref, e.status)
            for ref in ("ENV-1", "ENV-9")
            if (e := uow.envelopes.get_by_ref(account, ref))
        ]
    assert statuses == [("ENV-1", EnvelopeStatus.CANCELADO), ("ENV-9", EnvelopeStatus.CONCLUIDO)]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("pendente", "rascunho"),
        ("cancelado", "pendente"),
        ("excluído", "rascunho"),
        ("bloqueado", "rascunho"),
        ("pendente", "excluído"),
    ],
)
def test_status_cannot_go_backwards_and_the_file_is_refused_whole(
    app: App, seeded: Seeded, first: str, then: str
) -> None:
    account = seeded.account.id
    do_import(app, file_of(account, envelope_json("ENV-1", status=first)))
    before = dump(app)
    with pytest.raises(InvalidInput) as refused:
        do_import(
            app,
            file_of(account, envelope_json("ENV-NEW"), envelope_json("ENV-1", status=then)),
        )
    assert str(refused.value).startswith("envelope ENV-1: status cannot go from")
    assert refused.value.data == {"ref": "ENV-1", "field": "status"}
    assert dump(app) == before


def test_the_same_ref_in_two_accounts_is_two_envelopes(app: App, seeded: Seeded) -> None:
    other = seed_account(app, name="Outra Imobiliária")
    assert do_import(app, file_of(other.account.id, envelope_json("ENV-9"))).created == ("ENV-9",)
    assert ids_of(app, other.account.id, "ENV-9")[0] != ids_of(app, seeded.account.id, "ENV-9")[0]


def test_an_envelope_can_name_its_creator_among_the_accounts_users(
    app: App, seeded: Seeded
) -> None:
    data = envelope_json("ENV-1", created_by=seeded.member.id)
    do_import(app, file_of(seeded.account.id, data))
    env_id = ids_of(app, seeded.account.id, "ENV-1")[0]
    assert app.lacre.envelope(seeded.member.id, env_id).created_by == seeded.member.id


def test_defaults_apply_to_every_optional_field(app: App, seeded: Seeded) -> None:
    minimal = {"ref": "ENV-MIN", "title": "Recibo"}
    assert do_import(app, file_of(seeded.account.id, minimal)).created == ("ENV-MIN",)
    env = app.lacre.envelope(seeded.admin.id, ids_of(app, seeded.account.id, "ENV-MIN")[0])
    assert (env.status, env.description, env.icp, env.ordered, env.expires_at) == (
        EnvelopeStatus.RASCUNHO,
        "",
        False,
        False,
        None,
    )
    assert (env.quoted_credits, env.documents, env.signers, env.tags) == (None, [], [], [])


# -- every bad input is refused whole, naming the envelope and field ----------------------------


def signer_patch(index: int, **fields: Any) -> dict[str, Any]:
    data = envelope_json("ENV-1")
    data["signers"][index].update(fields)
    return data


def ordered_with(order: Any) -> dict[str, Any]:
    data = envelope_json("ENV-1", ordered=True)
    data["signers"][1]["order"] = order
    return data


def without(field: str) -> dict[str, Any]:
    data = envelope_json("ENV-1")
    del data[field]
    return data


def signer_without(field: str) -> dict[str, Any]:
    data = envelope_json("ENV-1")
    del data["signers"][0][field]
    return data


def completed_with_a_pending_signer() -> dict[str, Any]:
    data = envelope_json("ENV-1", status="concluído")
    data["signers"][0]["status"] = "assinado"
    return data


BAD_ENVELOPES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, envelope, field, message after "envelope ENV-1: ")
    ("credits-string", envelope_json("ENV-1", credits="3"), "envelope.credits",
     "envelope.credits: expected int, got str"),
    ("credits-bool", envelope_json("ENV-1", credits=True), "envelope.credits",
     "envelope.credits: expected int, got bool"),
    ("credits-float", envelope_json("ENV-1", credits=2.5), "envelope.credits",
     "envelope.credits: expected int, got float"),
    ("credits-negative", envelope_json("ENV-1", credits=-1), "envelope.credits",
     "envelope.credits: must not be negative"),
    ("credits-too-many", envelope_json("ENV-1", credits=1_000_001), "envelope.credits",
     "envelope.credits: must be at most 1000000"),
    ("credits-huge", envelope_json("ENV-1", credits=10**12), "envelope.credits",
     "envelope.credits: is out of range"),
    ("order-bool", signer_patch(0, order=True), "signers[0].order",
     "signers[0].order: expected int, got bool"),
    ("order-below-0", ordered_with(-1), "signers[1].order", "signers[1].order: must be 0 or more"),
    ("order-too-far", ordered_with(1001), "signers[1].order",
     "signers[1].order: must be at most 1000"),
    ("order-huge", ordered_with(2**40), "signers[1].order", "signers[1].order: is out of range"),
    ("pages-huge", envelope_json("ENV-1", documents=[{"name": "a.pdf", "pages": 2**31}]),
     "documents[0].pages", "documents[0].pages: is out of range"),
    ("order-unordered", signer_patch(1, order=2), "signers[1].order",
     "signers[1].order: must be 0 when the envelope is not ordered"),
    ("icp-string", envelope_json("ENV-1", icp="sim"), "envelope.icp",
     "envelope.icp: expected bool, got str"),
    ("ordered-int", envelope_json("ENV-1", ordered=1), "envelope.ordered",
     "envelope.ordered: expected bool, got int"),
    ("title-number", envelope_json("ENV-1", title=42), "envelope.title",
     "envelope.title: expected str, got int"),
    ("title-blank", envelope_json("ENV-1", title="   "), "envelope.title",
     "envelope.title: must not be empty"),
    ("title-missing", without("title"), "envelope.title", "envelope.title: is required"),
    ("title-nul", envelope_json("ENV-1", title="Contrato\x00"), "envelope.title",
     "envelope.title: contains a control character"),
    ("title-too-long", envelope_json("ENV-1", title="x" * 301), "envelope.title",
     "envelope.title: longer than 300 characters"),
    ("description-surrogate", envelope_json("ENV-1", description="a\ud800b"),
     "envelope.description", "envelope.description: is not valid text"),
    ("status-unknown", envelope_json("ENV-1", status="assinado"), "envelope.status",
     "envelope.status: unknown status 'assinado'"),
    ("status-expirado", envelope_json("ENV-1", status="expirado"), "envelope.status",
     "envelope.status: unknown status 'expirado'"),
    ("status-number", envelope_json("ENV-1", status=2), "envelope.status",
     "envelope.status: expected str, got int"),
    ("phone-invalid", signer_patch(0, phone="12345"), "signers[0].phone",
     "signers[0].phone: '12345' is not a valid phone number"),
    ("phone-no-ddd", signer_patch(0, phone="98765-4321"), "signers[0].phone",
     "signers[0].phone: '98765-4321' has no area code (DDD)"),
    ("phone-old-8-digit-mobile", signer_patch(0, phone="(11) 8765-4321"), "signers[0].phone",
     "signers[0].phone: '(11) 8765-4321' is not a valid phone number"),
    ("phone-letters", signer_patch(0, phone="ligar depois"), "signers[0].phone",
     "signers[0].phone: 'ligar depois' is not a phone number"),
    ("phone-number-type", signer_patch(0, phone=11987654321), "signers[0].phone",
     "signers[0].phone: expected str, got int"),
    ("email-bad", signer_patch(0, email="maria.example.com"), "signers[0].email",
     "signers[0].email: 'maria.example.com' is not an e-mail address"),
    ("email-duplicate", signer_patch(1, email="MARIA@example.com"), "signers[1].email",
     "signers[1].email: appears twice in this envelope"),
    ("email-missing", signer_without("email"), "signers[0].email",
     "signers[0].email: is required"),
    ("signer-name-missing", signer_without("name"), "signers[0].name",
     "signers[0].name: is required"),
    ("signer-status-unknown", signer_patch(0, status="assinou"), "signers[0].status",
     "signers[0].status: unknown signer status 'assinou'"),
    ("signer-not-object", envelope_json("ENV-1", signers=["maria@example.com"]), "signers[0]",
     "signers[0]: expected an object"),
    ("signers-not-list", envelope_json("ENV-1", signers={"name": "Maria"}), "envelope.signers",
     "envelope.signers: expected list, got dict"),
    ("expires-naive", envelope_json("ENV-1", expires_at="2026-12-01T18:00:00"),
     "envelope.expires_at", "envelope.expires_at: expected an ISO 8601 date with its UTC offset"),
    ("expires-words", envelope_json("ENV-1", expires_at="amanhã"), "envelope.expires_at",
     "envelope.expires_at: expected an ISO 8601 date"),
    ("expires-number", envelope_json("ENV-1", expires_at=20261201), "envelope.expires_at",
     "envelope.expires_at: expected str, got int"),
    ("completed-with-pending-signer", completed_with_a_pending_signer(), "envelope.status",
     "envelope.status: concluído needs every signer to have signed"),
    ("completed-without-signers", envelope_json("ENV-1", status="concluido", signers=[]),
     "envelope.status", "envelope.status: concluído needs every signer to have signed"),
    ("draft-with-signature", signer_patch(0, status="assinado"), "envelope.signers",
     "envelope.signers: a draft cannot have signatures"),
    ("documents-string", envelope_json("ENV-1", documents="contrato.pdf"), "envelope.documents",
     "envelope.documents: expected list, got str"),
    ("pages-zero", envelope_json("ENV-1", documents=[{"name": "a.pdf", "pages": 0}]),
     "documents[0].pages", "documents[0].pages: must be at least 1"),
    ("pages-string", envelope_json("ENV-1", documents=[{"name": "a.pdf", "pages": "4"}]),
     "documents[0].pages", "documents[0].pages: expected int, got str"),
    ("document-unnamed", envelope_json("ENV-1", documents=[{"pages": 4}]), "documents[0].name",
     "documents[0].name: is required"),
    ("tags-numbers", envelope_json("ENV-1", tags=[1, 2]), "envelope.tags",
     "envelope.tags: expected a list of strings"),
    ("created-by-string", envelope_json("ENV-1", created_by="ana"), "envelope.created_by",
     "envelope.created_by: expected int, got str"),
    ("created-by-unknown", envelope_json("ENV-1", created_by=999_999), "created_by",
     "created_by is not a user of this account"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("envelope", "field", "message"),
    [case[1:] for case in BAD_ENVELOPES],
    ids=[case[0] for case in BAD_ENVELOPES],
)
def test_a_bad_envelope_is_refused_naming_its_ref_and_field_and_nothing_changes(
    app: App, seeded: Seeded, envelope: dict[str, Any], field: str, message: str
) -> None:
    good = envelope_json("ENV-GOOD")
    before = dump(app)
    with pytest.raises(InvalidInput) as refused:
        do_import(app, file_of(seeded.account.id, good, copy.deepcopy(envelope)))
    assert str(refused.value).startswith(f"envelope ENV-1: {message}")
    assert refused.value.data["ref"] == "ENV-1"
    assert refused.value.data["field"] == field
    assert refused.value.code == "invalid_input"
    assert dump(app) == before


def test_a_creator_from_another_account_is_refused(app: App, seeded: Seeded) -> None:
    stranger = seed_account(app, name="Outra").admin
    before = dump(app)
    with pytest.raises(InvalidInput) as refused:
        do_import(
            app,
            file_of(seeded.account.id, envelope_json("ENV-1", created_by=stranger.id)),
        )
    assert refused.value.data == {"ref": "ENV-1", "field": "created_by"}
    assert dump(app) == before


BAD_FILES: list[tuple[str, Any, str, str]] = [
    # (id, file, field, message start)
    ("malformed-json", '{"account_id": 1, "envelopes": [', "file",
     "the file is not valid JSON"),
    ("not-utf8", b'{"account_id": 1, "envelopes": ["\xff"]}', "file",
     "the file is not valid JSON"),
    ("not-an-object", "[]", "file", "file: expected an object"),
    ("account-missing", {"envelopes": []}, "file.account_id",
     "file.account_id: expected an account id"),
    ("account-words", {"account_id": "abc", "envelopes": []}, "file.account_id",
     "file.account_id: expected an account id"),
    ("account-bool", {"account_id": True, "envelopes": []}, "file.account_id",
     "file.account_id: expected an account id"),
    ("account-huge", {"account_id": 10**20, "envelopes": []}, "file.account_id",
     "file.account_id: expected an account id"),
    ("envelopes-missing", {"account_id": "{account}"}, "file.envelopes",
     "file.envelopes: is required"),
    ("envelopes-object", {"account_id": "{account}", "envelopes": {}}, "file.envelopes",
     "file.envelopes: expected list, got dict"),
    ("envelope-string", {"account_id": "{account}", "envelopes": ["ENV-1"]}, "envelopes[0]",
     "envelopes[0]: expected an object"),
    ("ref-missing", {"account_id": "{account}", "envelopes": [{"title": "x"}]},
     "envelopes[0].ref", "envelopes[0].ref: is required"),
    ("ref-too-long", {"account_id": "{account}", "envelopes": [envelope_json("E" * 65)]},
     "envelopes[0].ref", "envelopes[0].ref: longer than 64 characters"),
    ("duplicate-refs",
     {"account_id": "{account}", "envelopes": [envelope_json("ENV-1"), envelope_json("ENV-1")]},
     "ref", "envelope ENV-1: ref appears twice in the file"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_a_bad_file_is_refused_with_a_clear_message_and_nothing_changes(
    app: App, seeded: Seeded, raw: Any, field: str, message: str
) -> None:
    if isinstance(raw, dict) and raw.get("account_id") == "{account}":
        raw = {**raw, "account_id": seeded.account.id}
    before = dump(app)
    with pytest.raises(InvalidInput) as refused:
        do_import(app, raw)
    assert str(refused.value).startswith(message)
    assert refused.value.data["field"] == field
    assert dump(app) == before


def test_an_import_for_an_unknown_account_is_refused_and_nothing_changes(
    app: App, seeded: Seeded
) -> None:
    before = dump(app)
    with pytest.raises(NotFound) as refused:
        do_import(app, file_of(987_654, envelope_json("ENV-1")))
    assert str(refused.value) == "no account 987654"
    assert refused.value.data == {"what": "account", "id": 987_654}
    assert dump(app) == before


@pytest.mark.parametrize("bad_position", [0, 1, 2])
def test_two_good_envelopes_and_one_bad_write_nothing(
    app: App, seeded: Seeded, bad_position: int
) -> None:
    envelopes = [envelope_json("ENV-A"), envelope_json("ENV-B")]
    envelopes.insert(bad_position, envelope_json("ENV-BAD", credits="muitos"))
    before = dump(app)
    with pytest.raises(InvalidInput, match=r"envelope ENV-BAD: envelope\.credits"):
        do_import(app, file_of(seeded.account.id, *envelopes))
    assert dump(app) == before


def test_two_good_envelopes_and_one_refused_while_writing_write_nothing(
    app: App, seeded: Seeded
) -> None:
    # The third passes validation but is refused in the transaction, after two were added.
    backwards = envelope_json("ENV-9", status="rascunho")
    before = dump(app)
    with pytest.raises(DomainError, match="envelope ENV-9: status cannot go"):
        do_import(
            app,
            file_of(seeded.account.id, envelope_json("ENV-A"), envelope_json("ENV-B"), backwards),
        )
    assert dump(app) == before


def test_an_account_id_in_digits_and_a_utc_z_deadline_are_accepted(
    app: App, seeded: Seeded
) -> None:
    data = envelope_json("ENV-Z", expires_at="2026-12-01T18:00:00Z", status="PENDENTE")
    assert do_import(app, file_of(str(seeded.account.id), data)).created == ("ENV-Z",)
    env = app.lacre.envelope(seeded.admin.id, ids_of(app, seeded.account.id, "ENV-Z")[0])
    assert env.status is EnvelopeStatus.PENDENTE
    assert env.expires_at is not None and env.expires_at.isoformat() == "2026-12-01T18:00:00+00:00"
    with app.uow(write=False) as uow:  # importing charges nothing and sends nothing
        assert uow.notifications.for_envelope(env.id or 0) == []
    assert app.lacre.balances(seeded.account.id).credits == 30 + 10
