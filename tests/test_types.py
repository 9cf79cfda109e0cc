"""The product type-checks: mypy, as configured in pyproject.toml, finds nothing.

Every package is checked with `check_untyped_defs`; `domain/` and `storage/` with what
`--strict` turns on (every function annotated, no bare generics, no `Any` returned as a
typed value...). Event classes are declared in their aggregates, so a handler that reads a
field an event does not have fails here, not in production.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_mypy_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],  # the files and options are pyproject.toml's
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
