"""SQLite WAL checkpoints on a thread of their own (decision 0009).

In WAL mode SQLite copies the log back into the database file every 1,000 pages, inside the
COMMIT that crosses the mark, with two fsyncs: the update being handled waits for them, and so
does every update queued behind it (`lacre run` handles them one at a time). Here a thread
runs a PASSIVE checkpoint a few times a second, so the log never gets near the mark and the
commits on the event loop no longer write or sync the database file. SQLite's own automatic
checkpoint stays, moved to 10,000 pages (`storage.db.SQLITE_AUTOCHECKPOINT_PAGES`): should this
thread stop or fall behind, the log is still bounded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from storage.db import SQLITE_BUSY_TIMEOUT_MS

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 0.25


@dataclass(frozen=True)
class Pass:
    """What one checkpoint found: frames in the log since it was last restarted, and how many
    of them are back in the database file (by this pass or an earlier one)."""

    busy: bool
    logged: int
    copied: int


class WalCheckpointer:
    """Checkpoints the WAL of a SQLite file engine's database until stopped.

    Only for a SQLite file: `start` does nothing (and says so) for PostgreSQL or an in-memory
    database. Its connection is its own, opened and closed by its thread.
    """

    def __init__(self, engine: Engine, interval: float = INTERVAL_SECONDS) -> None:
        database = engine.url.database
        self._path = (
            database
            if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
            else None
        )
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self.last: Pass | None = None

    @property
    def applies(self) -> bool:
        return self._path is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Start the thread; False (and nothing started) where there is no WAL to keep."""
        if self._path is None or self.running:
            return False
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lacre-wal-checkpoints", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop after the pass in progress, with a last pass for what was committed since."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        assert self._path is not None
        conn = connect(self._path)
        failing = False
        try:
            while True:
                stopping = self._stop.wait(self._interval)
                try:
                    done = checkpoint(conn)
                except sqlite3.Error as exc:
                    if not failing:  # once per spell of failures, not four times a second
                        log.warning("WAL checkpoint failed: %s", exc)
                    failing = True
                else:
                    failing = False
                    self.passes += 1
                    self.last = done
                if stopping:
                    return
        finally:
            conn.close()


def connect(path: str) -> sqlite3.Connection:
    """A connection for checkpoints only, with the engine's durability setting (decision
    0002: NORMAL syncs the log and the database file at each checkpoint)."""
    conn = sqlite3.connect(
        path,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def checkpoint(conn: sqlite3.Connection) -> Pass:
    """One PASSIVE checkpoint: copies what no reader still needs, waits for no one."""
    busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return Pass(bool(busy), int(logged), int(copied))
