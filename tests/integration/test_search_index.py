"""The envelope search: a covering index on SQLite, and long search texts on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, inspect, select

from bot.bootstrap import App
from core.browse import _VISIBLE_STATUSES, Browse, Tab
from storage.repositories import _bound_filters, envelopes
from storage.repositories_bot import _summaries_statement
from storage.tables import SQLITE_SEARCH_INDEX
from tests.support.builders import envelope_json, import_envelopes, seed_account

VALUES = {"account_id": 1, "created_by": 1, "pattern": "%locacao%", "limit": 8, "offset": 0}


def _plan(app: App, stmt: Any) -> str:
    compiled = stmt.compile(dialect=app.engine.dialect)
    params = compiled.construct_params(VALUES)
    values = tuple(params[name] for name in compiled.positiontup)
    with app.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, values)
        return " / ".join(row[-1] for row in rows)


def test_on_sqlite_a_search_reads_the_covering_index_for_admins_and_members(
    sqlite_app: App,
) -> None:
    for by_creator in (False, True):
        count = select(func.count()).select_from(envelopes)
        count = count.where(*_bound_filters((_VISIBLE_STATUSES, by_creator, False, False, True)))
        page = _summaries_statement((_VISIBLE_STATUSES, by_creator, True, False, False, False))
        assert f"COVERING INDEX {SQLITE_SEARCH_INDEX}" in _plan(sqlite_app, count)
        assert f"INDEX {SQLITE_SEARCH_INDEX}" in _plan(sqlite_app, page)


def test_the_search_index_exists_on_sqlite_only(app: App) -> None:
    names = {index["name"] for index in inspect(app.engine).get_indexes("envelopes")}
    assert (SQLITE_SEARCH_INDEX in names) is (app.engine.dialect.name == "sqlite")


def test_an_envelope_with_a_very_long_search_text_is_stored_and_found(app: App) -> None:
    """Forty signers with long names: about 7,000 characters to search, more than a
    PostgreSQL B-tree entry may hold (the reason the index is SQLite's only)."""
    seeded = seed_account(app)
    signers = [
        {"name": f"{'Fulano de Tal ' * 10}{i:02d}", "email": f"s{i}@example.com", "order": 0}
        for i in range(40)
    ]
    import_envelopes(app, seeded.account.id, envelope_json("ENV-LONG", signers=signers))
    browse = Browse(app.uow, app.lacre, app.clock, app.lacre.catalogue)  # type: ignore[arg-type]
    found = browse.listing(seeded.admin.id, Tab.PENDENTES, 0, "tal 39")
    assert [e.ref for e in found.items] == ["ENV-LONG"]
    assert browse.listing(seeded.admin.id, Tab.PENDENTES, 0, "tal 40").total == 0
