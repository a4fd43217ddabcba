"""One scheduler tick: find due work in the database, claim it, send it, record how it went.

Safe in several processes at once: every pass claims with an insert behind a unique key (or a
conditional update) before anything is sent, so the process whose claim wins sends and the
others skip. A process that dies between claim and send loses that message rather than
repeating it (at most once), and the claim row says so (state `claimed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.scheduler import render
from bot.scheduler.pacer import Delivery, Outgoing, Sender
from core.reminders import (
    BalanceNotice,
    Delivered,
    ExpiryNotice,
    Notice,
    NudgeNotice,
    Reminders,
    RenewalNotice,
)

logger = logging.getLogger(__name__)


@dataclass
class TickReport:
    renewals: int = 0
    expiries: int = 0
    planned: int = 0
    nudges: int = 0
    alerts: int = 0
    messages: int = 0
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def render_notice(notice: Notice, language: str, now: datetime) -> render.Rendered:
    if isinstance(notice, NudgeNotice):
        return render.nudge(notice, language, now)
    if isinstance(notice, ExpiryNotice):
        return render.expiry(notice, language)
    if isinstance(notice, RenewalNotice):
        return render.renewal(notice, language)
    return render.balance(notice, language)


class Tick:
    """Callable once per interval; holds no state between calls but the sender's pacing."""

    def __init__(self, reminders: Reminders, sender: Sender) -> None:
        self.reminders = reminders
        self.sender = sender

    async def __call__(self) -> TickReport:
        started = time.perf_counter()
        report = TickReport()
        notices: list[Notice] = []
        # Renewals first (alerts then see the new balance), expiry before nudges.
        passes: list[tuple[str, Callable[[], Sequence[Notice] | int]]] = [
            ("renewals", self.reminders.renewals),
            ("expiries", self.reminders.expiries),
            ("planned", self.reminders.sweep),
            ("nudges", self.reminders.envelopes),
            ("alerts", self.reminders.alerts),
        ]
        for name, run in passes:
            try:
                found = await asyncio.to_thread(run)
            except Exception as exc:  # one failing pass must not stop the others
                logger.exception("scheduler pass %s failed", name)
                report.errors.append(f"{name}: {type(exc).__name__}")
                continue
            if isinstance(found, int):
                setattr(report, name, found)
            else:
                setattr(report, name, len(found))
                notices.extend(found)
        if notices:
            await self._send(notices, report)
        report.seconds = time.perf_counter() - started
        return report

    async def _send(self, notices: list[Notice], report: TickReport) -> None:
        now = self.reminders.clock.now()
        outgoing: list[Outgoing] = []
        owners: list[int] = []
        for index, notice in enumerate(notices):
            for recipient in notice.recipients:
                try:
                    page = render_notice(notice, recipient.language, now)
                except Exception:  # a broken text must not take the other messages down
                    logger.exception("could not render a scheduler message")
                    continue
                outgoing.append(Outgoing(recipient.telegram_user_id, page.html, page.markup))
                owners.append(index)
        results = await self.sender.send(outgoing) if outgoing else []
        sent = [0] * len(notices)
        failed = [0] * len(notices)
        for owner, result in zip(owners, results, strict=True):
            if result is Delivery.SENT:
                sent[owner] += 1
            else:
                failed[owner] += 1
        report.messages = len(outgoing)
        report.sent = sum(r is Delivery.SENT for r in results)
        report.blocked = sum(r is Delivery.BLOCKED for r in results)
        report.failed = sum(r is Delivery.FAILED for r in results)
        done = [
            Delivered(n, sent[i], failed[i])
            for i, n in enumerate(notices)
            if not isinstance(n, BalanceNotice)
        ]
        try:
            await asyncio.to_thread(self.reminders.record, done)
        except Exception:
            logger.exception("could not record how the scheduler's messages went")
