"""What the drills tried and measured, printed as one screen at the end of the test run.

A drill test is marked `@pytest.mark.drill("kill -9 under load ({provider})")` (the
label may name the test's parameters) and calls `record(acknowledged=120, lost=0)` with what
it measured *before* asserting on it, so that a drill that loses data shows "lost 3" on the
screen instead of disappearing. Each line ends with how its test ended: `passed`, `FAILED`
(a failed assertion, or an error while setting up or tearing down) or `skipped` with the
reason; a drill that fails or is skipped before measuring anything still gets its line.

Tests marked `@pytest.mark.drill_cases("security cases")` are counted instead: one case per
test, `failed` when any of its phases failed (setup and teardown errors included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

_LABELS: dict[str, str] = {}  # node id -> drill line, from the `drill` marker
_CASES: dict[str, str] = {}  # node id -> counted line, from the `drill_cases` marker


@dataclass
class _Line:
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""  # "", "passed", "FAILED" or "skipped: <reason>"
    cases: dict[str, str] = field(default_factory=dict)  # counted lines: node id -> outcome


_LINES: dict[str, _Line] = {}


def collected(item: pytest.Item) -> None:
    """Note the drill line of a collected test (from its marker)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    marker = item.get_closest_marker("drill")
    if marker is not None:
        _LABELS[item.nodeid] = marker.args[0].format(**params)
    marker = item.get_closest_marker("drill_cases")
    if marker is not None:
        _CASES[item.nodeid] = marker.args[0]


def record(drill: str | None = None, **figures: Any) -> None:
    """Add figures to the current test's drill line, or to the line `drill` (figures of
    the same name add up)."""
    label = drill or _LABELS[_current_test()]
    line = _LINES.setdefault(label, _Line()).figures
    for name, value in figures.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and name in line:
            line[name] += value
        else:
            line[name] = value


def reported(report: pytest.TestReport) -> None:
    """Take one phase's outcome (setup, call or teardown) of a test."""
    outcome = _outcome(report)
    label = _LABELS.get(report.nodeid)
    if label is not None:
        line = _LINES.setdefault(label, _Line())
        line.outcome = _worse(line.outcome, outcome)
    label = _CASES.get(report.nodeid)
    if label is not None:
        cases = _LINES.setdefault(label, _Line()).cases
        cases[report.nodeid] = _worse(cases.get(report.nodeid, ""), outcome)


def summary() -> list[str]:
    if not _LINES:
        return []
    width = max(len(d) for d in _LINES)
    lines = []
    for drill, line in _LINES.items():
        shown = [f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in line.figures.items()]
        if line.cases:
            outcomes = [o.split(":")[0] for o in line.cases.values()]
            shown += [f"{o.lower()} {outcomes.count(o)}" for o in ("passed", "FAILED", "skipped")]
        elif line.outcome:
            shown.append(line.outcome)
        lines.append(f" {drill:<{width}}   {'   '.join(shown)}")
    return lines


def _current_test() -> str:
    return os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]


def _outcome(report: pytest.TestReport) -> str:
    if report.failed:
        return "FAILED"
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        reason = str(reason).removeprefix("Skipped: ")
        return f"skipped: {reason[:117] + '...' if len(reason) > 120 else reason}"
    return "passed" if report.when == "call" else ""


def _worse(old: str, new: str) -> str:
    rank = {"": 0, "passed": 1, "skipped": 2, "FAILED": 3}
    return new if rank[new.split(":")[0]] > rank[old.split(":")[0]] else old


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
