"""Every prepared SELECT gives exactly what `Connection.execute` gives, on both databases.

The prepared path converts parameters and values with SQLAlchemy's own type processors; this
walks every `Prepared` of the repositories (and every list-query shape the bot builds) over
real rows and compares with the statement run the ordinary way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, insert, literal, select

from bot.bootstrap import App
from core.browse import Browse, Tab
from core.confirmations import Confirmations
from core.ledger import Pool
from core.notifications import Channel
from core.ports import EnvelopeQuery
from storage import repositories, repositories_bot
from storage.prepared import Prepared, PreparedWrite
from storage.repositories import envelopes, notifications
from tests.support.builders import envelope_json, import_envelopes, seed_account


def _all_prepared() -> list[tuple[str, Prepared]]:
    found: list[tuple[str, Prepared]] = []
    for module in (repositories, repositories_bot):
        for name, value in vars(module).items():
            if isinstance(value, Prepared):
                found.append((f"{module.__name__}.{name}", value))
            elif isinstance(value, dict):
                found += [
                    (f"{module.__name__}.{name}[{k!r}]", v)
                    for k, v in value.items()
                    if isinstance(v, Prepared)
                ]
    return found


def _browse(app: App) -> Browse:
    return Browse(app.uow, app.lacre, app.clock, app.lacre.catalogue)  # type: ignore[arg-type]


def _core(conn: Connection, prepared: Prepared, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(prepared.stmt, params)]


@pytest.fixture
def populated(app: App) -> dict[str, Any]:
    seeded = seed_account(app, credits=50, notification_credits=5)
    ids = import_envelopes(
        app,
        seeded.account.id,
        envelope_json("ENV-1"),
        envelope_json("ENV-2", status="pendente", title="Aditivo 50% (ação_1)"),
        envelope_json("ENV-3", status="cancelado", tags=["a", "b"]),
        envelope_json("ENV-4"),
    )
    admin = seeded.admin
    assert admin.telegram_user_id is not None
    browse = _browse(app)
    browse.set_language(admin.telegram_user_id, "es")
    app.lacre.seal(admin.id, ids["ENV-1"])
    with app.uow(write=False) as uow:
        env = uow.envelopes.get(ids["ENV-2"])
        assert env is not None
        signer = env.signers[0]
    assert signer.id is not None
    app.lacre.request_send(admin.id, ids["ENV-2"], signer.id, Channel.SMS, "k1")
    proposal = Confirmations(app.uow, app.lacre, app.clock).propose_seal(admin.id, ids["ENV-4"])
    return {
        "account_id": seeded.account.id,
        "user_id": admin.id,
        "tg": admin.telegram_user_id,
        "envelope_id": ids["ENV-2"],
        "ref": "ENV-2",
        "signer_id": signer.id,
        "channel": Channel.SMS.value,
        "key": f"seal:{ids['ENV-1']}",
        "nonce": proposal.confirmation.nonce,
        "since": app.clock.now() - timedelta(days=1),
        "created_by": None,
    }


def test_every_prepared_select_matches_core(app: App, populated: dict[str, Any]) -> None:
    # The list shapes the bot uses get built (and registered) by running them once.
    browse = _browse(app)
    with app.uow(write=False) as uow:
        for tab in Tab:
            if tab is not Tab.BUSCA:
                browse.listing(populated["user_id"], tab)
        browse.listing(populated["user_id"], Tab.BUSCA, search="acao_1")
        uow.listings.summaries(EnvelopeQuery(populated["account_id"], search="50%"))
    prepared = _all_prepared()
    assert len(prepared) >= 20
    now = app.clock.now()
    params = populated | {
        "after": now - timedelta(days=30),
        "before": now + timedelta(days=60),
        "pattern": "%contrato%",
        "limit": 8,
        "offset": 0,
    }
    compared = 0
    with app.engine.connect() as conn:
        for name, stmt in prepared:
            expected = _core(conn, stmt, params)
            got = [tuple(r) for r in stmt.all(conn, params)]
            assert got == expected, name
            compared += bool(expected)
    # Most statements found rows (the rest are shapes with no match in this data).
    assert compared >= len(prepared) // 2


def test_rows_have_the_columns_by_name(app: App, populated: dict[str, Any]) -> None:
    with app.engine.connect() as conn:
        viewer = repositories_bot._VIEWER.first(conn, {"tg": populated["tg"]})
        assert viewer is not None
        assert viewer.account_name == "Imobiliária Sol"
        assert viewer.chat_language == "es"
        assert viewer.created_at.tzinfo is not None
        assert repositories_bot._VIEWER.first(conn, {"tg": -1}) is None


def test_reads_join_the_units_of_work_transaction(app: App, populated: dict[str, Any]) -> None:
    """A prepared read inside a writing unit of work sees its uncommitted writes, and a
    rolled-back write is gone for the next one."""
    account_id = populated["account_id"]
    with app.uow(write=False) as uow:
        before = uow.ledger.balances(account_id).credits
    with app.uow() as uow:
        assert uow.ledger.debit(account_id, Pool.CREDITS, 1)
        assert uow.ledger.balances(account_id).credits == before - 1
        uow.rollback()
    with app.uow(write=False) as uow:
        assert uow.ledger.balances(account_id).credits == before


def test_statements_it_cannot_prepare_are_refused(app: App) -> None:
    expanding = Prepared(select(envelopes.c.id).where(envelopes.c.status.in_(["a", "b"])))
    with app.engine.connect() as conn, pytest.raises(ValueError, match="post-compile"):
        expanding.all(conn, {})
    twice = Prepared(select(envelopes.c.id, literal(1).label("id")))
    with app.engine.connect() as conn, pytest.raises(ValueError, match="distinct"):
        twice.all(conn, {})


def test_a_write_that_would_need_a_column_default_is_refused(app: App) -> None:
    """`cost` has a default SQLAlchemy would compute; a prepared write must be given it."""
    partial = PreparedWrite(insert(notifications), ["account_id", "idempotency_key"])
    with app.engine.connect() as conn, pytest.raises(ValueError, match="every value"):
        partial.execute(conn, {"account_id": 1, "idempotency_key": "k"})


def test_prepared_writes_report_rows_and_returning(app: App, populated: dict[str, Any]) -> None:
    account_id = populated["account_id"]
    with app.uow() as uow:
        before = uow.ledger.balances(account_id)
        # Conditional debit: a row when the balance covers it, none when it does not.
        assert uow.ledger.debit(account_id, Pool.CREDITS, before.credits)
        assert not uow.ledger.debit(account_id, Pool.CREDITS, 1)
        uow.ledger.credit(account_id, Pool.CREDITS, 2)
        assert uow.ledger.balances(account_id).credits == 2
        uow.rollback()
    with app.uow(write=False) as uow:
        assert uow.ledger.balances(account_id) == before
