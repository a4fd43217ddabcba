"""Per-run databases: a migrated SQLite file, or a fresh PostgreSQL database dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from storage import migrate
from storage.db import normalize_url

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return normalize_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))


def postgres_or_skip() -> str:
    """The admin URL if PostgreSQL answers; in CI its absence fails the run instead."""
    url = admin_url()
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        reason = f"PostgreSQL not reachable at TEST_DATABASE_URL ({make_url(url).host}): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@contextmanager
def fresh_postgres(migrated: bool = True) -> Iterator[str]:
    """Create `lacre_test_<random>`, yield its URL, drop it afterwards."""
    admin = postgres_or_skip()
    name = f"lacre_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        if migrated:
            migrate.upgrade(url)
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextmanager
def fresh_sqlite(directory: Path, migrated: bool = True) -> Iterator[str]:
    url = f"sqlite:///{directory / 'lacre-test.db'}"
    if migrated:
        migrate.upgrade(url)
    yield url
