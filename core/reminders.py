"""Reminder policy and the scheduler's use cases: nudges, auto-resends, expiry, renewal, alerts.

The pure rules come first (quiet hours, slot placement, catch-up, resend rounds, renewal
steps, balance checks); `Reminders` then applies them through a unit of work. Every "already
done" lives in the database behind a unique key, so any number of scheduler processes may run
the same pass at once: the one whose insert wins sends, the others find the row and move on.
Nothing here spends credits: nudges and notices are Telegram messages to the owner, automatic
resends are free e-mails through the outbox, and renewal only adds the plan's grant and lapses
non-cumulative credits.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.accounts import Account, User
from core.clock import Clock
from core.envelopes import Envelope, EnvelopeStatus, Signer
from core.errors import InvalidInput, NotAllowed, NotFound
from core.ledger import Balances, EntryDraft, Pool, Reason
from core.notifications import Channel, Kind, quote
from core.plans import Plan, add_months
from core.ports import EnvelopeQuery, NotificationDraft, UnitOfWork
from core.services import Lacre

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# What /lembretes offers; offsets are stored as seconds, largest first.
OFFSET_CHOICES: tuple[timedelta, ...] = (
    7 * DAY,
    3 * DAY,
    2 * DAY,
    DAY,
    12 * HOUR,
    6 * HOUR,
    2 * HOUR,
    HOUR,
)
DEFAULT_OFFSETS: tuple[timedelta, ...] = (3 * DAY, DAY, 2 * HOUR)
RESEND_EVERY_CHOICES: tuple[int, ...] = (1, 2, 3, 7, 14)
MAX_AUTO_RESENDS = 3
DEFAULT_LOW_NOTIFICATION_THRESHOLD = 2

# "The last moment before quiet hours start": early enough that a tick (every minute by
# default) and the pacer's queue still deliver it before they begin.
LAST_CALL = timedelta(minutes=5)
# Quiet hours move a nudge by less than a day either way; the sweep looks this much further.
QUIET_SLACK = DAY
# How often one of the scheduler processes re-reads the envelopes for new or changed ones.
SWEEP_EVERY = timedelta(minutes=5)
# How often every account's balance is checked, beside the accounts whose ledger moved.
ALERT_SWEEP_EVERY = timedelta(hours=1)
# Envelopes that expired this long before the scheduler first ran are not announced.
FIRST_RUN_LOOKBACK = DAY
# Transactions commit out of order: each expiry pass re-reads a little before its watermark.
WATERMARK_MARGIN = timedelta(minutes=10)
# Held renewal notices read per tick, in pages of the batch: rows of accounts still in their
# quiet hours (a later zone) are passed over, not waited behind.
HELD_PAGES = 20
ID_MARGIN = 100


# -- quiet hours and slots -------------------------------------------------------------------
@dataclass(frozen=True)
class QuietHours:
    """A nightly window in the account's local time; `start > end` wraps past midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours need a start different from their end")
        length = _minutes(self.end) - _minutes(self.start)
        if length % (24 * 60) > 20 * 60:
            raise ValueError("quiet hours may last at most 20 hours")

    def window(self, moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The quiet period (UTC start, UTC end) that contains `moment`, or None."""
        local = moment.astimezone(zone)
        wall = local.time().replace(tzinfo=None)
        day = local.date()
        if self.start > self.end:
            if wall >= self.start:
                first, last = day, day + DAY
            elif wall < self.end:
                first, last = day - DAY, day
            else:
                return None
        elif self.start <= wall < self.end:
            first = last = day
        else:
            return None
        start = datetime.combine(first, self.start, tzinfo=zone).astimezone(UTC)
        end = datetime.combine(last, self.end, tzinfo=zone).astimezone(UTC)
        return start, end

    def label(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


DEFAULT_QUIET = QuietHours(time(20), time(8))
# The presets /lembretes cycles through; None means no quiet hours.
QUIET_PRESETS: tuple[QuietHours | None, ...] = (
    DEFAULT_QUIET,
    QuietHours(time(21), time(8)),
    QuietHours(time(22), time(7)),
    QuietHours(time(19), time(9)),
    None,
)


def placed(
    nominal: datetime, deadline: datetime, quiet: QuietHours | None, zone: ZoneInfo
) -> datetime:
    """When something nominally due at `nominal` may go: a moment inside quiet hours waits for
    their end, unless the deadline falls before that end; then it goes just before they start."""
    found = quiet.window(nominal, zone) if quiet is not None else None
    if found is None:
        return nominal
    start, end = found
    return start - LAST_CALL if deadline <= end else end


@dataclass(frozen=True)
class ReminderSettings:
    """One account's policy; accounts without a stored row get these defaults."""

    enabled: bool = True
    offsets: tuple[timedelta, ...] = DEFAULT_OFFSETS
    quiet: QuietHours | None = DEFAULT_QUIET
    auto_resend_days: int | None = None
    low_balance_threshold: int = DEFAULT_LOW_NOTIFICATION_THRESHOLD
    # Slots due before these moments are not owed: turning nudges on (or adding an offset)
    # and turning automatic resends on do not replay the past.
    nudges_since: datetime | None = None
    auto_resend_since: datetime | None = None

    def __post_init__(self) -> None:
        unknown = [o for o in self.offsets if o not in OFFSET_CHOICES]
        if unknown:
            raise InvalidInput("unknown reminder offset", field="offsets", value=str(unknown[0]))
        if len(set(self.offsets)) != len(self.offsets):
            raise InvalidInput("an offset appears twice", field="offsets")
        ordered = tuple(sorted(self.offsets, reverse=True))
        if ordered != self.offsets:
            object.__setattr__(self, "offsets", ordered)
        if self.auto_resend_days is not None and self.auto_resend_days not in RESEND_EVERY_CHOICES:
            raise InvalidInput(
                "automatic resends go every 1, 2, 3, 7 or 14 days",
                field="auto_resend_days",
                value=self.auto_resend_days,
            )
        if not 0 <= self.low_balance_threshold <= 1000:
            raise InvalidInput("threshold out of range", field="low_balance_threshold")

    @property
    def nudging(self) -> bool:
        return self.enabled and bool(self.offsets)


@dataclass(frozen=True)
class Slot:
    """One nudge of one envelope: `offset` before the deadline, placed around quiet hours."""

    offset: timedelta
    due_at: datetime


def nudge_slots(
    deadline: datetime, settings: ReminderSettings, zone: ZoneInfo, owed_from: datetime
) -> tuple[Slot, ...]:
    """The nudges an envelope is owed, largest offset first."""
    if not settings.nudging:
        return ()
    since = max(owed_from, settings.nudges_since or owed_from)
    slots = []
    for offset in settings.offsets:
        due = placed(deadline - offset, deadline, settings.quiet, zone)
        if since <= due < deadline:
            slots.append(Slot(offset, due))
    return tuple(slots)


@dataclass(frozen=True)
class NudgePlan:
    send: Slot | None  # claim and send this one now
    superseded: tuple[Slot, ...] = ()  # earlier due slots the one above stands for
    next_check: datetime | None = None  # look again then; None: nothing more to do


def plan_nudge(
    slots: Sequence[Slot],
    deadline: datetime,
    now: datetime,
    quiet: QuietHours | None,
    zone: ZoneInfo,
) -> NudgePlan:
    """Catch-up included: after downtime only the latest passed slot goes (once), and only
    while the deadline is ahead; never inside quiet hours."""
    if now >= deadline:
        return NudgePlan(None)
    due = [s for s in slots if s.due_at <= now]
    future = [s.due_at for s in slots if s.due_at > now]
    upcoming = min(future) if future else None
    if not due:
        return NudgePlan(None, (), upcoming)
    window = quiet.window(now, zone) if quiet is not None else None
    if window is not None:
        end = window[1]
        return NudgePlan(None, (), end if end < deadline else None)
    latest = max(due, key=lambda s: (s.due_at, -s.offset))
    return NudgePlan(latest, tuple(s for s in due if s != latest), upcoming)


@dataclass(frozen=True)
class ResendPlan:
    send: int | None  # the round (1..3) to queue now
    next_check: datetime | None = None


def resend_rounds(
    base: datetime,
    every_days: int,
    deadline: datetime,
    quiet: QuietHours | None,
    zone: ZoneInfo,
) -> tuple[tuple[int, datetime], ...]:
    """(round, when) of the automatic e-mail resends: every N days after `base`, at most
    three, only before the deadline."""
    rounds = []
    for k in range(1, MAX_AUTO_RESENDS + 1):
        when = placed(base + k * timedelta(days=every_days), deadline, quiet, zone)
        if when < deadline:
            rounds.append((k, when))
    return tuple(rounds)


def plan_resend(
    rounds: Sequence[tuple[int, datetime]],
    deadline: datetime,
    now: datetime,
    quiet: QuietHours | None,
    zone: ZoneInfo,
) -> ResendPlan:
    if now >= deadline:
        return ResendPlan(None)
    due = [k for k, when in rounds if when <= now]
    future = [when for _, when in rounds if when > now]
    upcoming = min(future) if future else None
    if not due:
        return ResendPlan(None, upcoming)
    window = quiet.window(now, zone) if quiet is not None else None
    if window is not None:
        return ResendPlan(None, window[1] if window[1] < deadline else None)
    return ResendPlan(max(due), upcoming)


# -- renewal and balances --------------------------------------------------------------------
@dataclass(frozen=True)
class RenewalStep:
    cycle: datetime  # the renewal moment being processed
    next_renewal: datetime
    lapse: int  # credits that lapse (non-cumulative plans), written as `plan_expiry`
    grant: int  # the plan's monthly credits
    grant_notification: int


def next_renewal(current: datetime, anchor: datetime) -> datetime:
    """One month after `current`, keeping the anchor's day (31 Jan, 28 Feb, 31 Mar...)."""
    following = add_months(current, 1)
    last_current = calendar.monthrange(current.year, current.month)[1]
    on_anchor = current.day == min(anchor.day, last_current)
    day = anchor.day if on_anchor else current.day
    last = calendar.monthrange(following.year, following.month)[1]
    return following.replace(day=min(day, last))


def renewal_step(plan: Plan, renews_at: datetime, anchor: datetime, credits: int) -> RenewalStep:
    """What one cycle does: on a non-cumulative plan the unused credits lapse (at most one
    month's grant, so credits added by the operator stay); then the grant is added."""
    monthly = plan.monthly_credits or 0
    lapse = 0 if plan.cumulative else min(max(credits, 0), monthly)
    return RenewalStep(
        renews_at,
        next_renewal(renews_at, anchor),
        lapse,
        monthly,
        plan.monthly_notification_credits,
    )


def _cycle_keys(account_id: int, cycle: datetime) -> tuple[str, str, str]:
    """The ledger keys of one renewal cycle: the credits grant, the notification grant and
    the lapse. Each entry's note is the plan the cycle renewed."""
    day = f"{cycle:%Y-%m-%d}"
    return (
        f"renew:{account_id}:{day}",
        f"renew-notif:{account_id}:{day}",
        f"expiry:{account_id}:{day}",
    )


class AlertKind(StrEnum):
    NOTIFICATION = "notification"  # notification credits below the threshold
    CREDITS = "credits"  # credits do not cover the drafts' seal quotes


@dataclass(frozen=True)
class BalanceCheck:
    balances: Balances
    threshold: int
    drafts: int
    drafts_credits: int

    @property
    def notification_low(self) -> bool:
        return self.balances.notification_credits < self.threshold

    @property
    def credits_low(self) -> bool:
        return self.drafts_credits > 0 and self.balances.credits < self.drafts_credits

    def low(self, kind: AlertKind) -> bool:
        return self.notification_low if kind is AlertKind.NOTIFICATION else self.credits_low


# -- what the scheduler hands to the bot -----------------------------------------------------
@dataclass(frozen=True)
class Recipient:
    user_id: int
    telegram_user_id: int
    language: str


@dataclass(frozen=True)
class NudgeNotice:
    nudge_id: int
    envelope: Envelope
    account: Account
    offset: timedelta
    recipients: tuple[Recipient, ...]
    sms_cost: int  # notification credits an SMS of this envelope costs (segments)


@dataclass(frozen=True)
class ExpiryNotice:
    expiry_id: int
    envelope: Envelope
    account: Account
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True)
class RenewalNotice:
    renewal_id: int
    account: Account
    plan: Plan
    step: RenewalStep
    balances: Balances
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True)
class BalanceNotice:
    account: Account
    kind: AlertKind
    check: BalanceCheck
    recipients: tuple[Recipient, ...]


Notice = NudgeNotice | ExpiryNotice | RenewalNotice | BalanceNotice


class Outcome(StrEnum):
    CLAIMED = "claimed"  # taken by a process that is about to send
    SENT = "sent"  # at least one recipient got it
    FAILED = "failed"  # nobody could be reached
    SKIPPED = "skipped"  # nothing to send (nobody linked, muted, ...)
    SUPERSEDED = "superseded"  # a later slot went out instead (catch-up)
    HELD = "held"  # done, its notice waits for the end of the account's quiet hours


@dataclass(frozen=True)
class Delivered:
    """How the messages of one notice went; the tick reports it back."""

    notice: Notice
    sent: int
    failed: int

    @property
    def outcome(self) -> Outcome:
        return Outcome.SENT if self.sent else Outcome.FAILED


# -- the storage port --------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvelopeTimes:
    """What the scheduler reads of an envelope before deciding whether to load it."""

    id: int
    account_id: int
    status: EnvelopeStatus | None  # None: the envelope is gone
    deadline: datetime | None
    created_at: datetime | None
    sealed_at: datetime | None

    @property
    def owed_from(self) -> datetime:
        """Nudges due before the envelope was sealed (or reached Lacre) are not owed."""
        return self.sealed_at or self.created_at or datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Progress:
    envelope_id: int
    account_id: int
    deadline: datetime
    next_check_at: datetime


@dataclass(frozen=True)
class Mark:
    at: datetime | None
    value: int | None


@dataclass(frozen=True)
class HeldRenewal:
    """A renewal already applied whose notice waits for the end of the quiet hours; its row
    keeps what the notice tells (cycle, next date, lapse, grants)."""

    renewal_id: int
    account_id: int
    step: RenewalStep


class ReminderRepository(Protocol):
    # settings and mutes
    def settings(self, account_ids: Iterable[int]) -> dict[int, ReminderSettings]: ...
    def save_settings(
        self, account_id: int, settings: ReminderSettings, user_id: int, now: datetime
    ) -> None: ...
    def offsets_in_use(self) -> set[timedelta]: ...
    def mute(self, envelope_id: int, account_id: int, user_id: int, now: datetime) -> bool: ...
    def is_muted(self, envelope_id: int) -> bool: ...

    # planning
    def unplanned(self, now: datetime, horizon: datetime, limit: int) -> list[EnvelopeTimes]:
        """Pending envelopes with a deadline in (now, horizon] and no plan for that deadline."""
        ...

    def unplanned_auto_resend(
        self, now: datetime, horizon: datetime, limit: int
    ) -> list[EnvelopeTimes]:
        """The same beyond the horizon, for accounts that turned automatic resends on."""
        ...

    def due(self, now: datetime, limit: int) -> list[EnvelopeTimes]:
        """The tick's due-work query: envelopes whose plan says look again by `now`."""
        ...

    def set_progress(self, rows: Sequence[Progress], now: datetime) -> None: ...
    def drop_progress(self, envelope_id: int) -> None: ...
    def recheck_account(self, account_id: int, now: datetime) -> None: ...

    # claims: an insert that only one process wins
    def claim_nudge(
        self, envelope_id: int, account_id: int, deadline: datetime, slot: Slot, now: datetime
    ) -> int | None: ...
    def supersede(
        self,
        envelope_id: int,
        account_id: int,
        deadline: datetime,
        slots: Sequence[Slot],
        now: datetime,
    ) -> None: ...
    def finish_nudge(
        self, nudge_id: int, outcome: Outcome, recipients: int, now: datetime
    ) -> None: ...
    def claim_auto_resend(self, envelope_id: int, round_: int, now: datetime) -> int | None: ...
    def set_auto_resend_queued(self, resend_id: int, queued: int) -> None: ...
    def expiring(self, after: datetime, now: datetime, limit: int) -> list[EnvelopeTimes]: ...
    def claim_expiry(
        self, envelope_id: int, account_id: int, deadline: datetime, now: datetime
    ) -> int | None: ...
    def finish_expiry(
        self, expiry_id: int, outcome: Outcome, recipients: int, now: datetime
    ) -> None: ...
    def renewals_due(self, now: datetime, limit: int) -> list[int]: ...
    def advance_renewal(self, account_id: int, current: datetime, following: datetime) -> bool:
        """Conditional: moves `plan_renews_at` only if it still is `current`."""
        ...

    def record_renewal(
        self, account_id: int, step: RenewalStep, now: datetime, state: Outcome
    ) -> int | None:
        """The cycle's row, `claimed` (to be told now) or `held` (told after quiet hours)."""
        ...

    def held_renewals(self, limit: int, after: int | None = None) -> list[HeldRenewal]:
        """Held renewals, oldest first. Until this transaction ends, no other release and no
        new hold can commit, so the search's own bookkeeping cannot skip a row. `after`: the
        next page, past that renewal id, in the same transaction (the mark stays as the first
        page left it)."""
        ...

    def release_renewal(self, renewal_id: int) -> bool:
        """Conditional: `held` -> `claimed`; True only for the caller that moved it."""
        ...

    def finish_renewal(
        self, renewal_id: int, outcome: Outcome, recipients: int, now: datetime
    ) -> None: ...
    def set_alert(self, account_id: int, kind: AlertKind, low: bool, now: datetime) -> bool:
        """Store the state; True only for the caller that moved it."""
        ...

    def raised_alerts(self, account_id: int) -> set[AlertKind]:
        """The alerts whose state is "low" (already told)."""
        ...

    def touched_accounts(self, ledger_after: int, envelope_after: int) -> set[int]:
        """Accounts with ledger entries or envelopes whose ids come after these."""
        ...

    def last_ids(self) -> tuple[int, int]:
        """The highest ledger entry id and envelope id."""
        ...

    # marks: watermarks and turns shared by every process
    def mark(self, name: str) -> Mark | None: ...
    def set_mark(
        self, name: str, *, at: datetime | None = None, value: int | None = None
    ) -> None: ...
    def take_turn(self, name: str, now: datetime, every: timedelta) -> bool:
        """True for the one process that may run `name` now (then not again for `every`)."""
        ...

    def wake_at(self, name: str, at: datetime) -> None:
        """Ask for `name` to run at `at`, or earlier if already asked for earlier."""
        ...

    def take_wake(self, name: str, now: datetime) -> bool:
        """True for the one process that clears a wake-up of `name` due by `now`."""
        ...

    # who hears about it
    def recipients(self, account_id: int, created_by: int | None) -> list[Recipient]:
        """Linked users who may see it: the creator and the admins, minus blocked chats."""
        ...

    def chat_language(self, telegram_user_id: int) -> str | None: ...
    def mark_blocked(self, telegram_user_id: int, now: datetime) -> bool: ...


class ReminderUnitOfWork(UnitOfWork, Protocol):
    @property
    def reminders(self) -> ReminderRepository: ...


class ReminderUnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> ReminderUnitOfWork: ...


# -- use cases -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReminderView:
    account: Account
    settings: ReminderSettings
    can_edit: bool


@dataclass(frozen=True)
class _Context:
    account: Account
    settings: ReminderSettings
    zone: ZoneInfo

    def quiet_window(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The account's quiet period that contains `now` (UTC start, UTC end), or None."""
        quiet = self.settings.quiet
        return quiet.window(now, self.zone) if quiet is not None else None


def zone_of(account: Account) -> ZoneInfo:
    try:
        return ZoneInfo(account.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("America/Sao_Paulo")


@dataclass
class Reminders:
    """The owner's reminder settings and every pass a scheduler tick runs."""

    lacre: Lacre
    uow: ReminderUnitOfWorkFactory
    clock: Clock
    batch: int = 500
    sweep_every: timedelta = SWEEP_EVERY
    alert_sweep_every: timedelta = ALERT_SWEEP_EVERY

    # -- the owner's side --------------------------------------------------------------------
    def view(self, user_id: int) -> ReminderView:
        with self.uow(write=False) as uow:
            user = self._linked(uow, user_id)
            account = self._account(uow, user.account_id)
            found = uow.reminders.settings([account.id]).get(account.id, ReminderSettings())
            return ReminderView(account, found, user.is_admin)

    def update(
        self, user_id: int, change: Callable[[ReminderSettings], ReminderSettings]
    ) -> ReminderView:
        """Admins change the account's policy; the account's envelopes are planned again."""
        now = self.clock.now()
        with self.uow() as uow:
            user = self._linked(uow, user_id)
            if not user.is_admin:
                raise NotAllowed("only administrators change reminders", what="reminders")
            account = self._account(uow, user.account_id)
            before = uow.reminders.settings([account.id]).get(account.id, ReminderSettings())
            after = change(before)
            if after.nudging and (
                not before.nudging or not set(after.offsets) <= set(before.offsets)
            ):
                after = replace(after, nudges_since=now)
            if after.auto_resend_days is not None and (
                after.auto_resend_days != before.auto_resend_days
            ):
                after = replace(after, auto_resend_since=now)
            uow.reminders.save_settings(account.id, after, user.id, now)
            uow.reminders.recheck_account(account.id, now)
            uow.commit()
            return ReminderView(account, after, True)

    def mute(self, user_id: int, envelope_id: int) -> bool:
        """ "Não lembrar mais": True when this tap muted it, False if it already was."""
        now = self.clock.now()
        with self.uow() as uow:
            user = self._linked(uow, user_id)
            env = uow.envelopes.get(envelope_id)
            if env is None or not user.can_see(env.account_id, env.created_by):
                raise NotFound("envelope not found", what="envelope", id=envelope_id)
            done = uow.reminders.mute(envelope_id, env.account_id, user.id, now)
            uow.commit()
            return done

    def language(self, telegram_user_id: int) -> str | None:
        """The language a linked user chose (with /idioma or at linking), if any."""
        with self.uow(write=False) as uow:
            return uow.reminders.chat_language(telegram_user_id)

    def mark_blocked(self, telegram_user_id: int) -> bool:
        with self.uow() as uow:
            done = uow.reminders.mark_blocked(telegram_user_id, self.clock.now())
            uow.commit()
            return done

    # -- the tick's passes -------------------------------------------------------------------
    def renewals(self) -> list[RenewalNotice]:
        """Each due cycle once: lapse (non-cumulative), grant, move the date, tell the admins.
        The money moves at the cycle's moment; inside the account's quiet hours only the
        notice waits, and a later tick releases it (first the ones waiting, then new cycles)."""
        now = self.clock.now()
        with self.uow() as uow:
            notices = self._release_renewals(uow, now)
            due = uow.reminders.renewals_due(now, self.batch)
            uow.commit()
        for account_id in due:
            for _ in range(24):  # a long outage may owe several cycles; each is its own step
                notice, more = self._renew_once(account_id, now)
                if notice is not None:
                    notices.append(notice)
                if not more:
                    break
        return notices

    def _release_renewals(self, uow: ReminderUnitOfWork, now: datetime) -> list[RenewalNotice]:
        """Held notices of accounts whose quiet hours are over, each claimed by one process,
        with the balances and recipients of now."""
        notices: list[RenewalNotice] = []
        after: int | None = None
        for _ in range(HELD_PAGES):
            held = uow.reminders.held_renewals(self.batch, after)
            contexts = self._contexts(uow, {h.account_id for h in held})
            for h in held:
                ctx = contexts.get(h.account_id)
                if ctx is not None and ctx.quiet_window(now) is not None:
                    continue
                notice = self._release_one(uow, h, ctx, now)
                if notice is not None:
                    notices.append(notice)
            if len(held) < self.batch:
                break
            after = held[-1].renewal_id
        return notices

    def _release_one(
        self, uow: ReminderUnitOfWork, held: HeldRenewal, ctx: _Context | None, now: datetime
    ) -> RenewalNotice | None:
        """Claim one held row (None if another process has it) and build its notice."""
        if not uow.reminders.release_renewal(held.renewal_id):
            return None
        plan = (self._renewed_plan(uow, held) or self._plan(ctx.account)) if ctx else None
        if ctx is None or plan is None:  # nothing left to name in the message
            uow.reminders.finish_renewal(held.renewal_id, Outcome.SKIPPED, 0, now)
            return None
        return self._renewal_notice(uow, held.renewal_id, ctx.account, plan, held.step, now)

    def _renewed_plan(self, uow: ReminderUnitOfWork, held: HeldRenewal) -> Plan | None:
        """The plan the held cycle renewed, as its ledger entries name it: the account may
        have changed plans between the renewal and the end of its quiet hours."""
        for key in _cycle_keys(held.account_id, held.step.cycle):
            entry = uow.ledger.by_key(key)
            if entry is not None and entry.note:
                try:
                    return self.lacre.catalogue.plan(entry.note)
                except InvalidInput:
                    return None  # a plan since withdrawn: the caller names the current one
        return None

    def _renew_once(self, account_id: int, now: datetime) -> tuple[RenewalNotice | None, bool]:
        with self.uow() as uow:
            account = uow.accounts.get(account_id)
            if account is None or account.plan_renews_at is None or account.plan_renews_at > now:
                return None, False
            plan = self._plan(account)
            if plan is None:
                return None, False
            balances = uow.ledger.balances(account_id)
            step = renewal_step(plan, account.plan_renews_at, account.created_at, balances.credits)
            if not uow.reminders.advance_renewal(account_id, step.cycle, step.next_renewal):
                return None, False  # another process renewed this cycle
            grant_key, grant_notification_key, expiry_key = _cycle_keys(account_id, step.cycle)
            lapse = EntryDraft(
                account_id,
                Pool.CREDITS,
                -step.lapse if step.lapse else -1,
                Reason.PLAN_EXPIRY,
                expiry_key,
                note=plan.code,
            )
            lapsed = step.lapse > 0 and uow.ledger.append(lapse, now)
            if lapsed and not uow.ledger.debit(account_id, Pool.CREDITS, step.lapse):
                uow.rollback()  # a seal spent them meanwhile: try again next tick
                return None, False
            for pool, amount, key in (
                (Pool.CREDITS, step.grant, grant_key),
                (Pool.NOTIFICATION, step.grant_notification, grant_notification_key),
            ):
                if amount and uow.ledger.append(
                    EntryDraft(account_id, pool, amount, Reason.PLAN_GRANT, key, note=plan.code),
                    now,
                ):
                    uow.ledger.credit(account_id, pool, amount)
            settings = uow.reminders.settings([account_id]).get(account_id, ReminderSettings())
            quiet = _Context(account, settings, zone_of(account)).quiet_window(now) is not None
            state = Outcome.HELD if quiet else Outcome.CLAIMED
            renewal_id = uow.reminders.record_renewal(account_id, step, now, state)
            notice = None
            if renewal_id is not None and not quiet:
                notice = self._renewal_notice(uow, renewal_id, account, plan, step, now)
            uow.commit()
        return notice, step.next_renewal <= now

    def _plan(self, account: Account) -> Plan | None:
        try:
            return self.lacre.catalogue.plan(account.plan_code)
        except InvalidInput:
            return None

    def _renewal_notice(
        self,
        uow: ReminderUnitOfWork,
        renewal_id: int,
        account: Account,
        plan: Plan,
        step: RenewalStep,
        now: datetime,
    ) -> RenewalNotice | None:
        """The notice of a claimed renewal row; with nobody to tell, the row is done."""
        recipients = tuple(uow.reminders.recipients(account.id, None))
        if not recipients:
            uow.reminders.finish_renewal(renewal_id, Outcome.SKIPPED, 0, now)
            return None
        balances = uow.ledger.balances(account.id)
        return RenewalNotice(renewal_id, account, plan, step, balances, recipients)

    def expiries(self) -> list[ExpiryNotice]:
        """A pending envelope whose deadline passed is marked expired once and its people told
        once, after the account's quiet hours if it expired inside them."""
        now = self.clock.now()
        with self.uow() as uow:
            mark = uow.reminders.mark("expiry")
            since = now - FIRST_RUN_LOOKBACK
            if mark is not None and mark.at is not None:
                since = mark.at
            rows = uow.reminders.expiring(min(since, now) - WATERMARK_MARGIN, now, self.batch)
            if not rows:
                uow.reminders.set_mark("expiry", at=max(now, since))
                uow.commit()
                return []
            contexts = self._contexts(uow, {r.account_id for r in rows})
        notices = []
        waiting: list[datetime] = []
        for row in rows:
            ctx = contexts.get(row.account_id)
            quiet = (
                ctx is not None and row.deadline is not None and ctx.quiet_window(now) is not None
            )
            if quiet and row.deadline is not None and not self._muted(row.id):
                waiting.append(row.deadline)  # told when the quiet hours end
                continue
            notice = self._expire(row, ctx, now)
            if notice is not None:
                notices.append(notice)
        if len(rows) < self.batch:
            # The watermark never passes an envelope still waiting for the morning.
            upto = min([max(now, since), *waiting])
            with self.uow() as uow:
                uow.reminders.set_mark("expiry", at=upto)
                uow.commit()
        return notices

    def _muted(self, envelope_id: int) -> bool:
        with self.uow(write=False) as uow:
            return uow.reminders.is_muted(envelope_id)

    def _expire(
        self, row: EnvelopeTimes, ctx: _Context | None, now: datetime
    ) -> ExpiryNotice | None:
        with self.uow() as uow:
            env = uow.envelopes.get(row.id)
            if (
                ctx is None
                or env is None
                or env.id is None
                or env.expires_at is None
                or env.expires_at != row.deadline
                or not env.is_expired(now)
            ):
                return None
            expiry_id = uow.reminders.claim_expiry(env.id, env.account_id, env.expires_at, now)
            uow.reminders.drop_progress(env.id)
            if expiry_id is None:  # another process has it
                uow.commit()
                return None
            recipients: tuple[Recipient, ...] = ()
            if not uow.reminders.is_muted(env.id):
                recipients = tuple(uow.reminders.recipients(env.account_id, env.created_by))
            if not recipients:
                uow.reminders.finish_expiry(expiry_id, Outcome.SKIPPED, 0, now)
            uow.commit()
        return ExpiryNotice(expiry_id, env, ctx.account, recipients) if recipients else None

    def sweep(self) -> int:
        """Plan envelopes that are new or changed; one process per `sweep_every` does it."""
        now = self.clock.now()
        with self.uow() as uow:
            if not uow.reminders.take_turn("sweep", now, self.sweep_every):
                uow.commit()
                return 0
            longest = max(uow.reminders.offsets_in_use() | set(DEFAULT_OFFSETS))
            horizon = now + longest + QUIET_SLACK
            rows = uow.reminders.unplanned(now, horizon, self.batch)
            rows += uow.reminders.unplanned_auto_resend(now, horizon, self.batch)
            contexts = self._contexts(uow, {r.account_id for r in rows})
            planned = []
            for row in rows:
                assert row.deadline is not None
                ctx = contexts[row.account_id]
                nudge, resend = self._plans(row, ctx, now)
                soon = [
                    now if (nudge.send is not None or resend.send is not None) else None,
                    nudge.next_check,
                    resend.next_check,
                ]
                when = min((w for w in soon if w is not None), default=row.deadline)
                planned.append(Progress(row.id, row.account_id, row.deadline, when))
            uow.reminders.set_progress(planned, now)
            if len(rows) >= self.batch:
                uow.reminders.set_mark("sweep", at=now - self.sweep_every)  # more to plan
            uow.commit()
        return len(planned)

    def envelopes(self) -> list[NudgeNotice]:
        """Nudges and automatic resends of the envelopes whose plan says "now"."""
        now = self.clock.now()
        with self.uow(write=False) as uow:
            rows = uow.reminders.due(now, self.batch)
            contexts = self._contexts(uow, {r.account_id for r in rows})
        notices = []
        for row in rows:
            notice = self._envelope(row, contexts.get(row.account_id), now)
            if notice is not None:
                notices.append(notice)
        return notices

    def _plans(
        self, row: EnvelopeTimes, ctx: _Context, now: datetime
    ) -> tuple[NudgePlan, ResendPlan]:
        assert row.deadline is not None
        s = ctx.settings
        slots = nudge_slots(row.deadline, s, ctx.zone, row.owed_from)
        nudge = plan_nudge(slots, row.deadline, now, s.quiet, ctx.zone)
        resend = ResendPlan(None)
        if s.auto_resend_days is not None:
            base = max(row.owed_from, s.auto_resend_since or row.owed_from)
            rounds = resend_rounds(base, s.auto_resend_days, row.deadline, s.quiet, ctx.zone)
            resend = plan_resend(rounds, row.deadline, now, s.quiet, ctx.zone)
        return nudge, resend

    def _envelope(
        self, row: EnvelopeTimes, ctx: _Context | None, now: datetime
    ) -> NudgeNotice | None:
        live = (
            ctx is not None
            and row.status is EnvelopeStatus.PENDENTE
            and row.deadline is not None
            and row.deadline > now
        )
        if not live:
            with self.uow() as uow:
                uow.reminders.drop_progress(row.id)
                uow.commit()
            return None
        assert ctx is not None and row.deadline is not None
        nudge, resend = self._plans(row, ctx, now)
        later = min(
            (w for w in (nudge.next_check, resend.next_check) if w is not None),
            default=row.deadline,
        )
        progress = Progress(row.id, row.account_id, row.deadline, later)
        notice = None
        with self.uow() as uow:
            if nudge.send is None and resend.send is None:
                uow.reminders.set_progress([progress], now)
                uow.commit()
                return None
            env = uow.envelopes.get(row.id)
            if (
                env is None
                or env.id is None
                or env.status is not EnvelopeStatus.PENDENTE
                or env.expires_at != row.deadline
            ):
                uow.reminders.set_progress([replace(progress, next_check_at=now)], now)
                uow.commit()
                return None
            if uow.reminders.is_muted(env.id):
                # Kept planned until its deadline so the sweep does not pick it up again.
                muted = replace(progress, next_check_at=row.deadline)
                uow.reminders.set_progress([muted], now)
                uow.commit()
                return None
            if nudge.send is not None and env.pending_signers():
                nudge_id = uow.reminders.claim_nudge(
                    env.id, env.account_id, row.deadline, nudge.send, now
                )
                if nudge_id is not None:
                    uow.reminders.supersede(
                        env.id, env.account_id, row.deadline, nudge.superseded, now
                    )
                    recipients = tuple(uow.reminders.recipients(env.account_id, env.created_by))
                    if recipients:
                        sms = quote(Channel.SMS, self.lacre.sms_text(env)).cost
                        notice = NudgeNotice(
                            nudge_id, env, ctx.account, nudge.send.offset, recipients, sms
                        )
                    else:
                        uow.reminders.finish_nudge(nudge_id, Outcome.SKIPPED, 0, now)
            if resend.send is not None:
                resend_id = uow.reminders.claim_auto_resend(env.id, resend.send, now)
                if resend_id is not None:
                    queued = self._queue_auto_resend(uow, env, resend.send, now)
                    uow.reminders.set_auto_resend_queued(resend_id, queued)
            uow.reminders.set_progress([progress], now)
            uow.commit()
        return notice

    def _queue_auto_resend(
        self, uow: ReminderUnitOfWork, env: Envelope, round_: int, now: datetime
    ) -> int:
        """Free e-mails to the signers in turn, through the outbox (cost 0, no ledger entry)."""
        queued = 0
        targets: list[Signer] = [
            s
            for s in env.signers_in_turn()
            if self.lacre.channel_problem(uow, env, s, Channel.EMAIL, now) is None
        ]
        for signer in targets:
            assert env.id is not None and signer.id is not None
            row = uow.notifications.add(
                NotificationDraft(
                    env.account_id,
                    env.id,
                    signer.id,
                    Channel.EMAIL,
                    Kind.AUTO_RESEND,
                    signer.email,
                    0,
                    1,
                    "",
                    f"auto-resend:{env.id}:{round_}:{signer.id}",
                    None,
                ),
                now,
            )
            queued += row is not None
        return queued

    def alerts(self) -> list[BalanceNotice]:
        """Low balances, once per crossing: below the threshold, or short of the drafts' quotes."""
        now = self.clock.now()
        with self.uow() as uow:
            ledger_max, envelope_max = uow.reminders.last_ids()
            ledger_seen = self._mark_value(uow, "alerts-ledger")
            envelope_seen = self._mark_value(uow, "alerts-envelopes")
            accounts: set[int] = set()
            # The hourly sweep, or the end of quiet hours that held back a crossing.
            swept = uow.reminders.take_turn("alerts-sweep", now, self.alert_sweep_every)
            if uow.reminders.take_wake("alerts-held", now) or swept:
                accounts = {a.id for a in uow.accounts.list_all()}
            elif ledger_max > ledger_seen or envelope_max > envelope_seen:
                # Ids are handed out before commit: a margin re-reads the late committers.
                accounts = uow.reminders.touched_accounts(
                    ledger_seen - ID_MARGIN, envelope_seen - ID_MARGIN
                )
            if ledger_max != ledger_seen:
                uow.reminders.set_mark("alerts-ledger", value=ledger_max)
            if envelope_max != envelope_seen:
                uow.reminders.set_mark("alerts-envelopes", value=envelope_max)
            uow.commit()
        notices: list[BalanceNotice] = []
        for account_id in sorted(accounts):
            notices.extend(self._alert(account_id, now))
        return notices

    def _alert(self, account_id: int, now: datetime) -> list[BalanceNotice]:
        """A new crossing inside the account's quiet hours is not recorded (the state stays
        "not low"): a sweep at their end records and tells it. A recovery is recorded."""
        with self.uow() as uow:
            account = uow.accounts.get(account_id)
            if account is None:
                return []
            settings = uow.reminders.settings([account_id]).get(account_id, ReminderSettings())
            quiet = _Context(account, settings, zone_of(account)).quiet_window(now)
            drafts = uow.envelopes.query(
                EnvelopeQuery(account_id, statuses=(EnvelopeStatus.RASCUNHO,), limit=10_000)
            )
            needed = sum(line.credits for d in drafts for line in self.lacre.seal_lines(d))
            check = BalanceCheck(
                uow.ledger.balances(account_id), settings.low_balance_threshold, len(drafts), needed
            )
            waiting = [k for k in AlertKind if check.low(k)] if quiet is not None else []
            if quiet is not None and set(waiting) - uow.reminders.raised_alerts(account_id):
                uow.reminders.wake_at("alerts-held", quiet[1])
            crossed = [
                kind
                for kind in AlertKind
                if kind not in waiting
                and uow.reminders.set_alert(account_id, kind, check.low(kind), now)
                and check.low(kind)
            ]
            recipients = tuple(uow.reminders.recipients(account_id, None)) if crossed else ()
            uow.commit()
        return [BalanceNotice(account, kind, check, recipients) for kind in crossed if recipients]

    def record(self, results: Sequence[Delivered]) -> None:
        """Write how each claimed notice went (balance alerts keep only their state)."""
        now = self.clock.now()
        with self.uow() as uow:
            for r in results:
                n = r.notice
                if isinstance(n, NudgeNotice):
                    uow.reminders.finish_nudge(n.nudge_id, r.outcome, r.sent, now)
                elif isinstance(n, ExpiryNotice):
                    uow.reminders.finish_expiry(n.expiry_id, r.outcome, r.sent, now)
                elif isinstance(n, RenewalNotice):
                    uow.reminders.finish_renewal(n.renewal_id, r.outcome, r.sent, now)
            uow.commit()

    # -- helpers -----------------------------------------------------------------------------
    def _contexts(self, uow: ReminderUnitOfWork, account_ids: set[int]) -> dict[int, _Context]:
        settings = uow.reminders.settings(account_ids)
        out = {}
        for account_id in account_ids:
            account = uow.accounts.get(account_id)
            if account is not None:
                out[account_id] = _Context(
                    account, settings.get(account_id, ReminderSettings()), zone_of(account)
                )
        return out

    @staticmethod
    def _mark_value(uow: ReminderUnitOfWork, name: str) -> int:
        mark = uow.reminders.mark(name)
        return mark.value if mark is not None and mark.value is not None else 0

    @staticmethod
    def _linked(uow: ReminderUnitOfWork, user_id: int) -> User:
        user = uow.users.get(user_id)
        if user is None or user.telegram_user_id is None:
            raise NotAllowed("this user is not linked", what="user")
        return user

    @staticmethod
    def _account(uow: ReminderUnitOfWork, account_id: int) -> Account:
        account = uow.accounts.get(account_id)
        if account is None:
            raise NotFound(f"no account {account_id}", what="account", id=account_id)
        return account
