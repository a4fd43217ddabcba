"""The APScheduler service: one in-memory interval job per process, started and stopped cleanly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bot.bootstrap import App
from bot.scheduler.service import JOB_ID, SchedulerService, build_scheduler
from bot.scheduler.tick import TickReport
from tests.support.scheduler import RecordingSender


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_service_ticks_at_once_and_then_every_interval_until_stopped() -> None:
    calls: list[float] = []

    async def tick() -> None:
        calls.append(time.monotonic())

    service = SchedulerService(tick, interval_seconds=0.2, jitter_seconds=0)
    await service.start()
    await until(lambda: len(calls) >= 3)
    await service.stop()
    stopped_at = len(calls)
    await asyncio.sleep(0.6)  # three intervals: a live job would have ticked again
    assert len(calls) == stopped_at and not service.running
    assert calls[1] - calls[0] >= 0.15


async def test_the_job_is_in_memory_single_and_coalesced() -> None:
    async def tick() -> None:
        return None

    service = SchedulerService(tick, interval_seconds=60)
    await service.start()
    try:
        scheduler = service._scheduler
        assert scheduler is not None
        (job,) = scheduler.get_jobs()
        assert job.id == JOB_ID
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 60)
        assert type(scheduler._lookup_jobstore("default")).__name__ == "MemoryJobStore"
    finally:
        await service.stop()


async def test_stop_lets_a_running_tick_finish() -> None:
    entered, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def tick() -> None:
        entered.set()
        await release.wait()
        finished.set()

    service = SchedulerService(tick, interval_seconds=30)
    await service.start()
    await asyncio.wait_for(entered.wait(), 10)
    stopping = asyncio.create_task(service.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert finished.is_set()


async def test_a_failing_tick_does_not_stop_the_schedule() -> None:
    calls = []

    async def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")

    service = SchedulerService(tick, interval_seconds=0.1, jitter_seconds=0)
    await service.start()
    try:
        await until(lambda: len(calls) >= 3)
    finally:
        await service.stop()
    assert service.runs >= 2


async def test_build_scheduler_wires_the_app_and_ticks(sqlite_app: App) -> None:
    sender = RecordingSender()
    service = build_scheduler(sqlite_app, bot=None, sender=sender, interval_seconds=5)  # type: ignore[arg-type]
    report = await service.run_once()
    assert isinstance(report, TickReport) and report.errors == []
    assert service.interval_seconds == 5
