"""Tab counts are kept a few seconds per (account, creator) and forgotten on a change."""

from __future__ import annotations

from bot.telegram.counts import TtlCountCache
from core.browse import Tab


def test_counts_expire_after_the_ttl_and_are_forgotten_per_account() -> None:
    now = [100.0]
    cache = TtlCountCache(ttl=5, clock=lambda: now[0])
    cache.put((1, None), {Tab.PENDENTES: 3})
    cache.put((1, 7), {Tab.PENDENTES: 1})
    cache.put((2, None), {Tab.PENDENTES: 9})
    now[0] += 5
    assert cache.get((1, None)) == {Tab.PENDENTES: 3}
    cache.forget(1)
    assert cache.get((1, None)) is None and cache.get((1, 7)) is None
    assert cache.get((2, None)) == {Tab.PENDENTES: 9}
    now[0] += 0.1
    assert cache.get((2, None)) is None
