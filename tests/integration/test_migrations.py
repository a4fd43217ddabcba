"""Alembic migrations from an empty database, in step with the models, down and up again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect

from bot.bootstrap import bootstrap
from core.accounts import Role
from core.clock import FixedClock
from storage import migrate
from storage.db import make_engine
from storage.schema import metadata
from tests.conftest import make_settings
from tests.support.databases import fresh_postgres, fresh_sqlite


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even Alembic's version table."""
    ctx: AbstractContextManager[str] = (
        fresh_sqlite(tmp_path, migrated=False)
        if request.param == "sqlite"
        else fresh_postgres(migrated=False)
    )
    with ctx as url:
        yield url


def tables_of(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_builds_every_table_of_the_models_on_an_empty_database(empty_url: str) -> None:
    assert tables_of(empty_url) == set()
    migrate.upgrade(empty_url)
    assert tables_of(empty_url) == set(metadata.tables) | {"alembic_version"}
    engine = make_engine(empty_url)
    try:
        assert migrate.is_current(engine)
        assert migrate.current_revisions(engine) == migrate.head_revisions()
    finally:
        engine.dispose()


def test_the_models_and_the_migrations_do_not_drift(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        assert migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_upgrading_twice_changes_nothing(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    migrate.upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        assert migrate.is_current(engine) and migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    command.downgrade(migrate.alembic_config(empty_url), "base")
    assert tables_of(empty_url) <= {"alembic_version"}
    engine = make_engine(empty_url)
    try:
        assert not migrate.is_current(engine)
        migrate.upgrade(empty_url)
        assert migrate.is_current(engine) and migrate.drift(engine) == []
    finally:
        engine.dispose()


def test_an_empty_database_is_not_current(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        assert migrate.current_revisions(engine) == frozenset()
        assert not migrate.is_current(engine)
    finally:
        engine.dispose()


def test_the_schema_holds_a_real_52_bit_telegram_user_id(db_url: str, clock: FixedClock) -> None:
    # Telegram ids no longer fit 32 bits: accounts made today get ids above 5 billion.
    app = bootstrap(make_settings(db_url), clock=clock)
    try:
        account = app.lacre.create_account("Sol")
        big = 2**52 - 1
        user = app.lacre.link(app.lacre.create_link_token(account.id, Role.ADMIN), big, "Ana")
        actor = app.lacre.actor(big)
        assert actor is not None and actor.id == user.id and actor.telegram_user_id == big
    finally:
        app.engine.dispose()
