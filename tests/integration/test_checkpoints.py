"""WAL checkpoints off the event loop (decision 0009): the bot's own connections leave the log
alone up to the backstop, and a thread copies it back into the database file."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from storage.checkpoints import WalCheckpointer, checkpoint, connect
from storage.db import SQLITE_AUTOCHECKPOINT_PAGES, make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with built.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
    yield built
    built.dispose()


def write(engine: Engine, rows: int, size: int = 3000) -> None:
    """`rows` commits of about a page each."""
    for _ in range(rows):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": "x" * size})


def wal_pages(path: Path) -> int:
    """Frames the log file holds (a 32-byte header, then 24 + 4,096 bytes a frame): a log that
    was checkpointed and restarted is written again from its start, so it stops growing."""
    return (path.stat().st_size - 32) // (4096 + 24) if path.exists() else 0


def copied(checkpoints: WalCheckpointer) -> bool:
    """A pass of the thread found the whole log back in the database file."""
    last = checkpoints.last
    return last is not None and last.logged > 0 and last.copied == last.logged


def test_the_bots_connections_leave_the_log_to_the_checkpointer_up_to_the_backstop(
    engine: Engine, tmp_path: Path
) -> None:
    """At SQLite's default a COMMIT past 1,000 pages checkpoints (and syncs) in the update
    that made it; here the log grows past that, untouched, until someone checkpoints it."""
    with engine.connect() as conn:
        setting = conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
    assert setting == SQLITE_AUTOCHECKPOINT_PAGES
    write(engine, 1300)
    assert wal_pages(tmp_path / "wal.db-wal") > 1300  # no COMMIT checkpointed on the way
    own = connect(str(tmp_path / "wal.db"))
    try:
        done = checkpoint(own)
    finally:
        own.close()
    assert not done.busy and done.copied == done.logged > 1300


def test_a_checkpoint_waits_for_no_reader_and_copies_what_it_can(
    engine: Engine, tmp_path: Path
) -> None:
    write(engine, 20)
    reader = sqlite3.connect(tmp_path / "wal.db", isolation_level=None)
    own = connect(str(tmp_path / "wal.db"))
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM notes").fetchone() == (20,)
        write(engine, 30)  # after the reader's snapshot: it still needs the database as was
        began = time.monotonic()
        pinned = checkpoint(own)
        assert time.monotonic() - began < 5  # returned, did not wait on the reader's snapshot
        assert pinned.copied < pinned.logged
        reader.execute("COMMIT")
        done = checkpoint(own)
        assert done.copied == done.logged
    finally:
        reader.close()
        own.close()


def test_the_thread_keeps_the_log_copied_until_it_is_stopped(engine: Engine) -> None:
    checkpoints = WalCheckpointer(engine, interval=0.01)
    assert checkpoints.start() is True
    assert checkpoints.start() is False  # one thread per checkpointer
    try:
        assert checkpoints.running
        write(engine, 50)
        deadline = time.monotonic() + 10
        while not copied(checkpoints) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert copied(checkpoints)
    finally:
        checkpoints.stop()
    assert not checkpoints.running
    assert "lacre-wal-checkpoints" not in [t.name for t in threading.enumerate()]
    checkpoints.stop()  # stopping twice is harmless


def test_the_last_pass_copies_what_was_committed_just_before_stopping(engine: Engine) -> None:
    checkpoints = WalCheckpointer(engine, interval=3600)  # no pass but the last one
    checkpoints.start()
    write(engine, 40)
    checkpoints.stop()
    assert checkpoints.passes == 1
    assert checkpoints.last is not None and checkpoints.last.copied == checkpoints.last.logged
    assert checkpoints.last.logged > 40  # the table and 40 commits, all in one log


def test_nothing_starts_where_there_is_no_wal(tmp_path: Path) -> None:
    memory = make_engine("sqlite://")
    postgres = make_engine("postgresql://postgres@127.0.0.1:1/never_connected")
    try:
        for engine in (memory, postgres):
            checkpoints = WalCheckpointer(engine)
            assert not checkpoints.applies
            assert checkpoints.start() is False
            assert not checkpoints.running
            checkpoints.stop()
    finally:
        memory.dispose()
        postgres.dispose()
