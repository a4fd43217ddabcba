"""`lacre run` serves until told to stop, and settles its startup heap once everything is up."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, cast

from bot.runner import Runtime, freeze_startup_heap, serve


class _Runtime:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


async def test_serve_calls_started_after_start_and_stops_when_told() -> None:
    runtime = _Runtime()
    stop = asyncio.Event()

    def started() -> None:
        runtime.events.append("started")
        stop.set()

    await serve(cast(Runtime, runtime), stop, started=started)
    assert runtime.events == ["start", "started", "stop"]


def test_the_startup_heap_is_kept_out_of_full_collections() -> None:
    kept: list[Any] = [object() for _ in range(10)]
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
