"""The scheduler's repository: core.reminders' port over one connection, in SQL Core."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, Row, case, delete, exists, func, or_, select, union, update
from sqlalchemy.dialects import postgresql, sqlite

from core.accounts import Role
from core.envelopes import EnvelopeStatus
from core.reminders import (
    OFFSET_CHOICES,
    RESEND_EVERY_CHOICES,
    AlertKind,
    EnvelopeTimes,
    HeldRenewal,
    Mark,
    Outcome,
    Progress,
    QuietHours,
    Recipient,
    ReminderSettings,
    RenewalStep,
    Slot,
)
from storage.repositories import accounts, envelopes, ledger, users
from storage.repositories_bot import SqlChatRepository
from storage.tables_bot import TelegramChatRow
from storage.tables_scheduler import (
    BalanceAlertRow,
    EnvelopeExpiryRow,
    PlanRenewalRow,
    ReminderAutoResendRow,
    ReminderMuteRow,
    ReminderNudgeRow,
    ReminderProgressRow,
    ReminderSettingsRow,
    SchedulerMarkRow,
)

settings_t = ReminderSettingsRow.__table__  # type: ignore[attr-defined]
mutes = ReminderMuteRow.__table__  # type: ignore[attr-defined]
progress = ReminderProgressRow.__table__  # type: ignore[attr-defined]
nudges = ReminderNudgeRow.__table__  # type: ignore[attr-defined]
auto_resends = ReminderAutoResendRow.__table__  # type: ignore[attr-defined]
expiries = EnvelopeExpiryRow.__table__  # type: ignore[attr-defined]
renewals = PlanRenewalRow.__table__  # type: ignore[attr-defined]
alerts = BalanceAlertRow.__table__  # type: ignore[attr-defined]
marks = SchedulerMarkRow.__table__  # type: ignore[attr-defined]
chats = TelegramChatRow.__table__  # type: ignore[attr-defined]

_PENDENTE = EnvelopeStatus.PENDENTE.value
# The lowest `plan_renewals.id` that may still be held (NULL: none): held rows are found through
# the primary key from there, so the search reads about a night of renewals, not the table.
HELD_RENEWALS = "renewals-held"
_TIMES = (
    envelopes.c.id,
    envelopes.c.account_id,
    envelopes.c.status,
    envelopes.c.expires_at,
    envelopes.c.created_at,
    envelopes.c.sealed_at,
)


def due_work_query(now: datetime, limit: int) -> Any:
    """The tick's due-work query, shared with bench/reminder_scan.py: plans that are due,
    through `ix_reminder_progress_next_check`, joined to their envelope by primary key."""
    return (
        select(
            progress.c.envelope_id,
            progress.c.account_id,
            envelopes.c.status,
            envelopes.c.expires_at,
            envelopes.c.created_at,
            envelopes.c.sealed_at,
        )
        .select_from(progress.outerjoin(envelopes, envelopes.c.id == progress.c.envelope_id))
        .where(progress.c.next_check_at <= now)
        .order_by(progress.c.next_check_at)
        .limit(limit)
    )


def sweep_query(now: datetime, horizon: datetime, limit: int) -> Any:
    """Pending envelopes with a deadline in (now, horizon] and no plan for that deadline,
    through `ix_envelopes_status_expires` and the plans' primary key."""
    planned = exists().where(
        progress.c.envelope_id == envelopes.c.id, progress.c.deadline == envelopes.c.expires_at
    )
    return (
        select(*_TIMES)
        .where(
            envelopes.c.status == _PENDENTE,
            envelopes.c.expires_at > now,
            envelopes.c.expires_at <= horizon,
            ~planned,
        )
        .order_by(envelopes.c.expires_at)
        .limit(limit)
    )


def expiry_query(after: datetime, now: datetime, limit: int) -> Any:
    """Pending envelopes whose deadline passed in (after, now] and were not marked yet:
    the watermark keeps the range to about one tick, `ix_envelopes_status_expires` finds it."""
    told = exists().where(
        expiries.c.envelope_id == envelopes.c.id,
        expiries.c.deadline == envelopes.c.expires_at,
    )
    return (
        select(*_TIMES)
        .where(
            envelopes.c.status == _PENDENTE,
            envelopes.c.expires_at > after,
            envelopes.c.expires_at <= now,
            ~told,
        )
        .order_by(envelopes.c.expires_at)
        .limit(limit)
    )


def _times(r: Any) -> EnvelopeTimes:
    return EnvelopeTimes(
        r[0],
        r[1],
        EnvelopeStatus(r[2]) if r[2] is not None else None,
        r[3],
        r[4],
        r[5],
    )


def _offsets(text: str) -> tuple[timedelta, ...]:
    return tuple(timedelta(seconds=int(x)) for x in text.split(",") if x.strip())


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _clock(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def _settings(r: Row[Any]) -> ReminderSettings:
    quiet = None
    if r.quiet_start is not None and r.quiet_end is not None:
        quiet = QuietHours(_clock(r.quiet_start), _clock(r.quiet_end))
    # A stored value the menu no longer offers is dropped rather than breaking every tick.
    return ReminderSettings(
        enabled=bool(r.enabled),
        offsets=tuple(o for o in _offsets(r.offsets) if o in OFFSET_CHOICES),
        quiet=quiet,
        auto_resend_days=r.auto_resend_days if r.auto_resend_days in RESEND_EVERY_CHOICES else None,
        low_balance_threshold=r.low_balance_threshold,
        nudges_since=r.nudges_since,
        auto_resend_since=r.auto_resend_since,
    )


class SqlReminderRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    def _claim(self, table: Any, keys: Sequence[str], values: dict[str, Any]) -> int | None:
        stmt = (
            self._insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(keys))
            .returning(table.c.id)
        )
        found = self.conn.execute(stmt).scalar()
        return None if found is None else int(found)

    # -- settings and mutes ------------------------------------------------------------------
    def settings(self, account_ids: Iterable[int]) -> dict[int, ReminderSettings]:
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        rows = self.conn.execute(select(settings_t).where(settings_t.c.account_id.in_(ids)))
        return {r.account_id: _settings(r) for r in rows}

    def save_settings(
        self, account_id: int, settings: ReminderSettings, user_id: int, now: datetime
    ) -> None:
        quiet = settings.quiet
        values = {
            "enabled": settings.enabled,
            "offsets": ",".join(str(int(o.total_seconds())) for o in settings.offsets),
            "quiet_start": _minutes(quiet.start) if quiet else None,
            "quiet_end": _minutes(quiet.end) if quiet else None,
            "auto_resend_days": settings.auto_resend_days,
            "low_balance_threshold": settings.low_balance_threshold,
            "nudges_since": settings.nudges_since,
            "auto_resend_since": settings.auto_resend_since,
            "updated_by": user_id,
            "updated_at": now,
        }
        stmt = self._insert(settings_t).values(account_id=account_id, **values)
        self.conn.execute(
            stmt.on_conflict_do_update(index_elements=[settings_t.c.account_id], set_=values)
        )

    def offsets_in_use(self) -> set[timedelta]:
        rows = self.conn.execute(
            select(settings_t.c.offsets).where(settings_t.c.enabled.is_(True)).distinct()
        ).scalars()
        return {o for text in rows for o in _offsets(text)}

    def mute(self, envelope_id: int, account_id: int, user_id: int, now: datetime) -> bool:
        stmt = (
            self._insert(mutes)
            .values(envelope_id=envelope_id, account_id=account_id, muted_by=user_id, muted_at=now)
            .on_conflict_do_nothing(index_elements=["envelope_id"])
            .returning(mutes.c.envelope_id)
        )
        # INSERT row counts are unreliable across drivers; RETURNING says who inserted.
        return self.conn.execute(stmt).first() is not None

    def is_muted(self, envelope_id: int) -> bool:
        found = self.conn.execute(
            select(mutes.c.envelope_id).where(mutes.c.envelope_id == envelope_id)
        ).first()
        return found is not None

    # -- planning ----------------------------------------------------------------------------
    def unplanned(self, now: datetime, horizon: datetime, limit: int) -> list[EnvelopeTimes]:
        return [_times(r) for r in self.conn.execute(sweep_query(now, horizon, limit))]

    def unplanned_auto_resend(
        self, now: datetime, horizon: datetime, limit: int
    ) -> list[EnvelopeTimes]:
        resending = select(settings_t.c.account_id).where(
            settings_t.c.auto_resend_days.is_not(None)
        )
        planned = exists().where(
            progress.c.envelope_id == envelopes.c.id,
            progress.c.deadline == envelopes.c.expires_at,
        )
        stmt = (
            select(*_TIMES)
            .where(
                envelopes.c.account_id.in_(resending),
                envelopes.c.status == _PENDENTE,
                envelopes.c.expires_at > horizon,
                ~planned,
            )
            .limit(limit)
        )
        return [_times(r) for r in self.conn.execute(stmt)]

    def due(self, now: datetime, limit: int) -> list[EnvelopeTimes]:
        return [_times(r) for r in self.conn.execute(due_work_query(now, limit))]

    def set_progress(self, rows: Sequence[Progress], now: datetime) -> None:
        if not rows:
            return
        stmt = self._insert(progress)
        stmt = stmt.on_conflict_do_update(
            index_elements=[progress.c.envelope_id],
            set_={
                "account_id": stmt.excluded.account_id,
                "deadline": stmt.excluded.deadline,
                "next_check_at": stmt.excluded.next_check_at,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        self.conn.execute(
            stmt,
            [
                {
                    "envelope_id": p.envelope_id,
                    "account_id": p.account_id,
                    "deadline": p.deadline,
                    "next_check_at": p.next_check_at,
                    "updated_at": now,
                }
                for p in rows
            ],
        )

    def drop_progress(self, envelope_id: int) -> None:
        self.conn.execute(delete(progress).where(progress.c.envelope_id == envelope_id))

    def recheck_account(self, account_id: int, now: datetime) -> None:
        self.conn.execute(
            update(progress)
            .where(progress.c.account_id == account_id)
            .values(next_check_at=now, updated_at=now)
        )

    # -- claims ------------------------------------------------------------------------------
    def claim_nudge(
        self, envelope_id: int, account_id: int, deadline: datetime, slot: Slot, now: datetime
    ) -> int | None:
        return self._claim(
            nudges,
            ("envelope_id", "deadline", "offset_seconds"),
            self._slot_values(envelope_id, account_id, deadline, slot, now, Outcome.CLAIMED),
        )

    def supersede(
        self,
        envelope_id: int,
        account_id: int,
        deadline: datetime,
        slots: Sequence[Slot],
        now: datetime,
    ) -> None:
        for slot in slots:
            values = self._slot_values(
                envelope_id, account_id, deadline, slot, now, Outcome.SUPERSEDED
            )
            self._claim(
                nudges, ("envelope_id", "deadline", "offset_seconds"), values | {"finished_at": now}
            )

    @staticmethod
    def _slot_values(
        envelope_id: int,
        account_id: int,
        deadline: datetime,
        slot: Slot,
        now: datetime,
        state: Outcome,
    ) -> dict[str, Any]:
        return {
            "envelope_id": envelope_id,
            "account_id": account_id,
            "deadline": deadline,
            "offset_seconds": int(slot.offset.total_seconds()),
            "due_at": slot.due_at,
            "state": state.value,
            "recipients": 0,
            "claimed_at": now,
        }

    def finish_nudge(self, nudge_id: int, outcome: Outcome, recipients: int, now: datetime) -> None:
        self._finish(nudges, nudge_id, outcome, recipients, now)

    def _finish(
        self, table: Any, row_id: int, outcome: Outcome, recipients: int, now: datetime
    ) -> None:
        self.conn.execute(
            update(table)
            .where(table.c.id == row_id)
            .values(state=outcome.value, recipients=recipients, finished_at=now)
        )

    def claim_auto_resend(self, envelope_id: int, round_: int, now: datetime) -> int | None:
        return self._claim(
            auto_resends,
            ("envelope_id", "round"),
            {"envelope_id": envelope_id, "round": round_, "queued": 0, "created_at": now},
        )

    def set_auto_resend_queued(self, resend_id: int, queued: int) -> None:
        self.conn.execute(
            update(auto_resends).where(auto_resends.c.id == resend_id).values(queued=queued)
        )

    def expiring(self, after: datetime, now: datetime, limit: int) -> list[EnvelopeTimes]:
        return [_times(r) for r in self.conn.execute(expiry_query(after, now, limit))]

    def claim_expiry(
        self, envelope_id: int, account_id: int, deadline: datetime, now: datetime
    ) -> int | None:
        return self._claim(
            expiries,
            ("envelope_id", "deadline"),
            {
                "envelope_id": envelope_id,
                "account_id": account_id,
                "deadline": deadline,
                "state": Outcome.CLAIMED.value,
                "recipients": 0,
                "created_at": now,
            },
        )

    def finish_expiry(
        self, expiry_id: int, outcome: Outcome, recipients: int, now: datetime
    ) -> None:
        self._finish(expiries, expiry_id, outcome, recipients, now)

    def renewals_due(self, now: datetime, limit: int) -> list[int]:
        rows = self.conn.execute(
            select(accounts.c.id)
            .where(accounts.c.plan_renews_at <= now)
            .order_by(accounts.c.plan_renews_at)
            .limit(limit)
        ).scalars()
        return [int(r) for r in rows]

    def advance_renewal(self, account_id: int, current: datetime, following: datetime) -> bool:
        result = self.conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id, accounts.c.plan_renews_at == current)
            .values(plan_renews_at=following)
        )
        return bool(result.rowcount == 1)

    def record_renewal(
        self, account_id: int, step: RenewalStep, now: datetime, state: Outcome
    ) -> int | None:
        renewal_id = self._claim(
            renewals,
            ("account_id", "cycle_at"),
            {
                "account_id": account_id,
                "cycle_at": step.cycle,
                "next_at": step.next_renewal,
                "lapsed": step.lapse,
                "granted": step.grant,
                "granted_notification": step.grant_notification,
                "state": state.value,
                "recipients": 0,
                "created_at": now,
            },
        )
        if renewal_id is not None and state is Outcome.HELD:
            # Lowered in this transaction: the mark's row lock makes a concurrent
            # `held_renewals` wait for this commit, or this upsert wait for that one.
            self._lower_mark(HELD_RENEWALS, "value", renewal_id)
        return renewal_id

    def _lower_mark(self, name: str, column: str, value: Any) -> None:
        """Set the mark's `column` to `value` unless it holds a lower one already (NULL: none)."""
        stmt = self._insert(marks).values({"name": name, column: value})
        current, offered = marks.c[column], stmt.excluded[column]
        lowest = case((or_(current.is_(None), current > offered), offered), else_=current)
        self.conn.execute(
            stmt.on_conflict_do_update(index_elements=[marks.c.name], set_={column: lowest})
        )

    def held_renewals(self, limit: int, after: int | None = None) -> list[HeldRenewal]:
        if after is None:
            start = self.conn.execute(
                select(marks.c.value).where(marks.c.name == HELD_RENEWALS).with_for_update()
            ).scalar()
            if start is None:
                return []
        else:
            start = after + 1  # a later page: this transaction holds the mark's lock already
        found = self.conn.execute(
            select(
                renewals.c.id,
                renewals.c.account_id,
                renewals.c.cycle_at,
                renewals.c.next_at,
                renewals.c.lapsed,
                renewals.c.granted,
                renewals.c.granted_notification,
            )
            .where(renewals.c.id >= start, renewals.c.state == Outcome.HELD.value)
            .order_by(renewals.c.id)
            .limit(limit)
        ).all()
        # Under the lock every held row is visible here or lowers the mark when it commits.
        first = found[0].id if found else None
        if after is None and first != start:
            self.conn.execute(
                update(marks).where(marks.c.name == HELD_RENEWALS).values(value=first)
            )
        return [
            HeldRenewal(
                r.id,
                r.account_id,
                RenewalStep(r.cycle_at, r.next_at, r.lapsed, r.granted, r.granted_notification),
            )
            for r in found
        ]

    def release_renewal(self, renewal_id: int) -> bool:
        result = self.conn.execute(
            update(renewals)
            .where(renewals.c.id == renewal_id, renewals.c.state == Outcome.HELD.value)
            .values(state=Outcome.CLAIMED.value)
        )
        return bool(result.rowcount == 1)

    def finish_renewal(
        self, renewal_id: int, outcome: Outcome, recipients: int, now: datetime
    ) -> None:
        self._finish(renewals, renewal_id, outcome, recipients, now)

    def set_alert(self, account_id: int, kind: AlertKind, low: bool, now: datetime) -> bool:
        column = alerts.c[f"{kind.value}_low"]
        fresh = {"notification_low": False, "credits_low": False, "updated_at": now}
        self.conn.execute(
            self._insert(alerts)
            .values(account_id=account_id, **fresh)
            .on_conflict_do_nothing(index_elements=["account_id"])
        )
        result = self.conn.execute(
            update(alerts)
            .where(alerts.c.account_id == account_id, column != low)
            .values({column: low, alerts.c.updated_at: now})
        )
        return bool(result.rowcount == 1)

    def raised_alerts(self, account_id: int) -> set[AlertKind]:
        r = self.conn.execute(select(alerts).where(alerts.c.account_id == account_id)).first()
        if r is None:
            return set()
        return {kind for kind in AlertKind if r._mapping[f"{kind.value}_low"]}

    def touched_accounts(self, ledger_after: int, envelope_after: int) -> set[int]:
        stmt = union(
            select(ledger.c.account_id).where(ledger.c.id > ledger_after),
            select(envelopes.c.account_id).where(envelopes.c.id > envelope_after),
        )
        return {int(r) for r in self.conn.execute(stmt).scalars()}

    def last_ids(self) -> tuple[int, int]:
        row = self.conn.execute(
            select(
                select(func.max(ledger.c.id)).scalar_subquery(),
                select(func.max(envelopes.c.id)).scalar_subquery(),
            )
        ).one()
        return int(row[0] or 0), int(row[1] or 0)

    # -- marks -------------------------------------------------------------------------------
    def mark(self, name: str) -> Mark | None:
        r = self.conn.execute(select(marks).where(marks.c.name == name)).first()
        return None if r is None else Mark(r.at, r.value)

    def set_mark(self, name: str, *, at: datetime | None = None, value: int | None = None) -> None:
        values: dict[str, Any] = {}
        if at is not None:
            values["at"] = at
        if value is not None:
            values["value"] = value
        if not values:
            return
        stmt = self._insert(marks).values(name=name, **values)
        self.conn.execute(stmt.on_conflict_do_update(index_elements=[marks.c.name], set_=values))

    def take_turn(self, name: str, now: datetime, every: timedelta) -> bool:
        moved = self.conn.execute(
            update(marks)
            .where(
                marks.c.name == name,
                # A mark in the future means the clock went back: take the turn anyway.
                or_(marks.c.at.is_(None), marks.c.at <= now - every, marks.c.at > now),
            )
            .values(at=now)
        )
        if moved.rowcount == 1:
            return True
        inserted = self.conn.execute(
            self._insert(marks)
            .values(name=name, at=now)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(marks.c.name)
        )
        return inserted.first() is not None

    def wake_at(self, name: str, at: datetime) -> None:
        self._lower_mark(name, "at", at)

    def take_wake(self, name: str, now: datetime) -> bool:
        taken = self.conn.execute(
            update(marks).where(marks.c.name == name, marks.c.at <= now).values(at=None)
        )
        return bool(taken.rowcount == 1)

    # -- recipients --------------------------------------------------------------------------
    def recipients(self, account_id: int, created_by: int | None) -> list[Recipient]:
        stmt = (
            select(
                users.c.id,
                users.c.telegram_user_id,
                func.coalesce(chats.c.language, users.c.language, accounts.c.language),
            )
            .select_from(
                users.join(accounts, accounts.c.id == users.c.account_id).outerjoin(
                    chats, chats.c.telegram_user_id == users.c.telegram_user_id
                )
            )
            .where(
                users.c.account_id == account_id,
                users.c.telegram_user_id.is_not(None),
                or_(users.c.role == Role.ADMIN.value, users.c.id == created_by),
                chats.c.blocked_at.is_(None),
            )
            .order_by(users.c.id)
        )
        return [Recipient(r[0], r[1], r[2] or "pt-BR") for r in self.conn.execute(stmt)]

    def chat_language(self, telegram_user_id: int) -> str | None:
        """The language chosen with /idioma, else the one stored for the user, else None
        (then Telegram's `language_code` decides)."""
        found = self.conn.execute(
            select(func.coalesce(chats.c.language, users.c.language))
            .select_from(
                users.outerjoin(chats, chats.c.telegram_user_id == users.c.telegram_user_id)
            )
            .where(users.c.telegram_user_id == telegram_user_id)
        ).scalar()
        return None if found is None else str(found)

    def mark_blocked(self, telegram_user_id: int, now: datetime) -> bool:
        # The bot's chat table holds the mark, so its handlers and the scheduler agree on it.
        return SqlChatRepository(self.conn).mark_blocked(telegram_user_id, now)
