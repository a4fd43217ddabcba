"""Percentiles of timed samples, shared by the benchmarks."""

from __future__ import annotations


def percentile(samples: list[float], p: float) -> float:
    """The `p`-th percentile (0-100) of `samples`, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
