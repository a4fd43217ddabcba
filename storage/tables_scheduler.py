"""Tables of the scheduler: reminder settings, mutes, plans, and one row per thing done once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.tables import UTCDateTime


def _when(nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


def _account_fk(primary_key: bool = False) -> Any:
    return Field(
        sa_column=Column(
            Integer,
            ForeignKey("accounts.id"),
            nullable=False,
            primary_key=primary_key,
            autoincrement=False,
        )
    )


class ReminderSettingsRow(SQLModel, table=True):
    """One account's policy; accounts without a row use the defaults of core.reminders."""

    __tablename__ = "reminder_settings"

    account_id: int = _account_fk(primary_key=True)
    enabled: bool = Field(default=True)
    offsets: str = Field(max_length=200)  # seconds before the deadline, comma-separated
    quiet_start: int | None = Field(default=None)  # minutes after local midnight
    quiet_end: int | None = Field(default=None)
    auto_resend_days: int | None = Field(default=None)
    low_balance_threshold: int = Field(default=2)
    nudges_since: datetime | None = _when(nullable=True)
    auto_resend_since: datetime | None = _when(nullable=True)
    updated_by: int | None = Field(default=None)
    updated_at: datetime = _when()


class ReminderMuteRow(SQLModel, table=True):
    """ "Não lembrar mais": the envelope gets no more nudges, resends or notices."""

    __tablename__ = "reminder_mutes"

    envelope_id: int = Field(
        sa_column=Column(Integer, ForeignKey("envelopes.id"), primary_key=True, autoincrement=False)
    )
    account_id: int = _account_fk()
    muted_by: int
    muted_at: datetime = _when()


class ReminderProgressRow(SQLModel, table=True):
    """When to look at an envelope again, for the deadline it had then: the due-work index."""

    __tablename__ = "reminder_progress"
    __table_args__ = (
        Index("ix_reminder_progress_next_check", "next_check_at"),
        Index("ix_reminder_progress_account", "account_id"),
    )

    envelope_id: int = Field(
        sa_column=Column(Integer, ForeignKey("envelopes.id"), primary_key=True, autoincrement=False)
    )
    account_id: int = _account_fk()
    deadline: datetime = _when()
    next_check_at: datetime = _when()
    updated_at: datetime = _when()


class ReminderNudgeRow(SQLModel, table=True):
    """One (envelope, deadline, offset) slot, inserted before sending: the unique key is the
    claim that keeps several scheduler processes from nudging twice."""

    __tablename__ = "reminder_nudges"
    __table_args__ = (
        UniqueConstraint(
            "envelope_id", "deadline", "offset_seconds", name="uq_reminder_nudges_slot"
        ),
        Index("ix_reminder_nudges_account", "account_id", "claimed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    envelope_id: int = Field(sa_column=Column(Integer, ForeignKey("envelopes.id"), nullable=False))
    account_id: int = _account_fk()
    deadline: datetime = _when()
    offset_seconds: int
    due_at: datetime = _when()
    state: str = Field(max_length=12)
    recipients: int = Field(default=0)
    claimed_at: datetime = _when()
    finished_at: datetime | None = _when(nullable=True)


class ReminderAutoResendRow(SQLModel, table=True):
    """One automatic e-mail round (1..3) of one envelope."""

    __tablename__ = "reminder_auto_resends"
    __table_args__ = (
        UniqueConstraint("envelope_id", "round", name="uq_reminder_auto_resends_round"),
    )

    id: int | None = Field(default=None, primary_key=True)
    envelope_id: int = Field(sa_column=Column(Integer, ForeignKey("envelopes.id"), nullable=False))
    round: int
    queued: int = Field(default=0)
    created_at: datetime = _when()


class EnvelopeExpiryRow(SQLModel, table=True):
    """A pending envelope whose deadline passed: marked once, its people told once."""

    __tablename__ = "envelope_expiries"
    __table_args__ = (
        UniqueConstraint("envelope_id", "deadline", name="uq_envelope_expiries_deadline"),
    )

    id: int | None = Field(default=None, primary_key=True)
    envelope_id: int = Field(sa_column=Column(Integer, ForeignKey("envelopes.id"), nullable=False))
    account_id: int = _account_fk()
    deadline: datetime = _when()
    state: str = Field(max_length=12)
    recipients: int = Field(default=0)
    created_at: datetime = _when()
    finished_at: datetime | None = _when(nullable=True)


class PlanRenewalRow(SQLModel, table=True):
    """One plan cycle of one account; the ledger keys `renew:`/`expiry:` carry the same date."""

    __tablename__ = "plan_renewals"
    __table_args__ = (UniqueConstraint("account_id", "cycle_at", name="uq_plan_renewals_cycle"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = _account_fk()
    cycle_at: datetime = _when()
    next_at: datetime = _when()
    lapsed: int = Field(default=0)
    granted: int = Field(default=0)
    granted_notification: int = Field(default=0)
    state: str = Field(max_length=12)
    recipients: int = Field(default=0)
    created_at: datetime = _when()
    finished_at: datetime | None = _when(nullable=True)


class BalanceAlertRow(SQLModel, table=True):
    """Whether each low-balance alert is raised: an alert goes out when it turns on."""

    __tablename__ = "balance_alerts"

    account_id: int = _account_fk(primary_key=True)
    notification_low: bool = Field(default=False)
    credits_low: bool = Field(default=False)
    updated_at: datetime = _when()


class SchedulerMarkRow(SQLModel, table=True):
    """Watermarks and turns every scheduler process shares (expiry, sweeps, alert ids)."""

    __tablename__ = "scheduler_marks"

    name: str = Field(sa_column=Column(String(40), primary_key=True))
    at: datetime | None = _when(nullable=True)
    value: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
