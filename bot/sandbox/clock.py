"""The sandbox's clock: the wall clock plus an offset the demo page moves forward, never back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _wall() -> datetime:
    return datetime.now(UTC)


class ShiftedClock:
    """A Clock that runs with the wall clock, `offset` ahead of it.

    `advance` only moves forward, and `now` never returns an earlier moment than it did
    before (even if the wall clock is set back), so nudges and expiries, once due, stay due.
    Thread-safe: the bot calls it from worker threads too.
    """

    def __init__(
        self, offset: timedelta = timedelta(0), *, wall: Callable[[], datetime] = _wall
    ) -> None:
        if offset < timedelta(0):
            raise ValueError("the offset cannot be negative")
        self._wall = wall
        self._offset = offset
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        return self._offset

    def now(self) -> datetime:
        moment = self._wall().astimezone(UTC) + self._offset
        with self._lock:
            if moment < self._last:
                moment = self._last
            self._last = moment
            return moment

    def timestamp(self) -> float:
        """Seconds since the epoch, for adapters that speak Unix time (the fake Bot API)."""
        return self.now().timestamp()

    def advance(self, delta: timedelta) -> datetime:
        """Move simulated time forward by `delta`; returns the new now."""
        if delta <= timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset += delta
        return self.now()
