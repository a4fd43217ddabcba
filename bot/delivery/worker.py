"""The outbox worker: an asyncio task in the bot process that sends every queued row once.

One pass (`run_once`) does, in order:
1. `sending` rows whose lease expired (their worker died) become `unknown`;
2. due `queued` rows are claimed under a lease and sent, each at most once:
   e-mail goes straight out (a repeat e-mail after a crash is harmless and free); a Twilio
   row is first marked `sending` in its own committed transaction, so a row claimed by a
   worker that died before calling Twilio is simply claimed again after its lease, while
   one that may have reached Twilio is never sent again;
3. due `unknown` rows are looked up at Twilio (by SID, else by destination and time) and
   settled, or failed and refunded once the lookups give up;
3b. `sent` SMS and WhatsApp rows whose final status is overdue (a callback that never came)
   are looked up by SID, every few hours for three days, and settled when Twilio knows;
4. status callbacks that arrived before their message SID was known are applied;
5. owner notices of failed rows are sent (refunding first, idempotently, when due).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import ParamSpec, TypeVar

from bot.delivery.owner_notices import FailureFacts, Messenger, failure_text
from bot.delivery.ports import EmailSending, Job, MessageSending, ProviderMessage
from bot.phones import mask_email, mask_phone
from core.clock import Clock
from core.delivery import (
    UNCONFIRMED,
    Attempt,
    Change,
    DeliveryPolicy,
    Verdict,
    after_attempt,
    after_provider_status,
    gave_up,
    not_sendable,
)
from core.notifications import Channel, DeliveryStatus, Notification
from core.services import Lacre
from storage.outbox import Applied, Outcome, SqlOutbox

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _masked(n: Notification) -> str:
    if n.channel is Channel.EMAIL:
        return mask_email(n.destination)
    return mask_phone(n.destination.removeprefix("whatsapp:"))


class OutboxWorker:
    """Claims, sends, reconciles and reports; `start()` / `stop()` run it as a task."""

    def __init__(
        self,
        *,
        outbox: SqlOutbox,
        lacre: Lacre,
        clock: Clock,
        email: EmailSending | None = None,
        messages: MessageSending | None = None,
        message_channels: Iterable[Channel] = (Channel.SMS, Channel.WHATSAPP),
        messenger: Messenger | None = None,
        policy: DeliveryPolicy | None = None,
        concurrency: int = 8,
        poll_seconds: float = 1.0,
        signing_url_template: str | None = None,
    ) -> None:
        self.outbox = outbox
        self.lacre = lacre
        self.clock = clock
        self.email = email
        self.messages = messages
        self.messenger = messenger
        self.policy = policy or DeliveryPolicy()
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.signing_url_template = signing_url_template or lacre.policy.signing_url_template
        self.channels: tuple[Channel, ...] = (
            *((Channel.EMAIL,) if email is not None else ()),
            *(tuple(message_channels) if messages is not None else ()),
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="lacre-outbox")

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming; let the sends in flight finish and be recorded, then return.

        Past `grace` seconds the task is cancelled: a row cut off while `sending` becomes
        `unknown` after its lease and is reconciled, never resent.
        """
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def wake(self) -> None:
        """Look at the outbox now (call from the worker's event loop)."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("outbox pass failed; trying again after the poll interval")
                busy = 0
            if busy and not self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    # -- one pass ----------------------------------------------------------------------------
    async def run_once(self) -> int:
        """One pass over the outbox; returns how many rows it sent or looked up.

        Database work is batched per pass (one claim, one read of the contexts, one
        `sending` mark, one transaction for the outcomes), so that a pass costs a handful of
        transactions whatever its size: on SQLite every write waits for the one writer.
        """
        now = self.clock.now()
        await self._db(self.outbox.expire_sending, now)
        rows = await self._db(
            self.outbox.claim_due,
            now,
            limit=self.concurrency,
            lease=self.policy.claim_lease,
            channels=self.channels,
        )
        if rows:
            await self._settle(await self._deliver(rows))
        unknown: list[Notification] = []
        stale: list[Notification] = []
        if self.messages is not None:
            unknown = await self._db(
                self.outbox.claim_unknown,
                self.clock.now(),
                limit=self.concurrency,
                lease=self.policy.claim_lease,
                channels=[c for c in self.channels if c is not Channel.EMAIL],
            )
            if unknown:
                await self._settle(await self._reconcile(unknown))
            stale = await self._db(
                self.outbox.claim_stale_sent,
                self.clock.now(),
                limit=self.concurrency,
                lease=self.policy.claim_lease,
                channels=self.channels,
            )
            if stale:
                await self._settle(await self._recheck(stale))
        for applied in await self._db(self.outbox.apply_stored, self.clock.now()):
            await self._after(applied)
        await self.send_notices()
        return len(rows) + len(unknown) + len(stale)

    async def _deliver(self, rows: list[Notification]) -> list[Outcome]:
        now = self.clock.now()
        contexts = await self._db(self.outbox.contexts, rows, now)
        outcomes: list[Outcome] = []
        jobs: list[tuple[Notification, Job]] = []
        for row in rows:
            ctx = contexts.get(row.id)
            if ctx is None or not ctx.sendable:
                log.info("%s %s: not sent, the envelope or signer moved on", row.channel, row.id)
                outcomes.append(Outcome(row, not_sendable(row.channel)))
            else:
                jobs.append((row, Job(ctx, self.signing_url_template.format(ref=ctx.envelope_ref))))
        paid = [(row.id, row.attempts) for row, _ in jobs if row.channel is not Channel.EMAIL]
        marked = await self._db(
            self.outbox.mark_sending, paid, self.clock.now(), self.policy.send_lease
        )
        calls: list[tuple[Notification, Awaitable[Attempt]]] = []
        for row, job in jobs:
            if row.channel is Channel.EMAIL:
                assert self.email is not None
                calls.append((row, self.email.send(job)))
            elif row.id in marked:
                assert self.messages is not None
                calls.append((row, self.messages.send(job)))
            else:
                log.info("%s %s: claim lost to another worker", row.channel, row.id)
        results = await asyncio.gather(*(call for _, call in calls), return_exceptions=True)
        for (row, _), result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                # Left as it is: an e-mail is claimed again after its lease, a message
                # marked `sending` becomes `unknown` and is reconciled; none is lost.
                log.error("%s %s: send crashed", row.channel, row.id, exc_info=result)
                continue
            outcomes.append(self._outcome(row, result))
        return outcomes

    def _outcome(self, row: Notification, attempt: Attempt) -> Outcome:
        now = self.clock.now()
        if attempt.verdict is Verdict.RETRY and row.channel is Channel.EMAIL:
            retry_at = self.policy.email_retry_at(row.attempts, now)
            if retry_at is not None:
                log.info("e-mail %s: temporary failure, next try at %s", row.id, retry_at)
                return Outcome(row, next_attempt_at=retry_at, error_code=attempt.error_code)
        change = after_attempt(row.channel, attempt) or gave_up(row.channel, attempt)
        first_lookup = None
        if change.status is DeliveryStatus.UNKNOWN:
            first_lookup = now + self.policy.reconcile_first_delay
        return Outcome(row, change, attempt.provider_id, first_lookup)

    async def _lookup(self, row: Notification) -> list[ProviderMessage]:
        """What Twilio has for this row; nothing when the lookup itself fails (tried later)."""
        assert self.messages is not None
        try:
            return await self.messages.lookup(row, row.created_at - self.policy.lookup_skew)
        except Exception as exc:
            log.warning("%s %s: lookup failed (%s)", row.channel, row.id, type(exc).__name__)
            return []

    async def _recheck(self, rows: list[Notification]) -> list[Outcome]:
        """`sent` rows whose final status never came: Twilio's status now, by their SID."""
        found = await asyncio.gather(*(self._lookup(r) for r in rows))
        outcomes: list[Outcome] = []
        now = self.clock.now()
        for row, listed in zip(rows, found, strict=True):
            message = next((m for m in listed if m.sid == row.provider_id), None)
            change = (
                None
                if message is None
                else after_provider_status(row.channel, message.status, message.error_code)
            )
            if message is not None and change is not None and change.status.is_final:
                log.info("%s %s: final status looked up (%s)", row.channel, row.id, change.status)
                outcomes.append(Outcome(row, change, message.sid))
                continue
            check_at = self.policy.sent_check_at(row.updated_at, now)
            if check_at is None:
                log.info(
                    "%s %s: no final status after %s; left as sent",
                    row.channel,
                    row.id,
                    self.policy.sent_give_up,
                )
            outcomes.append(Outcome(row, next_attempt_at=check_at))
        return outcomes

    async def _reconcile(self, rows: list[Notification]) -> list[Outcome]:
        found = await asyncio.gather(*(self._lookup(r) for r in rows))
        sids = [m.sid for listed in found for m in listed]
        taken = await self._db(self.outbox.taken_provider_ids, sids)
        outcomes: list[Outcome] = []
        now = self.clock.now()
        claimed_here: set[str] = set()
        for row, listed in zip(rows, found, strict=True):
            mine = [
                m
                for m in listed
                if m.sid == row.provider_id or (m.sid not in taken and m.sid not in claimed_here)
            ]
            if mine:
                message = min(mine, key=lambda m: (m.created_at or now, m.sid))
                claimed_here.add(message.sid)
                change = after_provider_status(
                    row.channel, message.status, message.error_code
                ) or Change(DeliveryStatus.SENT)
                log.info("%s %s: reconciled as %s", row.channel, row.id, message.sid)
                outcomes.append(Outcome(row, change, message.sid))
                continue
            retry_at = self.policy.reconcile_at(row.updated_at, now)
            if retry_at is None:
                log.warning("%s %s: never found at Twilio; failed, refunded", row.channel, row.id)
                outcomes.append(Outcome(row, UNCONFIRMED))
            else:
                outcomes.append(Outcome(row, next_attempt_at=retry_at))
        return outcomes

    async def _settle(self, outcomes: list[Outcome]) -> None:
        for applied in await self._db(self.outbox.settle, outcomes, self.clock.now()):
            await self._after(applied)

    async def _after(self, applied: Applied) -> None:
        """A failure that calls for a refund is refunded at once (the notice repeats it)."""
        n, change = applied.notification, applied.change
        if not applied.moved:
            return
        log.info("%s %s to %s: %s", n.channel, n.id, _masked(n), n.status)
        if change.status is DeliveryStatus.FAILED and change.refund and n.cost > 0:
            await self._db(self.lacre.refund, n.id)
        if change.tell_owner:
            self._wake.set()

    # -- owner notices -----------------------------------------------------------------------
    async def send_notices(self) -> int:
        """Refund (if due, idempotently) and tell the owner about each failed row, once."""
        if self.messenger is None:
            return 0
        sent = 0
        for notice in await self._db(self.outbox.pending_notices):
            n = notice.notification
            if notice.refund_due:
                await self._db(self.lacre.refund, n.id)
            if not await self._db(self.outbox.mark_notice_sent, notice.id, self.clock.now()):
                continue
            ctx = await self._db(self.outbox.context, n, self.clock.now())
            facts = FailureFacts(
                notification=n,
                envelope_title=ctx.envelope_title if ctx else "",
                signer_name=ctx.signer_name if ctx else "",
                reason=notice.reason,
                refunded=await self._db(self.outbox.refunded, n),
            )
            for recipient in await self._db(self.outbox.recipients, n):
                html = failure_text(facts, recipient.language)
                if await self.messenger.send(recipient.telegram_user_id, html):
                    sent += 1
        return sent

    @staticmethod
    async def _db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        # Storage is synchronous SQLAlchemy: keep it off the event loop.
        return await asyncio.to_thread(fn, *args, **kwargs)
