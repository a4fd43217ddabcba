"""Units of work on a SQLite file reuse their connection; each one still starts clean."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from storage import migrate
from storage.db import WRITE_OPTION, make_engine
from storage.uow import SqlUnitOfWorkFactory


@pytest.fixture
def factory(tmp_path: Path) -> SqlUnitOfWorkFactory:
    url = f"sqlite:///{tmp_path / 'uow.db'}"
    migrate.upgrade(url)
    return SqlUnitOfWorkFactory(make_engine(url))


def _accounts(factory: SqlUnitOfWorkFactory) -> int:
    with factory(write=False) as uow:
        return int(uow.connection.execute(text("SELECT count(*) FROM accounts")).scalar_one())


def _insert(uow: object) -> None:
    uow.connection.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO accounts (name, plan_code, timezone, language, credits, "
            "notification_credits, created_at) VALUES ('x', 'basico', 'UTC', 'pt-BR', 0, 0, "
            "'2026-11-27 12:00:00.000000')"
        )
    )


def test_a_kept_connection_carries_nothing_into_the_next_unit_of_work(
    factory: SqlUnitOfWorkFactory,
) -> None:
    with pytest.raises(RuntimeError), factory() as uow:
        _insert(uow)
        raise RuntimeError("the use case failed half-way")
    assert _accounts(factory) == 0
    with factory() as uow:
        _insert(uow)
        uow.commit()
    assert _accounts(factory) == 1


def test_connections_are_reused_and_take_the_mode_of_each_unit(
    factory: SqlUnitOfWorkFactory,
) -> None:
    with factory() as uow:
        first = uow.connection
        assert first.get_execution_options()[WRITE_OPTION] is True
    with factory(write=False) as uow:
        assert uow.connection is first
        assert uow.connection.get_execution_options()[WRITE_OPTION] is False
        # A unit of work opened meanwhile gets a connection of its own.
        with factory() as inner:
            assert inner.connection is not first
            assert inner.connection.get_execution_options()[WRITE_OPTION] is True


def test_a_transaction_left_open_on_the_driver_is_not_kept(
    factory: SqlUnitOfWorkFactory,
) -> None:
    with factory() as uow:
        first = uow.connection
        uow.connection.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
    assert first.closed
    with factory() as uow:
        assert uow.connection is not first


def test_disposing_the_engine_closes_the_kept_connections(
    factory: SqlUnitOfWorkFactory,
) -> None:
    with factory() as uow:
        kept = uow.connection
    assert not kept.closed
    factory.engine.dispose()
    assert kept.closed
