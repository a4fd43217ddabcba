"""The envelope list's search and tabs with 10,000 envelopes in one account, per database.

`Browse.listing` as the bot calls it for `/envelopes termo` (a search: the term is saved for the
next pages, the matches counted, a page read) and for a tab page, on a temporary SQLite file and
on a PostgreSQL database made for the run and dropped afterwards (admin URL from
TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test). The account is the one
`bench/bot_throughput.py` seeds (titles of four kinds, two signers per envelope).

    python bench/search.py [--envelopes 10000] [--runs 50] [--skip-postgres]
                           [--without-search-index]

`--without-search-index` drops SQLite's covering index of the search (decision 0008) first:
the schema before migration 0007, for comparison.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from _databases import temporary_postgres, temporary_sqlite
from _timing import percentile
from bot_throughput import NOW, seed
from sqlalchemy import insert, select, text, update

from bot.telegram.counts import TtlCountCache
from core.accounts import Role
from core.browse import Browse, Tab
from storage.repositories import envelopes, users
from storage.tables import SQLITE_SEARCH_INDEX

# (what it shows, the term): a quarter of the account, one signer, one ref, nothing.
TERMS = (
    ("broad title word", "locação"),
    ("one signer's name", "Signatário 5123-B"),
    ("one ref", "ENV-09999"),
    ("no match", "nada disso"),
)
MEMBER_TELEGRAM_ID = 70_000
MEMBER_ENVELOPES = 20


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """p50 and p99 in milliseconds, and the last result."""
    took, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        took.append(time.perf_counter() - began)
    return percentile(took, 50) * 1000, percentile(took, 99) * 1000, result


def add_member(app: Any, by_status: dict[str, list[int]]) -> None:
    """A member (sees only what they created) who created some of the pending envelopes, spread
    over the account: their tab pages must not walk everyone else's."""
    with app.engine.begin() as conn:
        account_id = conn.execute(select(users.c.account_id)).scalars().first()
        member_id = conn.execute(
            insert(users).returning(users.c.id),
            {
                "account_id": account_id,
                "role": Role.MEMBER.value,
                "name": "Membro",
                "telegram_user_id": MEMBER_TELEGRAM_ID,
                "language": "pt-BR",
                "created_at": NOW,
            },
        ).scalar_one()
        pending = sorted(by_status["pendente"])
        mine = pending[:: max(len(pending) // MEMBER_ENVELOPES, 1)][:MEMBER_ENVELOPES]
        conn.execute(update(envelopes).where(envelopes.c.id.in_(mine)).values(created_by=member_id))


def one_database(name: str, url: str, args: argparse.Namespace) -> None:
    app, telegram_ids, by_status, _ = seed(url, args.envelopes, 1)
    add_member(app, by_status)
    if args.without_search_index and app.engine.dialect.name == "sqlite":
        with app.engine.connect() as conn:
            conn.execute(text(f"DROP INDEX {SQLITE_SEARCH_INDEX}"))
            conn.commit()
    if app.engine.dialect.name == "postgresql":
        # The steady state autovacuum reaches soon after a bulk load: planner statistics.
        with app.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    try:
        browse = Browse(app.uow, app.lacre, app.clock, app.lacre.catalogue, TtlCountCache())
        linked = browse.viewer(telegram_ids[0]).linked
        assert linked is not None
        print(f"{name}: {args.envelopes} envelopes in one account, {args.runs} runs each")
        for label, term in TERMS:
            p50, p99, page = timed(
                lambda t=term: browse.listing(linked, Tab.PENDENTES, 0, t), args.runs
            )
            what = f"search {label:<18} {term!r:<22} {page.total:>6} found"
            print(f"  {what:<55} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        browse.listing(linked, Tab.PENDENTES, 0, "locação")  # saved for the next pages
        last = timed(lambda: browse.listing(linked, Tab.BUSCA, 100, None), args.runs)
        what = f"search {'locação'!r}, page 101 (the saved term)"
        print(f"  {what:<55} p50 {last[0]:6.2f} ms  p99 {last[1]:6.2f} ms")
        for tab, page in ((Tab.PENDENTES, 0), (Tab.PENDENTES, 300), (Tab.VENCENDO, 0)):
            p50, p99, view = timed(lambda t=tab, p=page: browse.listing(linked, t, p), args.runs)
            what = f"tab {tab.value}, page {page + 1} of {view.pages}"
            print(f"  {what:<55} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        member = browse.viewer(MEMBER_TELEGRAM_ID).linked
        assert member is not None
        for label, call in (
            ("tab pen, page 1", lambda: browse.listing(member, Tab.PENDENTES, 0)),
            ("tab ven, page 1", lambda: browse.listing(member, Tab.VENCENDO, 0)),
            ("search 'locação'", lambda: browse.listing(member, Tab.PENDENTES, 0, "locação")),
        ):
            p50, p99, view = timed(call, args.runs)
            what = f"member ({MEMBER_ENVELOPES} of their own): {label}, {view.total} found"
            print(f"  {what:<55} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    finally:
        app.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envelopes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--without-search-index", action="store_true", help="SQLite: before 0007")
    args = parser.parse_args()
    databases: list[tuple[str, Callable[[], AbstractContextManager[str]]]] = [
        ("SQLite file", temporary_sqlite)
    ]
    if not args.skip_postgres:
        databases.append(("PostgreSQL", temporary_postgres))
    for name, make in databases:
        with make() as url:
            one_database(name, url, args)


if __name__ == "__main__":
    main()
