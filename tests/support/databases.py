"""Per-run databases: a migrated SQLite file, or a fresh PostgreSQL database dropped after."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
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


_templates: dict[str, str] = {}


def _postgres_template(admin: str) -> str:
    """A database migrated once per test run; each test's database is a copy of it."""
    if "postgres" not in _templates:
        name = f"lacre_tpl_{uuid.uuid4().hex[:12]}"
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        migrate.upgrade(make_url(admin).set(database=name).render_as_string(hide_password=False))
        _templates["postgres"] = name

        def drop() -> None:
            dropper = create_engine(admin, isolation_level="AUTOCOMMIT")
            with dropper.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            dropper.dispose()

        atexit.register(drop)
    return _templates["postgres"]


def _sqlite_template() -> Path:
    if "sqlite" not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="lacre-tpl-"))
        path = folder / "template.db"
        migrate.upgrade(f"sqlite:///{path}")
        _templates["sqlite"] = str(path)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(_templates["sqlite"])


@contextmanager
def fresh_postgres(migrated: bool = True) -> Iterator[str]:
    """Create `lacre_test_<random>` (a copy of the migrated template), drop it afterwards."""
    admin = postgres_or_skip()
    name = f"lacre_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{_postgres_template(admin)}"' if migrated else ""
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextmanager
def fresh_sqlite(directory: Path, migrated: bool = True) -> Iterator[str]:
    path = directory / "lacre-test.db"
    if migrated:
        shutil.copyfile(_sqlite_template(), path)
    yield f"sqlite:///{path}"
