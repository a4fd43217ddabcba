"""The unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

import weakref
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, event

from storage.db import WRITE_OPTION
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
    """A connection with its repositories (they keep no state of their own)."""

    __slots__ = ("conn", "repositories", "write")

    def __init__(self, engine: Engine) -> None:
        self.conn = engine.connect()
        self.write: bool | None = None
        self.repositories = {name: kind(self.conn) for name, kind in _REPOSITORIES}


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
            return _Session(self._engine)

    def give(self, session: _Session) -> None:
        conn = session.conn
        if (
            conn.closed
            or conn.invalidated
            or conn.in_transaction()
            or conn.connection.driver_connection.in_transaction  # type: ignore[union-attr]
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
            session.conn.rollback()
        finally:
            if self._warm is not None:
                self._warm.give(session)
            else:
                session.conn.close()

    @property
    def connection(self) -> Connection:
        assert self._session is not None, "use the unit of work inside `with`"
        return self._session.conn

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()


class SqlUnitOfWorkFactory:
    """Builds units of work on one engine; this is what `core` receives as `uow`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._warm = _warm_for(engine)

    def __call__(self, *, write: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, write=write, warm=self._warm)
