"""Fixtures every test layer shares: databases on both engines, a fixed clock, the app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.bootstrap import App, bootstrap
from bot.settings import Settings
from core.clock import FixedClock
from tests.support.databases import fresh_postgres, fresh_sqlite

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ["no_proxy"] = os.environ["NO_PROXY"]
# The runner opts in to python-telegram-bot's timedelta `retry_after`; so do the tests.
os.environ.setdefault("PTB_TIMEDELTA", "true")

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with fresh_sqlite(tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        with fresh_sqlite(tmp_path) as url:
            yield url
    else:
        with fresh_postgres() as url:
            yield url


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def app(db_url: str, clock: FixedClock) -> Iterator[App]:
    built = bootstrap(make_settings(db_url), clock=clock)
    yield built
    built.engine.dispose()


@pytest.fixture
def sqlite_app(sqlite_url: str, clock: FixedClock) -> Iterator[App]:
    built = bootstrap(make_settings(sqlite_url), clock=clock)
    yield built
    built.engine.dispose()
