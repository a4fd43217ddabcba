"""A unit of work is one transaction, committed only when told, on either database.

On a SQLite file it reuses its connection and keeps its transaction on the sqlite3 connection
itself (decision 0007): prepared statements and Core statements still share that transaction,
writers hold the write lock from their first statement, and each unit of work starts clean.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import event, exc, func, insert, select, text, update

from bot.bootstrap import App
from core.ledger import EntryDraft, Pool, Reason
from core.notifications import Channel
from storage.db import WRITE_OPTION, make_engine
from storage.repositories import accounts
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory, _warm_for
from tests.support.bot_flows import signer_id
from tests.support.builders import envelope_json, import_envelopes, seed_account

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CREDITS = 10


def _factory(url: str) -> Iterator[SqlUnitOfWorkFactory]:
    engine = make_engine(url)
    yield SqlUnitOfWorkFactory(engine)
    engine.dispose()


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[SqlUnitOfWorkFactory]:
    """A SQLite file: warm sessions, transactions on the driver."""
    yield from _factory(sqlite_url)


@pytest.fixture
def any_db(db_url: str) -> Iterator[SqlUnitOfWorkFactory]:
    """A SQLite file, then PostgreSQL."""
    yield from _factory(db_url)


@pytest.fixture
def account_id(factory: SqlUnitOfWorkFactory) -> int:
    return _add_account(factory)


def _add_account(factory: SqlUnitOfWorkFactory) -> int:
    with factory() as uow:
        new = _insert_account(uow)
        uow.commit()
    return new


def _insert_account(uow: SqlUnitOfWork) -> int:
    return int(
        uow.connection.execute(
            insert(accounts)
            .values(
                name="x",
                plan_code="basico",
                timezone="UTC",
                language="pt-BR",
                credits=CREDITS,
                notification_credits=0,
                created_at=NOW,
            )
            .returning(accounts.c.id)
        ).scalar_one()
    )


def _accounts(factory: SqlUnitOfWorkFactory) -> int:
    with factory(write=False) as uow:
        return int(uow.connection.execute(select(func.count()).select_from(accounts)).scalar_one())


def _credits(factory: SqlUnitOfWorkFactory, account: int) -> int:
    with factory(write=False) as uow:
        return uow.ledger.balances(account).credits


def _core_credits(uow: SqlUnitOfWork, account: int) -> int:
    return int(
        uow.connection.execute(
            select(accounts.c.credits).where(accounts.c.id == account)
        ).scalar_one()
    )


def _prepared_credit(uow: SqlUnitOfWork, account: int, amount: int) -> None:
    uow.ledger.credit(account, Pool.CREDITS, amount)


def _core_credit(uow: SqlUnitOfWork, account: int, amount: int) -> None:
    uow.connection.execute(
        update(accounts).where(accounts.c.id == account).values(credits=accounts.c.credits + amount)
    )


CREDIT_WAYS = {"prepared": _prepared_credit, "core": _core_credit}
Credit = Callable[[SqlUnitOfWork, int, int], None]


def _path(factory: SqlUnitOfWorkFactory) -> str:
    database = factory.engine.url.database
    assert database is not None
    return database


def _other_connection(factory: SqlUnitOfWorkFactory) -> sqlite3.Connection:
    """A second writer that does not wait for SQLite's lock."""
    return sqlite3.connect(_path(factory), timeout=0, isolation_level=None)


def _driver_in_transaction(uow: SqlUnitOfWork) -> bool:
    return bool(uow.connection.connection.driver_connection.in_transaction)  # type: ignore[union-attr]


# Both databases: what `core` relies on.


@pytest.mark.parametrize("way", CREDIT_WAYS)
def test_commit_persists_and_leaving_without_it_rolls_back(
    any_db: SqlUnitOfWorkFactory, way: str
) -> None:
    account = _add_account(any_db)
    credit: Credit = CREDIT_WAYS[way]
    with any_db() as uow:
        credit(uow, account, 1)
        uow.commit()
    assert _credits(any_db, account) == CREDITS + 1
    with any_db() as uow:
        credit(uow, account, 2)
        assert uow.ledger.balances(account).credits == CREDITS + 3
    assert _credits(any_db, account) == CREDITS + 1


def test_work_after_a_commit_or_a_rollback_is_a_transaction_of_its_own(
    any_db: SqlUnitOfWorkFactory,
) -> None:
    account = _add_account(any_db)
    before = _accounts(any_db)
    with any_db() as uow:
        _prepared_credit(uow, account, 1)
        uow.commit()
        _prepared_credit(uow, account, 2)
        _insert_account(uow)
    assert (_credits(any_db, account), _accounts(any_db)) == (CREDITS + 1, before)
    with any_db() as uow:
        _core_credit(uow, account, 4)
        uow.commit()
        _prepared_credit(uow, account, 8)
        uow.rollback()
        assert uow.ledger.balances(account).credits == CREDITS + 5
        _prepared_credit(uow, account, 16)
        _core_credit(uow, account, 32)
        uow.commit()
        _core_credit(uow, account, 64)
    assert _credits(any_db, account) == CREDITS + 53


@pytest.mark.parametrize("failure", ["integrity", "exception"])
def test_a_failure_half_way_leaves_the_next_unit_of_work_clean(
    any_db: SqlUnitOfWorkFactory, failure: str
) -> None:
    account = _add_account(any_db)
    before = _accounts(any_db)
    with (
        pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError, RuntimeError)),
        any_db() as uow,
    ):
        _prepared_credit(uow, account, 1)
        _insert_account(uow)
        first = uow.connection
        if failure == "integrity":
            _prepared_credit(uow, account, -100)  # credits >= 0
        raise RuntimeError("the use case failed half-way")
    with any_db() as uow:
        if any_db.engine.dialect.name == "sqlite":
            assert uow.connection is first
            assert not _driver_in_transaction(uow)
        assert not uow.connection.in_transaction()
        _prepared_credit(uow, account, 2)
        uow.commit()
    assert (_credits(any_db, account), _accounts(any_db)) == (CREDITS + 2, before)


# SQLite files: the transaction on the driver.


@pytest.mark.parametrize("first", ["prepared", "core"])
def test_prepared_and_core_statements_share_one_transaction(
    factory: SqlUnitOfWorkFactory, account_id: int, first: str
) -> None:
    reads: dict[str, Callable[[SqlUnitOfWork], int]] = {
        "prepared": lambda uow: uow.ledger.balances(account_id).credits,
        "core": lambda uow: _core_credits(uow, account_id),
    }
    then = "core" if first == "prepared" else "prepared"
    other = _other_connection(factory)
    with factory(write=False) as uow:
        assert reads[first](uow) == CREDITS
        # A prepared statement begins on the driver alone, a Core one through SQLAlchemy.
        assert (uow.connection.get_transaction() is None) is (first == "prepared")
        other.execute("UPDATE accounts SET credits = 99")  # committed: no BEGIN
        # The snapshot the first statement took is the one the second reads.
        assert reads[then](uow) == CREDITS
        assert _driver_in_transaction(uow)
    other.close()
    assert _credits(factory, account_id) == 99


@pytest.mark.parametrize("way", CREDIT_WAYS)
def test_a_writer_holds_the_write_lock_from_its_first_statement_to_its_commit(
    factory: SqlUnitOfWorkFactory, account_id: int, way: str
) -> None:
    other = _other_connection(factory)
    with factory() as uow:
        other.execute("BEGIN IMMEDIATE")  # nothing ran yet: no lock taken
        other.rollback()
        CREDIT_WAYS[way](uow, account_id, 1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        uow.commit()
        other.execute("BEGIN IMMEDIATE")
        other.rollback()
        # A read after the commit is a write transaction again.
        assert uow.ledger.balances(account_id).credits == CREDITS + 1
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.rollback()
    other.close()


def test_a_reader_takes_no_write_lock(factory: SqlUnitOfWorkFactory, account_id: int) -> None:
    other = _other_connection(factory)
    with factory(write=False) as uow:
        assert uow.ledger.balances(account_id).credits == CREDITS
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE accounts SET credits = 99")
        other.commit()
        assert _core_credits(uow, account_id) == CREDITS
    other.close()


@pytest.mark.parametrize("through", ["driver", "sqlalchemy"])
def test_a_failing_commit_raises_and_leaves_nothing_behind(
    factory: SqlUnitOfWorkFactory, account_id: int, through: str
) -> None:
    orphan = EntryDraft(999_999, Pool.CREDITS, 1, Reason.ADJUSTMENT, "orphan")
    with factory() as uow:
        first = uow.connection
        _prepared_credit(uow, account_id, 1)
        # The orphan entry's foreign key is checked at COMMIT.
        if through == "driver":
            uow.connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA defer_foreign_keys = ON"
            )
        else:  # SQLAlchemy's transaction joins the driver's and commits it
            uow.connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        assert uow.ledger.append(orphan, NOW)
        with pytest.raises((sqlite3.IntegrityError, exc.IntegrityError), match="FOREIGN KEY"):
            uow.commit()
    # SQLAlchemy's rollback after its failed commit leaves the driver's transaction open:
    # that session is closed rather than kept.
    assert first.closed is (through == "sqlalchemy")
    with factory() as uow:
        assert (uow.connection is first) is (through == "driver")
        assert not _driver_in_transaction(uow)
        assert uow.ledger.by_key("orphan") is None
        assert uow.ledger.balances(account_id).credits == CREDITS


def test_a_kept_connection_carries_nothing_into_the_next_unit_of_work(
    factory: SqlUnitOfWorkFactory,
) -> None:
    with pytest.raises(RuntimeError), factory() as uow:
        _insert_account(uow)
        raise RuntimeError("the use case failed half-way")
    assert _accounts(factory) == 0
    with factory() as uow:
        _insert_account(uow)
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


def test_a_transaction_begun_behind_the_unit_of_work_ends_with_it(
    factory: SqlUnitOfWorkFactory,
) -> None:
    with factory() as uow:
        first = uow.connection
        uow.connection.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
    with factory() as uow:
        assert uow.connection is first
        assert not _driver_in_transaction(uow)


def test_a_session_still_in_a_transaction_is_not_kept(factory: SqlUnitOfWorkFactory) -> None:
    warm = _warm_for(factory.engine)
    assert warm is not None
    on_driver, on_sqlalchemy = warm.take(), warm.take()
    on_driver.conn.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
    on_sqlalchemy.conn.execute(text("SELECT 1"))
    warm.give(on_driver)
    warm.give(on_sqlalchemy)
    assert on_driver.conn.closed
    assert on_sqlalchemy.conn.closed


def test_disposing_the_engine_closes_the_kept_connections(
    factory: SqlUnitOfWorkFactory,
) -> None:
    with factory() as uow:
        kept = uow.connection
    assert not kept.closed
    factory.engine.dispose()
    assert kept.closed


def test_a_seal_and_a_paid_send_each_take_the_write_lock_once(sqlite_app: App) -> None:
    """The balance a receipt shows is read in the action's own transaction: after COMMIT a
    read in a writing unit of work would take SQLite's write lock again just for it."""
    seeded = seed_account(sqlite_app, credits=10, notification_credits=5)
    env_id = import_envelopes(sqlite_app, seeded.account.id, envelope_json("ENV-1"))["ENV-1"]
    before = sqlite_app.lacre.balances(seeded.account.id)
    statements: list[str] = []
    sqlite_app.engine.dispose()  # new connections, each with the trace below

    @event.listens_for(sqlite_app.engine, "connect")
    def trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(lambda sql: statements.append(sql.split()[0]))

    sealed = sqlite_app.lacre.seal(seeded.admin.id, env_id, expected_total=3)
    assert (sealed.charged, sealed.balance_after) == (3, before.credits - 3)
    assert (statements.count("BEGIN"), statements.count("COMMIT")) == (1, 1)
    assert "ROLLBACK" not in statements
    signer = signer_id(sqlite_app, seeded, env_id, "maria@example.com")
    statements.clear()
    sent = sqlite_app.lacre.request_send(seeded.admin.id, env_id, signer, Channel.SMS, "k")
    assert (statements.count("BEGIN"), statements.count("COMMIT")) == (1, 1)
    assert "ROLLBACK" not in statements
    after = before.notification_credits - 1
    assert sent.balance_after == after
    assert sqlite_app.lacre.balances(seeded.account.id).notification_credits == after
