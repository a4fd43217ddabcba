"""Ledger benchmark: `Lacre.charge` rate and latency beside a bare conditional-UPDATE floor.

Run from the repository root:

    python bench/ledger.py                  # SQLite (1 writer) and PostgreSQL (8 writers)
    python bench/ledger.py --n 20000 --writers 8 --sqlite-writers 1

It makes its own temporary SQLite file and its own PostgreSQL database (dropped afterwards;
admin URL from TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from _databases import admin_url, temporary_postgres, temporary_sqlite
from sqlalchemy import text

from bot.bootstrap import App, bootstrap
from bot.settings import Settings
from core.accounts import Role
from core.clock import FixedClock
from core.ledger import Pool, Reason
from storage import migrate
from storage.db import make_engine

FLOOR_SQL = text("UPDATE accounts SET credits = credits - 1 WHERE id = :id AND credits >= 1")


@dataclass(frozen=True)
class Figures:
    label: str
    writers: int
    n: int
    seconds: float
    latencies: list[float]  # seconds, one per call

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def line(self) -> str:
        return (
            f"  {self.label:<26} writers={self.writers:<2} n={self.n:<6} "
            f"{self.rate:>8.0f}/s  p50={self.percentile(50) * 1000:6.2f} ms  "
            f"p99={self.percentile(99) * 1000:6.2f} ms"
        )


def run_writers(label: str, writers: int, n: int, work: Callable[[int, int], None]) -> Figures:
    """Split `n` calls of `work(writer, i)` over threads started together; time the whole."""
    per_writer = [n // writers + (1 if w < n % writers else 0) for w in range(writers)]
    latencies: list[list[float]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 1)

    def body(w: int) -> None:
        start.wait()
        try:
            for i in range(per_writer[w]):
                t0 = time.perf_counter()
                work(w, i)
                latencies[w].append(time.perf_counter() - t0)
        except BaseException as exc:  # reported after the join, the run is then void
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return Figures(label, writers, n, elapsed, [x for part in latencies for x in part])


def build_app(url: str, writers: int) -> App:
    """A migrated database and the app over it, with a pool wide enough for the writers."""
    migrate.upgrade(url)
    settings = Settings(environment="test", database_url=url, _env_file=None)  # type: ignore[call-arg]
    return bootstrap(
        settings,
        engine=make_engine(url, pool_size=max(writers, 2)),
        clock=FixedClock(datetime(2026, 11, 27, 12, 0, tzinfo=UTC)),
    )


def funded_accounts(app: App, count: int, credits: int) -> list[tuple[int, int]]:
    """`count` accounts holding `credits` each, with their linked admin: (account, admin)."""
    out = []
    for _ in range(count):
        account = app.lacre.create_account("Bench", "essencial")
        admin = app.lacre.link(
            app.lacre.create_link_token(account.id, Role.ADMIN), next(_telegram_ids), "Bench"
        )
        app.lacre.grant(account.id, credits=credits, idempotency_key=f"bench:{account.id}")
        out.append((account.id, admin.id))
    return out


_telegram_ids = itertools.count(1)


def measure(app: App, writers: int, accounts: int, n: int, repeat: int) -> tuple[Figures, Figures]:
    """Writer `w` charges account `w % accounts`, then the floor updates the same rows; the two
    alternate `repeat` times and the best run of each counts (other processes only slow it)."""
    funded = funded_accounts(app, accounts, credits=2 * n * repeat + 100 * writers)
    run_id = uuid.uuid4().hex[:8]
    # The floor keeps one connection per writer: only the database's own work is left.
    conns = [app.engine.connect() for _ in range(writers)]

    def charger(run: int) -> Callable[[int, int], None]:
        def charge(w: int, i: int) -> None:
            account_id, admin_id = funded[w % accounts]
            if not app.lacre.charge(
                account_id,
                Pool.CREDITS,
                1,
                Reason.ICP,
                f"bench:{run_id}:{run}:{w}:{i}",
                actor_user_id=admin_id,
            ):
                raise RuntimeError("a fresh key was refused")

        return charge

    def floor(w: int, _i: int) -> None:
        conn = conns[w]
        if conn.execute(FLOOR_SQL, {"id": funded[w % accounts][0]}).rowcount != 1:
            raise RuntimeError("the floor ran out of credits")
        conn.commit()

    try:
        # A short warm-up per writer fills the pool and SQLAlchemy's statement caches.
        run_writers("warm-up", writers, 20 * writers, charger(-1))
        run_writers("warm-up", writers, 20 * writers, floor)
        lacre, bare = [], []
        for run in range(repeat):
            lacre.append(run_writers("Lacre.charge", writers, n, charger(run)))
            bare.append(run_writers("bare conditional UPDATE", writers, n, floor))
    finally:
        for conn in conns:
            conn.close()
    return max(lacre, key=lambda f: f.rate), max(bare, key=lambda f: f.rate)


def report(title: str, lacre: Figures, bare: Figures) -> None:
    print(title)
    print(lacre.line())
    print(bare.line())
    print(f"  ratio Lacre.charge / floor: {lacre.rate / bare.rate:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="charges per measured run")
    parser.add_argument("--writers", type=int, default=8, help="PostgreSQL concurrent writers")
    parser.add_argument("--sqlite-writers", type=int, default=1, help="SQLite writers")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="run one database")
    parser.add_argument(
        "--admin-url",
        default=admin_url(),
        help="PostgreSQL URL allowed to create and drop a database",
    )
    args = parser.parse_args(argv)
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"n={args.n} per run, best of {args.repeat}"
    )
    if args.only in (None, "sqlite"):
        w = args.sqlite_writers
        with temporary_sqlite() as url:
            app = build_app(url, w)
            try:
                report(
                    f"SQLite file (WAL, BEGIN IMMEDIATE), {w} writer(s)",
                    *measure(app, w, 1, args.n, args.repeat),
                )
            finally:
                app.engine.dispose()
    if args.only in (None, "postgres"):
        w = args.writers
        with temporary_postgres(args.admin_url) as url:
            app = build_app(url, w)
            try:
                report(
                    f"PostgreSQL (READ COMMITTED), {w} writers, one account each",
                    *measure(app, w, w, args.n, args.repeat),
                )
                report(
                    f"PostgreSQL (READ COMMITTED), {w} writers on one account (one hot row)",
                    *measure(app, w, 1, args.n, args.repeat),
                )
            finally:
                app.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
