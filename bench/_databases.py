"""Throwaway databases for the benchmarks: a temporary SQLite file, a PostgreSQL database."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage import migrate
from storage.db import normalize_url

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


@contextmanager
def temporary_sqlite(name: str = "bench.db", *, migrated: bool = False) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="lacre-bench-") as directory:
        url = f"sqlite:///{Path(directory) / name}"
        if migrated:
            migrate.upgrade(url)
        yield url


@contextmanager
def temporary_postgres(admin: str | None = None, *, migrated: bool = False) -> Iterator[str]:
    """A database of its own, dropped afterwards whatever happens."""
    engine = create_engine(normalize_url(admin or admin_url()), isolation_level="AUTOCOMMIT")
    name = f"lacre_bench_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(engine.url).set(database=name).render_as_string(hide_password=False)
    try:
        if migrated:
            migrate.upgrade(url)
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
