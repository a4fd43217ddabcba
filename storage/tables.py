"""The sqlmodel tables: the one definition of the schema that Alembic migrates to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def _as_utc(moment: datetime) -> datetime:
    """A stored moment as aware UTC (SQLite keeps them naive, in UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc_in(moment: datetime) -> datetime:
    """A moment about to be stored, in UTC; a naive one is refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: storage keeps aware UTC only")
    return moment.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _utc_in(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return _as_utc(value)

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, an aware datetime straight to the text SQLAlchemy's DATETIME writes
        ("2026-11-27 15:00:00.000000", UTC) instead of the method above and then that type's
        own formatting: every write of an envelope, a ledger entry or a notification binds a few.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            # Aware in UTC, its ISO text is the stored text plus "+00:00".
            return _utc_in(value).isoformat(" ", "microseconds")[:26]

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """On SQLite, the text SQLite keeps straight to an aware datetime in one call instead
        of SQLite's DATETIME processor (the same `fromisoformat`) and then the method above:
        every envelope, signer and list row carries a few of these."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse = datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:
                # Naive UTC text read with its offset: an aware datetime in one call, where
                # `replace(tzinfo=UTC)` on a naive one costs several times the parse.
                return parse(value + "+00:00")
            except ValueError:  # text that carries an offset of its own
                return _as_utc(parse(value))

        return process


def _when(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("credits >= 0", name="ck_accounts_credits_nonneg"),
        CheckConstraint("notification_credits >= 0", name="ck_accounts_notif_nonneg"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    plan_code: str = Field(max_length=40)
    timezone: str = Field(max_length=64)
    language: str = Field(max_length=10)
    credits: int = Field(default=0)
    notification_credits: int = Field(default=0)
    plan_renews_at: datetime | None = _when(nullable=True)
    created_at: datetime = _when()


class UserRow(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(
        sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False, index=True)
    )
    role: str = Field(max_length=10)
    name: str = Field(max_length=200)
    # Telegram user ids have up to 52 significant bits: a 32-bit INTEGER overflows.
    telegram_user_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True, unique=True)
    )
    language: str | None = Field(default=None, max_length=10)
    created_at: datetime = _when()


class LinkTokenRow(SQLModel, table=True):
    __tablename__ = "link_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False))
    role: str = Field(max_length=10)
    created_at: datetime = _when()
    expires_at: datetime = _when()
    used_at: datetime | None = _when(nullable=True)
    used_by_user_id: int | None = Field(default=None)


SQLITE_SEARCH_INDEX = "ix_envelopes_search_sqlite"
"""Only on SQLite (see `EnvelopeRow`); `storage.migrate.drift` knows it is absent elsewhere."""


class EnvelopeRow(SQLModel, table=True):
    __tablename__ = "envelopes"
    __table_args__ = (
        UniqueConstraint("account_id", "ref", name="uq_envelopes_account_ref"),
        Index("ix_envelopes_account_status_expires", "account_id", "status", "expires_at"),
        Index("ix_envelopes_account_creator_status", "account_id", "created_by", "status"),
        Index("ix_envelopes_status_expires", "status", "expires_at"),
        # A search (`search_text LIKE '%term%'`) reads this index instead of every row of the
        # account: about three times faster with 10,000 envelopes (bench/search.py). SQLite only:
        # PostgreSQL refuses B-tree entries above ~2,700 bytes and `search_text` is unbounded
        # (decision 0008).
        Index(SQLITE_SEARCH_INDEX, "account_id", "status", "created_by", "search_text").ddl_if(
            dialect="sqlite"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False))
    ref: str = Field(max_length=64)
    title: str = Field(max_length=300)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(max_length=12)
    icp: bool = Field(default=False)
    ordered: bool = Field(default=False)
    quoted_credits: int | None = Field(default=None)
    created_by: int | None = Field(default=None)
    expires_at: datetime | None = _when(nullable=True)
    sealed_at: datetime | None = _when(nullable=True)
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    version: int = Field(default=0)
    created_at: datetime = _when()
    updated_at: datetime = _when()


class DocumentRow(SQLModel, table=True):
    __tablename__ = "documents"
    # Read by envelope in position order (cards, reminders): the index gives that order, so
    # SQLite sorts nothing.
    __table_args__ = (Index("ix_documents_envelope_position", "envelope_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    envelope_id: int = Field(sa_column=Column(Integer, ForeignKey("envelopes.id"), nullable=False))
    position: int
    name: str = Field(max_length=255)
    pages: int


class SignerRow(SQLModel, table=True):
    __tablename__ = "signers"
    # Read by envelope in position order (cards, reminders): the index gives that order, so
    # SQLite sorts nothing.
    __table_args__ = (Index("ix_signers_envelope_position", "envelope_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    envelope_id: int = Field(sa_column=Column(Integer, ForeignKey("envelopes.id"), nullable=False))
    position: int
    name: str = Field(max_length=200)
    email: str = Field(max_length=254)
    phone: str | None = Field(default=None, max_length=20)
    queue_order: int = Field(default=0)
    status: str = Field(max_length=10)
    signed_at: datetime | None = _when(nullable=True)


class LedgerEntryRow(SQLModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="ck_ledger_amount_nonzero"),
        Index("ix_ledger_account_id", "account_id", "id"),
        Index("ix_ledger_envelope", "envelope_id"),
        Index("ix_ledger_notification", "notification_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False))
    pool: str = Field(max_length=12)
    amount: int
    reason: str = Field(max_length=16)
    idempotency_key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    envelope_id: int | None = Field(default=None)
    notification_id: int | None = Field(default=None)
    actor_user_id: int | None = Field(default=None)
    note: str = Field(default="", max_length=500)
    created_at: datetime = _when()


class NotificationRow(SQLModel, table=True):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_signer_channel", "signer_id", "channel", "created_at"),
        Index("ix_notifications_account_created", "account_id", "created_at"),
        Index("ix_notifications_envelope", "envelope_id"),
        Index("ix_notifications_provider", "provider_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False))
    envelope_id: int
    signer_id: int
    channel: str = Field(max_length=10)
    kind: str = Field(max_length=20)
    destination: str = Field(max_length=300)
    cost: int = Field(default=0)
    segments: int = Field(default=1)
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(max_length=10)
    idempotency_key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    requested_by: int | None = Field(default=None)
    provider_id: str | None = Field(default=None, max_length=64)
    error_code: str | None = Field(default=None, max_length=40)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _when(nullable=True)
    lease_until: datetime | None = _when(nullable=True)
    created_at: datetime = _when()
    updated_at: datetime = _when()


metadata = SQLModel.metadata
