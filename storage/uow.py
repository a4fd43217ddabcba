"""The unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

import weakref
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, event

from storage.db import WRITE_OPTION, begin_on_driver
from storage.prepared import DRIVER_IN_TRANSACTION
from storage.repositories import (
    SqlAccountRepository,
    SqlEnvelopeRepository,
    SqlLedgerRepository,
    SqlLinkTokenRepository,
    SqlNotificationRepository,
    SqlUserRepository,
)
from storage.repositories_bot import (
    SqlChatRepository,
    SqlConfirmationRepository,
    SqlListingRepository,
)
from storage.repositories_scheduler import SqlReminderRepository

_REPOSITORIES: tuple[tuple[str, Any], ...] = (
    ("accounts", SqlAccountRepository),
    ("users", SqlUserRepository),
    ("link_tokens", SqlLinkTokenRepository),
    ("envelopes", SqlEnvelopeRepository),
    ("ledger", SqlLedgerRepository),
    ("notifications", SqlNotificationRepository),
    ("confirmations", SqlConfirmationRepository),
    ("chats", SqlChatRepository),
    ("listings", SqlListingRepository),
    ("reminders", SqlReminderRepository),
)


class _Session:
    """A connection with its repositories (they keep no state of their own).

    A warm one (a SQLite file, see `_Warm`) keeps its unit of work's transaction on the
    sqlite3 connection, `driver`: SQLAlchemy's transaction object, its events and its commit
    and rollback cost more than the one or two prepared statements of most units of work.
    A Core statement still runs there: SQLAlchemy then begins a transaction object of its
    own, which joins the driver's (the engine's `begin` event sends nothing), and the commit
    or rollback goes through SQLAlchemy, which ends both.
    """

    __slots__ = ("conn", "driver", "repositories", "write")

    def __init__(self, engine: Engine, *, warm: bool = False) -> None:
        self.conn = engine.connect()
        self.write: bool | None = None
        self.driver: Any = None
        if warm:
            self.driver = self.conn.connection.driver_connection
            self.conn.execution_options(**{DRIVER_IN_TRANSACTION: self.begun})
        self.repositories = {name: kind(self.conn) for name, kind in _REPOSITORIES}

    def begun(self) -> Any:
        """The driver inside the unit of work's transaction, begun at its first statement as
        the engine's `begin` event would: BEGIN IMMEDIATE for a writer, BEGIN for a reader."""
        begin_on_driver(self.driver, bool(self.write))
        return self.driver

    def commit(self) -> None:
        # Through SQLAlchemy when it has a transaction open: it ends the driver's too.
        if self.driver is None or self.conn.get_transaction() is not None:
            self.conn.commit()
        else:
            self.driver.commit()

    def rollback(self) -> None:
        if self.driver is None or self.conn.get_transaction() is not None:
            self.conn.rollback()
        else:
            self.driver.rollback()


class _Warm:
    """Sessions kept between units of work on a SQLite file (decision 0007): checking a
    connection out of the pool and back in, with its execution options and ten repositories,
    cost more than the statements of a bot tap. Each is rolled back before it is kept. Not
    for PostgreSQL, where the pool's pre-ping must see every checkout."""

    KEEP = 4

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions: list[_Session] = []
        event.listen(engine, "engine_disposed", self._close_all)

    def take(self) -> _Session:
        try:
            return self._sessions.pop()  # atomic: any thread may take or give
        except IndexError:
            return _Session(self._engine, warm=True)

    def give(self, session: _Session) -> None:
        conn = session.conn
        if (
            conn.closed
            or conn.invalidated
            or conn.in_transaction()
            or session.driver.in_transaction
            or len(self._sessions) >= self.KEEP
        ):
            conn.close()
        else:
            self._sessions.append(session)

    def _close_all(self, *_: object) -> None:
        while self._sessions:
            self._sessions.pop().conn.close()


_WARM: weakref.WeakKeyDictionary[Engine, _Warm] = weakref.WeakKeyDictionary()


def _warm_for(engine: Engine) -> _Warm | None:
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    warm = _WARM.get(engine)
    if warm is None:
        warm = _WARM[engine] = _Warm(engine)
    return warm


class SqlUnitOfWork:
    """Commits only when told; anything left uncommitted is rolled back on exit."""

    accounts: SqlAccountRepository
    users: SqlUserRepository
    link_tokens: SqlLinkTokenRepository
    envelopes: SqlEnvelopeRepository
    ledger: SqlLedgerRepository
    notifications: SqlNotificationRepository
    confirmations: SqlConfirmationRepository
    chats: SqlChatRepository
    listings: SqlListingRepository
    reminders: SqlReminderRepository

    def __init__(self, engine: Engine, *, write: bool = True, warm: _Warm | None = None) -> None:
        self._engine = engine
        self._write = write
        self._warm = warm
        self._session: _Session | None = None

    def __enter__(self) -> Self:
        session = self._warm.take() if self._warm is not None else _Session(self._engine)
        if session.write is not self._write:
            session.conn.execution_options(**{WRITE_OPTION: self._write})
            session.write = self._write
        self._session = session
        self.__dict__.update(session.repositories)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        assert session is not None
        self._session = None
        try:
            session.rollback()
        finally:
            if self._warm is not None:
                self._warm.give(session)
            else:
                session.conn.close()

    @property
    def connection(self) -> Connection:
        return self._current().conn

    def commit(self) -> None:
        self._current().commit()

    def rollback(self) -> None:
        self._current().rollback()

    def _current(self) -> _Session:
        assert self._session is not None, "use the unit of work inside `with`"
        return self._session


class SqlUnitOfWorkFactory:
    """Builds units of work on one engine; this is what `core` receives as `uow`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._warm = _warm_for(engine)

    def __call__(self, *, write: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, write=write, warm=self._warm)
