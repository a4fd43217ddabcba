"""Tables of the Telegram bot: pending confirmations and per-Telegram-user chat state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel

from storage.tables import UTCDateTime


class ConfirmationRow(SQLModel, table=True):
    __tablename__ = "bot_confirmations"
    __table_args__ = (Index("ix_bot_confirmations_user", "user_id", "created_at"),)

    nonce: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id"), nullable=False))
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False))
    action: str = Field(max_length=12)
    envelope_id: int
    signer_id: int | None = Field(default=None)
    channel: str | None = Field(default=None, max_length=10)
    quoted_cost: int
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class TelegramChatRow(SQLModel, table=True):
    __tablename__ = "telegram_chats"

    # Telegram user ids exceed 32 bits.
    telegram_user_id: int = Field(
        sa_column=Column(BigInteger, primary_key=True, autoincrement=False)
    )
    language: str | None = Field(default=None, max_length=10)
    blocked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    search: str = Field(default="", max_length=100)
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
