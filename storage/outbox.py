"""The outbox store: due sends claimed under a lease, moved forward only, callbacks, notices.

Every public method is one committed transaction on a unit of work, because each step of a
send must be durable before the next one starts: a claim before the send is marked
`sending`, `sending` before the provider is called, the outcome (and the owner notice it
calls for) together.

A claim selects due rows `FOR UPDATE SKIP LOCKED` and leases them in the same transaction:
on PostgreSQL several processes skip each other's rows; on SQLite the `FOR UPDATE` renders as
nothing and `BEGIN IMMEDIATE` makes the one writer claim alone (one worker process there).
The `attempts` counter, raised by every claim, fences a worker whose lease expired: its
later conditional updates name the attempt it claimed and match nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, and_, exists, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement

from core.accounts import Role
from core.delivery import SENT_FIRST_CHECK, Change, after_provider_status
from core.errors import NotFound
from core.notifications import Channel, DeliveryStatus, Notification, may_move
from storage.repositories import (
    accounts,
    insert_ignoring_duplicates,
    notification_from_row,
    notifications,
    users,
)
from storage.repositories_bot import chats
from storage.tables_delivery import DeliveryCallbackRow, DeliveryNoticeRow
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

callbacks = DeliveryCallbackRow.__table__  # type: ignore[attr-defined]
notices = DeliveryNoticeRow.__table__  # type: ignore[attr-defined]

# Callbacks whose message Lacre cannot place are looked at again for this long.
CALLBACK_MATCH_WINDOW = timedelta(days=1)

# SQLite has one writer at a time; threads of one process queue on a lock rather than on
# SQLite's busy handler, which sleeps in steps of up to 100 ms before it tries again.
_SQLITE_WRITERS: WeakKeyDictionary[Engine, threading.Lock] = WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


@dataclass(frozen=True)
class DeliveryContext:
    """What a sender needs besides the row: who sends, to whom, about which envelope."""

    notification: Notification
    account_name: str
    language: str
    timezone: str
    envelope_ref: str
    envelope_title: str
    expires_at: datetime | None
    signer_name: str
    sendable: bool  # invariant 5 still holds now: pending signer, in turn, live envelope


@dataclass(frozen=True)
class Recipient:
    telegram_user_id: int
    language: str


@dataclass(frozen=True)
class Notice:
    """An owner notice still to send for a failed row."""

    id: int
    notification: Notification
    reason: str
    refund_due: bool


@dataclass(frozen=True)
class Applied:
    """A provider status applied to a row: `moved` is False for a repeat or a step back."""

    notification: Notification
    change: Change
    moved: bool


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row.

    With a `change`, the row moves (and `next_attempt_at` is the first lookup of an
    `unknown` row). Without one, the row is released to be tried again at `next_attempt_at`:
    a queued row the provider never took, or an `unknown` row still to be looked up.
    """

    notification: Notification
    change: Change | None = None
    provider_id: str | None = None
    next_attempt_at: datetime | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class CallbackResult:
    duplicate: bool  # this (message, status) was received before: nothing was done
    applied: Applied | None  # None: no row is known for this message (yet)


def _predecessors(new: DeliveryStatus) -> list[str]:
    return [s.value for s in DeliveryStatus if may_move(s, new)]


def _claimable(status: DeliveryStatus, now: datetime) -> ColumnElement[bool]:
    n = notifications.c
    return and_(
        n.status == status.value,
        n.next_attempt_at <= now,
        or_(n.lease_until.is_(None), n.lease_until < now),
    )


def _phone_channel(destination: str) -> Channel:
    return Channel.WHATSAPP if destination.startswith("whatsapp:") else Channel.SMS


class SqlOutbox:
    """The outbox over units of work from `storage.uow`."""

    def __init__(self, uow: SqlUnitOfWorkFactory) -> None:
        self.uow = uow
        engine = uow.engine
        self._lock: threading.Lock | None = None
        if engine.dialect.name == "sqlite":
            with _SQLITE_WRITERS_GUARD:
                self._lock = _SQLITE_WRITERS.setdefault(engine, threading.Lock())

    @contextmanager
    def _write(self) -> Iterator[SqlUnitOfWork]:
        with self._lock or nullcontext(), self.uow() as uow:
            yield uow

    def _any(self, query: Any) -> bool:
        """A read-only look first, so that an idle pass takes no write lock at all."""
        with self.uow(write=False) as uow:
            return uow.connection.execute(query.limit(1)).first() is not None

    # -- claiming ----------------------------------------------------------------------------
    def claim_due(
        self, now: datetime, *, limit: int, lease: timedelta, channels: Sequence[Channel]
    ) -> list[Notification]:
        """Queued rows of these channels, due and not leased, now leased to the caller."""
        return self._claim(DeliveryStatus.QUEUED, now, limit, lease, channels)

    def claim_unknown(
        self, now: datetime, *, limit: int, lease: timedelta, channels: Sequence[Channel]
    ) -> list[Notification]:
        """`unknown` rows whose next lookup is due, leased to the caller."""
        return self._claim(DeliveryStatus.UNKNOWN, now, limit, lease, channels)

    def claim_stale_sent(
        self, now: datetime, *, limit: int, lease: timedelta, channels: Sequence[Channel]
    ) -> list[Notification]:
        """`sent` SMS and WhatsApp rows whose final status is overdue, leased to the caller."""
        return self._claim(
            DeliveryStatus.SENT, now, limit, lease, [c for c in channels if c is not Channel.EMAIL]
        )

    def _claim(
        self,
        status: DeliveryStatus,
        now: datetime,
        limit: int,
        lease: timedelta,
        channels: Sequence[Channel],
    ) -> list[Notification]:
        if not channels or limit < 1:
            return []
        n = notifications.c
        wanted = and_(_claimable(status, now), n.channel.in_([c.value for c in channels]))
        if not self._any(select(n.id).where(wanted)):
            return []
        due = (
            select(n.id)
            .where(wanted)
            .order_by(n.next_attempt_at, n.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as uow:
            # Two statements on purpose: as `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR
            # UPDATE SKIP LOCKED)` PostgreSQL may run the subquery again for each row and
            # claim far more than `limit` (found by the two-process test).
            ids = list(uow.connection.execute(due).scalars())
            if not ids:
                return []
            claimed = uow.connection.execute(
                update(notifications)
                .where(n.id.in_(ids), _claimable(status, now))
                .values(lease_until=now + lease, attempts=n.attempts + 1)
                .returning(*notifications.c)
            )
            rows = [notification_from_row(r) for r in claimed]
            uow.commit()
        return sorted(rows, key=lambda r: r.id)

    def mark_sending(
        self, claims: Sequence[tuple[int, int]], now: datetime, lease: timedelta
    ) -> set[int]:
        """Committed right before the provider calls: from here on no row is ever resent.

        `claims` are (row id, attempt of the claim); returns the ids marked, leaving out
        rows whose claim was lost (another worker claimed them again after the lease).
        """
        if not claims:
            return set()
        n = notifications.c
        with self._write() as uow:
            marked = uow.connection.execute(
                update(notifications)
                .where(
                    tuple_(n.id, n.attempts).in_(list(claims)),
                    n.status == DeliveryStatus.QUEUED.value,
                )
                .values(
                    status=DeliveryStatus.SENDING.value, lease_until=now + lease, updated_at=now
                )
                .returning(n.id)
            )
            ids = set(marked.scalars())
            uow.commit()
        return ids

    def expire_sending(self, now: datetime) -> int:
        """`sending` rows whose worker vanished become `unknown`: reconciled, never resent."""
        n = notifications.c
        expired = and_(n.status == DeliveryStatus.SENDING.value, n.lease_until < now)
        if not self._any(select(n.id).where(expired)):
            return 0
        with self._write() as uow:
            result = uow.connection.execute(
                update(notifications)
                .where(expired)
                .values(
                    status=DeliveryStatus.UNKNOWN.value,
                    lease_until=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )
            uow.commit()
        return int(result.rowcount)

    # -- outcomes ----------------------------------------------------------------------------
    def settle(self, outcomes: Sequence[Outcome], now: datetime) -> list[Applied]:
        """Record what became of claimed rows, in one transaction.

        Moves go forward only; a failure queues its owner notice in the same transaction.
        Releases name the attempt they were claimed with, so a lost claim changes nothing.
        """
        applied: list[Applied] = []
        if not outcomes:
            return applied
        n = notifications.c
        with self._write() as uow:
            conn = uow.connection
            for outcome in outcomes:
                row = outcome.notification
                if outcome.change is not None:
                    applied.append(
                        self._move(
                            conn,
                            row,
                            outcome.change,
                            now,
                            outcome.provider_id,
                            next_attempt_at=outcome.next_attempt_at,
                        )
                    )
                    continue
                values: dict[str, Any] = {
                    "next_attempt_at": outcome.next_attempt_at,
                    "lease_until": None,
                }
                if outcome.error_code:
                    values["error_code"] = outcome.error_code[:40]
                conn.execute(
                    update(notifications)
                    .where(
                        n.id == row.id,
                        n.status == row.status.value,  # queued, unknown or sent, as claimed
                        n.attempts == row.attempts,
                    )
                    .values(**values)
                )
            uow.commit()
        return applied

    def _move(
        self,
        conn: Connection,
        row: Notification,
        change: Change,
        now: datetime,
        provider_id: str | None = None,
        *,
        next_attempt_at: datetime | None = None,
    ) -> Applied:
        n = notifications.c
        if (
            next_attempt_at is None
            and change.status is DeliveryStatus.SENT
            and row.channel is not Channel.EMAIL
        ):
            # Looked up if its final status has not come by then (a lost callback).
            next_attempt_at = now + SENT_FIRST_CHECK
        values: dict[str, Any] = {
            "status": change.status.value,
            "updated_at": now,
            "lease_until": None,
            "next_attempt_at": next_attempt_at,
        }
        if change.error_code:
            values["error_code"] = change.error_code[:40]
        if provider_id:
            # Kept even when the status cannot move: the SID is what lookups and later
            # callbacks find the row by.
            values["provider_id"] = func.coalesce(n.provider_id, provider_id[:64])
        fresh = conn.execute(
            update(notifications)
            .where(n.id == row.id, n.status.in_(_predecessors(change.status)))
            .values(**values)
            .returning(*notifications.c)
        ).first()
        moved = fresh is not None
        if not moved and provider_id:
            conn.execute(
                update(notifications)
                .where(n.id == row.id, n.provider_id.is_(None))
                .values(provider_id=provider_id[:64])
            )
        if moved and change.tell_owner:
            insert_ignoring_duplicates(
                conn,
                notices,
                {
                    "notification_id": row.id,
                    "account_id": row.account_id,
                    "reason": change.reason[:40],
                    "refund_due": change.refund and row.cost > 0,
                    "created_at": now,
                },
                "notification_id",
            )
        return Applied(notification_from_row(fresh) if fresh else row, change, moved)

    # -- callbacks ---------------------------------------------------------------------------
    def apply_callback(
        self,
        message_sid: str,
        message_status: str,
        error_code: str | None,
        destination: str | None,
        now: datetime,
    ) -> CallbackResult:
        """Keep the callback once; apply it to its row if Lacre knows the message yet."""
        with self._write() as uow:
            conn = uow.connection
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = (
                dialect.insert(callbacks)
                .values(
                    message_sid=message_sid[:64],
                    message_status=message_status[:20],
                    error_code=(error_code or None) and error_code[:40],
                    destination=(destination or None) and destination[:300],
                    received_at=now,
                )
                .on_conflict_do_nothing(index_elements=["message_sid", "message_status"])
                .returning(callbacks.c.id)
            )
            callback_id = conn.execute(stmt).scalar()
            if callback_id is None:
                return CallbackResult(duplicate=True, applied=None)
            row = self._row_for(uow, message_sid, destination, now)
            applied = None
            if row is not None:
                applied = self._apply_one(
                    conn, row, callback_id, message_sid, message_status, error_code, now
                )
            uow.commit()
            return CallbackResult(duplicate=False, applied=applied)

    def apply_stored(self, now: datetime, *, limit: int = 100) -> list[Applied]:
        """Callbacks that arrived before their message was known, applied now if it is."""
        c, n = callbacks.c, notifications.c
        done: list[Applied] = []
        # Only callbacks that now have a row to go to: one for a message Lacre never sent
        # (another system on the same account) must not cost a write on every pass.
        placeable = and_(
            c.applied_at.is_(None),
            c.received_at >= now - CALLBACK_MATCH_WINDOW,
            or_(
                exists().where(n.provider_id == c.message_sid),
                exists().where(
                    n.status == DeliveryStatus.UNKNOWN.value,
                    n.provider_id.is_(None),
                    n.destination == c.destination,
                ),
            ),
        )
        if not self._any(select(c.id).where(placeable)):
            return done
        with self._write() as uow:
            conn = uow.connection
            waiting = conn.execute(
                select(c.id, c.message_sid, c.message_status, c.error_code, c.destination)
                .where(placeable)
                .order_by(c.id)
                .limit(limit)
            ).all()
            for cb in waiting:
                row = self._row_for(uow, cb.message_sid, cb.destination, now)
                if row is None:
                    continue
                applied = self._apply_one(
                    conn, row, cb.id, cb.message_sid, cb.message_status, cb.error_code, now
                )
                if applied is not None:
                    done.append(applied)
            uow.commit()
        return done

    def _row_for(
        self, uow: SqlUnitOfWork, message_sid: str, destination: str | None, now: datetime
    ) -> Notification | None:
        """The row of a message: by SID, else the oldest `unknown` row to the same address.

        An `unknown` row has no SID (its create answer never came), so its callback is the
        other way to settle it besides a lookup.
        """
        n = notifications.c
        conn = uow.connection
        found = conn.execute(
            select(notifications).where(n.provider_id == message_sid).order_by(n.id).limit(1)
        ).first()
        if found is not None:
            return notification_from_row(found)
        if not destination:
            return None
        candidate = conn.execute(
            select(notifications)
            .where(
                n.status == DeliveryStatus.UNKNOWN.value,
                n.provider_id.is_(None),
                n.destination == destination,
                n.channel == _phone_channel(destination).value,
                n.created_at >= now - CALLBACK_MATCH_WINDOW,
            )
            .order_by(n.created_at, n.id)
            .limit(1)
        ).first()
        return notification_from_row(candidate) if candidate is not None else None

    def _apply_one(
        self,
        conn: Connection,
        row: Notification,
        callback_id: int,
        message_sid: str,
        message_status: str,
        error_code: str | None,
        now: datetime,
    ) -> Applied | None:
        c = callbacks.c
        conn.execute(
            update(callbacks)
            .where(c.id == callback_id)
            .values(applied_at=now, notification_id=row.id)
        )
        change = after_provider_status(row.channel, message_status, error_code)
        if change is None:
            return None
        return self._move(conn, row, change, now, message_sid)

    # -- lookups -----------------------------------------------------------------------------
    def get(self, notification_id: int) -> Notification | None:
        with self.uow(write=False) as uow:
            return uow.notifications.get(notification_id)

    def by_provider_id(self, message_sid: str) -> Notification | None:
        n = notifications.c
        with self.uow(write=False) as uow:
            row = uow.connection.execute(
                select(notifications).where(n.provider_id == message_sid).limit(1)
            ).first()
            return notification_from_row(row) if row is not None else None

    def taken_provider_ids(self, message_sids: Iterable[str]) -> set[str]:
        """Which of these SIDs already belong to a row (a lookup must not take them twice)."""
        wanted = list(message_sids)
        if not wanted:
            return set()
        n = notifications.c
        with self.uow(write=False) as uow:
            return set(
                uow.connection.execute(
                    select(n.provider_id).where(n.provider_id.in_(wanted))
                ).scalars()
            )

    def contexts(
        self, rows: Sequence[Notification], now: datetime
    ) -> dict[int, DeliveryContext | None]:
        """Per row, what a sender needs; None when its envelope or signer is gone."""
        out: dict[int, DeliveryContext | None] = {}
        with self.uow(write=False) as uow:
            account_list = {r.account_id for r in rows}
            envelope_list = {r.envelope_id for r in rows}
            found_accounts = {a: uow.accounts.get(a) for a in account_list}
            found_envelopes = {e: uow.envelopes.get(e) for e in envelope_list}
        for r in rows:
            account, envelope = found_accounts[r.account_id], found_envelopes[r.envelope_id]
            if account is None or envelope is None:
                out[r.id] = None
                continue
            try:
                signer = envelope.signer(r.signer_id)
            except NotFound:
                out[r.id] = None
                continue
            out[r.id] = DeliveryContext(
                notification=r,
                account_name=account.name,
                language=account.language,
                timezone=account.timezone,
                envelope_ref=envelope.ref,
                envelope_title=envelope.title,
                expires_at=envelope.expires_at,
                signer_name=signer.name,
                sendable=envelope.can_notify(signer, now),
            )
        return out

    def context(self, notification: Notification, now: datetime) -> DeliveryContext | None:
        return self.contexts([notification], now)[notification.id]

    def refunded(self, notification: Notification) -> int:
        """Notification credits given back for this row (0: none)."""
        with self.uow(write=False) as uow:
            entry = uow.ledger.by_key(f"refund:{notification.idempotency_key}")
            return entry.amount if entry is not None else 0

    # -- owner notices -----------------------------------------------------------------------
    def pending_notices(self, *, limit: int = 50) -> list[Notice]:
        d, n = notices.c, notifications.c
        with self.uow(write=False) as uow:
            rows = uow.connection.execute(
                select(d.id.label("notice_id"), d.reason, d.refund_due, notifications)
                .join(notifications, n.id == d.notification_id)
                .where(d.sent_at.is_(None))
                .order_by(d.id)
                .limit(limit)
            ).all()
        return [
            Notice(r.notice_id, notification_from_row(r), r.reason, bool(r.refund_due))
            for r in rows
        ]

    def mark_notice_sent(self, notice_id: int, now: datetime) -> bool:
        """Conditional: True only for the one worker that takes this notice."""
        d = notices.c
        with self._write() as uow:
            result = uow.connection.execute(
                update(notices).where(d.id == notice_id, d.sent_at.is_(None)).values(sent_at=now)
            )
            uow.commit()
        return bool(result.rowcount == 1)

    def recipients(self, notification: Notification) -> list[Recipient]:
        """Who hears about a row: the user who asked for it, else the account's admins, each in
        the language chosen with /idioma, else their own. Never someone who blocked the bot
        (not retried until they write again): if that is who asked, the admins are told."""
        u, a, c = users.c, accounts.c, chats.c
        with self.uow(write=False) as uow:
            conn = uow.connection
            language = conn.execute(
                select(a.language).where(a.id == notification.account_id)
            ).scalar_one()
            reachable = (
                select(u.telegram_user_id, func.coalesce(c.language, u.language).label("language"))
                .select_from(users.outerjoin(chats, c.telegram_user_id == u.telegram_user_id))
                .where(
                    u.account_id == notification.account_id,
                    u.telegram_user_id.is_not(None),
                    c.blocked_at.is_(None),
                )
            )
            rows: list[Any] = []
            if notification.requested_by is not None:
                rows = list(conn.execute(reachable.where(u.id == notification.requested_by)))
            if not rows:
                rows = list(
                    conn.execute(reachable.where(u.role == Role.ADMIN.value).order_by(u.id))
                )
        return [Recipient(int(r.telegram_user_id), r.language or language) for r in rows]
