"""What the benchmarks print: percentiles of a list of latencies."""

from __future__ import annotations


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of the values, nearest-rank; (0, 0) for none."""
    ordered = sorted(values) or [0.0]
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
