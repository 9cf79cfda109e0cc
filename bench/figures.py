"""What the benchmarks print: percentiles of a list of latencies, a process's CPU time."""

from __future__ import annotations

import os
from pathlib import Path


def percentiles(values: list[float]) -> tuple[float, float]:
    """(p50, p99) of the values, nearest-rank; (0, 0) for none."""
    ordered = sorted(values) or [0.0]
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux); 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
