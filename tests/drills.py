"""What the drills survived, printed as one screen at the end of the test run.

A drill test calls `record("kill -9 under load", acknowledged=120, lost=0)`; the
summary (pytest's terminal summary, see conftest.py) shows every drill that ran.
"""

from __future__ import annotations

from typing import Any

_RESULTS: dict[str, dict[str, Any]] = {}


def record(drill: str, **figures: Any) -> None:
    """Add figures to a drill's line (figures of the same name add up)."""
    line = _RESULTS.setdefault(drill, {})
    for name, value in figures.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and name in line:
            line[name] += value
        else:
            line[name] = value


def summary() -> list[str]:
    if not _RESULTS:
        return []
    width = max(len(d) for d in _RESULTS)
    lines = []
    for drill, figures in _RESULTS.items():
        shown = "   ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in figures.items())
        lines.append(f" {drill:<{width}}   {shown}")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
