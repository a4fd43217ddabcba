"""Scheduler test support: a recording sender, instances on their own engines, row readers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from telegram import Bot

from bot.bootstrap import App, bootstrap
from bot.scheduler.pacer import Delivery, Outgoing, Pacer
from bot.scheduler.tick import Tick, TickReport
from core.clock import Clock, FixedClock
from core.reminders import Reminders
from tests.conftest import make_settings
from tests.support.builders import Seeded, envelope_json, import_envelopes


@dataclass(frozen=True)
class Sent:
    at: datetime  # the (possibly travelled) wall clock when the sender was called
    chat_id: int
    html: str
    buttons: tuple[tuple[str, str], ...]  # (label, callback data)
    instance: str


@dataclass
class RecordingSender:
    """Records every message; `blocked` chats answer like Telegram's 403."""

    instance: str = "main"
    blocked: set[int] = field(default_factory=set)
    log: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_blocked: Any = None

    async def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        now = datetime.now(UTC)
        results = []
        for m in messages:
            if m.chat_id in self.blocked:
                results.append(Delivery.BLOCKED)
                if self.on_blocked is not None:
                    await asyncio.to_thread(self.on_blocked, m.chat_id)
                continue
            buttons = tuple(
                (b.text, str(b.callback_data))
                for row in (m.markup.inline_keyboard if m.markup else ())
                for b in row
            )
            with self.lock:
                self.log.append(Sent(now, m.chat_id, m.html, buttons, self.instance))
            results.append(Delivery.SENT)
        return results


class SharedLog(RecordingSender):
    """One log shared by several instances (each keeps its own name)."""

    def for_instance(self, name: str) -> RecordingSender:
        view = RecordingSender(name, self.blocked, self.log, self.lock)
        return view


@dataclass
class Instance:
    """One scheduler process: its own engine, its own use cases, its own tick."""

    name: str
    app: App
    reminders: Reminders
    tick: Tick

    def run(self) -> TickReport:
        report = asyncio.run(self.tick())
        assert report.errors == [], report.errors
        return report

    def close(self) -> None:
        self.app.engine.dispose()


def instance(
    url: str, sender: RecordingSender, *, clock: Clock | None = None, name: str = "main"
) -> Instance:
    app = bootstrap(make_settings(url), clock=clock)
    reminders = Reminders(app.lacre, app.uow, app.clock)  # type: ignore[arg-type]
    sender.on_blocked = reminders.mark_blocked
    return Instance(name, app, reminders, Tick(reminders, sender))


def as_utc(value: Any) -> datetime:
    """A timestamp read with raw SQL: SQLite gives naive text, PostgreSQL an aware datetime."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rows(app: App, sql: str, **params: Any) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def due_in_three_days(app: App, seeded: Seeded, ref: str = "ENV-1") -> int:
    """A pending envelope due 2 Dec 18:00 (São Paulo): `tick_three_days_before` nudges it."""
    return import_envelopes(
        app,
        seeded.account.id,
        envelope_json(ref, status="pendente", expires_at="2026-12-02T18:00:00-03:00"),
    )[ref]


async def tick_three_days_before(app: App, bot: Bot) -> TickReport:
    """Move the clock to the 3-day nudge of `due_in_three_days` and run a real tick through
    `bot` (the chat must be known to Telegram: the user wrote first)."""
    clock = app.clock
    assert isinstance(clock, FixedClock)
    clock.set(datetime(2026, 11, 29, 21, 0, tzinfo=UTC))
    reminders = Reminders(app.lacre, app.uow, clock)  # type: ignore[arg-type]
    return await Tick(reminders, Pacer(bot))()
