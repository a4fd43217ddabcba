"""Engines: SQLite in WAL with BEGIN IMMEDIATE writes, PostgreSQL at READ COMMITTED."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Pages of WAL after which a COMMIT checkpoints by itself (SQLite's default is 1,000). With
# writes arriving all the time the background checkpoints of `storage.checkpoints` rarely
# find the log fully copied at the moment a writer could restart it, so the log outgrows
# 1,000 pages and, at SQLite's default, every COMMIT would then checkpoint (and sync) on the
# event loop. 10,000 pages (40 MB) bounds the log should that thread stop or fall behind.
SQLITE_AUTOCHECKPOINT_PAGES = 10_000
# Page cache per connection, in KiB (SQLite's default is 2,000 KiB). An account with 10,000
# envelopes is about 7 MB on disk; at the default, cards and list pages of random envelopes
# read 3 pages per bot update back from the operating system, at 64 MB under one (strace),
# about 1.5% of an update's time (docs/performance.md, round 10). Filled only as pages are read.
SQLITE_CACHE_KIB = 65_536
WRITE_OPTION = "lacre_write"


def begin_on_driver(driver: Any, write: bool) -> None:
    """Open the SQLite transaction on the sqlite3 connection, unless one is open already.
    Writers take the lock up front: two deferred writers could both read a balance."""
    if not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and `postgres://` URLs; use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """An engine set up for Lacre's ledger rules on either database."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo, pool_size)
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        isolation_level="READ COMMITTED",
    )


def _sqlite_engine(url: str, echo: bool, pool_size: int) -> Engine:
    memory = make_url(url).database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    }
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        # As wide as PostgreSQL's, so many threads wait on SQLite's lock, not on the pool.
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    engine = create_engine(url, echo=echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; see decision 0002.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            # A backstop only: `lacre run` checkpoints on a thread of its own (decision 0009).
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # On the driver's connection: through `exec_driver_sql` this one word cost as much as
        # the read that follows it (about 25 µs against 1 µs).
        driver = conn.connection.driver_connection
        assert driver is not None
        # A warm unit of work begins on the driver itself (storage/uow.py); SQLAlchemy's
        # transaction, begun for a Core statement after a prepared one, joins that one.
        begin_on_driver(driver, conn.get_execution_options().get(WRITE_OPTION, True))

    return engine


# Tables a bulk import of envelopes fills, whose statistics the planner reads for the lists.
IMPORTED_TABLES = ("envelopes", "documents", "signers")


def refresh_statistics(engine: Engine, tables: tuple[str, ...] = IMPORTED_TABLES) -> bool:
    """After a bulk write on PostgreSQL, ANALYZE now: until autovacuum gets to it (about a
    minute) the planner keeps the row counts of before, and planned a tab page of a fresh
    import as a sort of all its pending rows (5.3 ms against 0.12 ms, docs/performance.md).
    SQLite plans from its indexes alone here (no `sqlite_stat1`): nothing to do."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE " + ", ".join(tables))
    return True
