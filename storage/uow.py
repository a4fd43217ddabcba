"""The unit of work: one connection, one transaction, every repository on it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine

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


class SqlUnitOfWork:
    """Commits only when told; anything left uncommitted is rolled back on exit."""

    def __init__(self, engine: Engine, *, write: bool = True) -> None:
        self._engine = engine
        self._write = write
        self._conn: Connection | None = None

    def __enter__(self) -> Self:
        conn = self._engine.connect()
        conn.execution_options(**{WRITE_OPTION: self._write})
        self._conn = conn
        self.accounts = SqlAccountRepository(conn)
        self.users = SqlUserRepository(conn)
        self.link_tokens = SqlLinkTokenRepository(conn)
        self.envelopes = SqlEnvelopeRepository(conn)
        self.ledger = SqlLedgerRepository(conn)
        self.notifications = SqlNotificationRepository(conn)
        self.confirmations = SqlConfirmationRepository(conn)
        self.chats = SqlChatRepository(conn)
        self.listings = SqlListingRepository(conn)
        self.reminders = SqlReminderRepository(conn)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        try:
            self._conn.rollback()
        finally:
            self._conn.close()
            self._conn = None

    @property
    def connection(self) -> Connection:
        assert self._conn is not None, "use the unit of work inside `with`"
        return self._conn

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()


class SqlUnitOfWorkFactory:
    """Builds units of work on one engine; this is what `core` receives as `uow`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, *, write: bool = True) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, write=write)
