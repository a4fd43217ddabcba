"""A short-lived, per-process cache of envelope tab counts (a few seconds, then recounted)."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.browse import Tab

DEFAULT_TTL_SECONDS = 5.0


class TtlCountCache:
    """Counts per (account, creator) for `ttl` seconds; state changes made here forget them.

    Paging through a tab re-renders the tab buttons each time; recounting 10,000 envelopes on
    every page turn would cost more than the page itself. Changes made elsewhere (imports,
    platform events, another replica) show within `ttl` seconds.
    """

    def __init__(
        self, ttl: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self._clock = ttl, clock
        self._entries: dict[tuple[int, int | None], tuple[float, dict[Tab, int]]] = {}

    def get(self, key: tuple[int, int | None]) -> dict[Tab, int] | None:
        found = self._entries.get(key)
        if found is None or self._clock() - found[0] > self.ttl:
            return None
        return found[1]

    def put(self, key: tuple[int, int | None], counts: dict[Tab, int]) -> None:
        if len(self._entries) > 10_000:  # bounded: many accounts, one process
            self._entries.clear()
        self._entries[key] = (self._clock(), counts)

    def forget(self, account_id: int) -> None:
        for key in [k for k in self._entries if k[0] == account_id]:
            del self._entries[key]
