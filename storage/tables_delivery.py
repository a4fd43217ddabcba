"""Tables of delivery: Twilio status callbacks as received, and owner notices still to send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.tables import UTCDateTime


class DeliveryCallbackRow(SQLModel, table=True):
    """One (message, status) callback, kept once: repeats are recognised by the unique key.

    A callback can arrive before Lacre has recorded the message SID (the create answer is
    still on its way, or timed out); it waits here, unapplied, until the SID is known.
    """

    __tablename__ = "delivery_callbacks"
    __table_args__ = (
        UniqueConstraint("message_sid", "message_status", name="uq_delivery_callbacks_sid_status"),
        Index("ix_delivery_callbacks_unapplied", "applied_at", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_sid: str = Field(max_length=64)
    message_status: str = Field(max_length=20)
    error_code: str | None = Field(default=None, max_length=40)
    destination: str | None = Field(default=None, max_length=300)
    notification_id: int | None = Field(default=None)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    applied_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class DeliveryNoticeRow(SQLModel, table=True):
    """A failed send the owner must hear about (and, if due, be refunded for), exactly once.

    Written in the transaction that moved the notification to `failed`, so a crash between
    that move and the refund or the Telegram message loses neither.
    """

    __tablename__ = "delivery_notices"
    __table_args__ = (Index("ix_delivery_notices_pending", "sent_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(
        sa_column=Column(Integer, ForeignKey("notifications.id"), nullable=False, unique=True)
    )
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False))
    reason: str = Field(max_length=40)
    refund_due: bool = Field(default=False)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
