"""What every connection of a SQLite file engine is set to (storage/db.py): WAL with NORMAL
syncs (decision 0002), the checkpoint backstop (decision 0009), a page cache big enough for an
account's envelopes, foreign keys and the busy timeout."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

from storage.db import (
    SQLITE_AUTOCHECKPOINT_PAGES,
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_CACHE_KIB,
    make_engine,
)

PRAGMAS = (
    "journal_mode",
    "synchronous",
    "wal_autocheckpoint",
    "cache_size",
    "foreign_keys",
    "busy_timeout",
)


def settings(conn: Connection) -> dict[str, object]:
    found = {p: conn.execute(text(f"PRAGMA {p}")).scalar_one() for p in PRAGMAS}
    conn.rollback()  # asking for the journal mode takes a lock another connection would meet
    return found


def test_every_connection_of_a_file_engine_gets_the_same_settings(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'settings.db'}")
    try:
        with engine.connect() as first, engine.connect() as second:  # two pooled connections
            expected = {
                "journal_mode": "wal",
                "synchronous": 1,  # NORMAL
                "wal_autocheckpoint": SQLITE_AUTOCHECKPOINT_PAGES,
                "cache_size": -SQLITE_CACHE_KIB,  # negative: KiB, not pages
                "foreign_keys": 1,
                "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
            }
            assert settings(first) == settings(second) == expected
    finally:
        engine.dispose()


def test_an_in_memory_engine_keeps_sqlites_journal_and_cache() -> None:
    engine = make_engine("sqlite://")
    try:
        with engine.connect() as conn:
            found = settings(conn)
        assert found["journal_mode"] == "memory" and found["cache_size"] == -2000
        assert found["foreign_keys"] == 1
    finally:
        engine.dispose()
