"""The scheduler in a running process: one in-memory APScheduler interval job that ticks.

APScheduler 3.11's `AsyncIOScheduler` with no persistent job store (a shared job store runs
jobs twice across processes and pickles them; all state lives in our own tables instead).
The job is set on purpose:

- `max_instances=1`: a slow tick is never overlapped by the next one in the same process
  (other processes may overlap it: their claims make that safe);
- `coalesce=True`: after the loop was blocked or the machine slept, the missed runs collapse
  into one tick, which catches up from the database anyway;
- `misfire_grace_time` = one interval: a run later than that is skipped, since the next one is
  due by then (the default of 1 second would silently drop runs of a busy loop);
- a little jitter, so replicas started together do not tick in lockstep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.scheduler.pacer import Pacer, Sender
from bot.scheduler.tick import Tick
from core.reminders import Reminders, ReminderUnitOfWorkFactory

if TYPE_CHECKING:
    from telegram import Bot

    from bot.bootstrap import App

logger = logging.getLogger(__name__)

JOB_ID = "lacre-scheduler-tick"


class SchedulerService:
    """Start and stop methods for the runner; `run_once` for tests and the CLI."""

    def __init__(
        self,
        tick: Callable[[], Awaitable[object]],
        *,
        interval_seconds: float,
        jitter_seconds: float | None = None,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("the interval must be positive")
        self.tick = tick
        self.interval_seconds = interval_seconds
        self.jitter_seconds = (
            jitter_seconds if jitter_seconds is not None else min(5.0, interval_seconds / 10)
        )
        self.runs = 0
        self._scheduler: AsyncIOScheduler | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    async def start(self) -> None:
        """Schedule the tick in the running loop: first run now, then every interval."""
        if self._scheduler is not None:
            return
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self.run_once,
            IntervalTrigger(
                seconds=self.interval_seconds,
                jitter=self.jitter_seconds or None,
                timezone=UTC,
            ),
            id=JOB_ID,
            name="scheduler tick",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self.interval_seconds)),
            replace_existing=True,
        )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """No new ticks; let a running one finish (its claims are already committed)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.pause()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            logger.warning(
                "scheduler tick still running after %.0fs; stopping anyway", grace_seconds
            )
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback

    async def run_once(self) -> object:
        self._idle.clear()
        try:
            result = await self.tick()
            self.runs += 1
            return result
        except Exception:
            logger.exception("scheduler tick failed")
            return None
        finally:
            self._idle.set()


def build_scheduler(
    app: App,
    bot: Bot,
    *,
    uow: ReminderUnitOfWorkFactory | None = None,
    sender: Sender | None = None,
    interval_seconds: float | None = None,
) -> SchedulerService:
    """Wire the scheduler for `lacre run`: every piece can be replaced by a keyword."""
    # The bootstrap's factory is the SQL one, whose units of work carry every feature's
    # repository (`reminders` among them); the App only types it as the base port.
    factory = uow or cast(ReminderUnitOfWorkFactory, app.uow)
    reminders = Reminders(app.lacre, factory, app.clock)

    async def blocked(telegram_user_id: int) -> None:
        await asyncio.to_thread(reminders.mark_blocked, telegram_user_id)

    pacer = sender or Pacer(
        bot, per_second=app.settings.scheduler_messages_per_second, on_blocked=blocked
    )
    return SchedulerService(
        Tick(reminders, pacer),
        interval_seconds=interval_seconds or app.settings.scheduler_tick_seconds,
    )
