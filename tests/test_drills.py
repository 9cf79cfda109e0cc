"""The drills screen shows what was measured and how each drill ended, failures included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = """
from tests.conftest import (  # noqa: F401 (the hooks of the drills screen)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_terminal_summary,
)
"""

CASES = """
import pytest

pytestmark = pytest.mark.drill_cases("counted cases")


@pytest.fixture
def broken():
    raise RuntimeError("setup failed")


@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown failed")


def test_passes():
    pass


def test_fails():
    assert False


def test_setup_error(broken):
    pass


def test_teardown_error(bad_teardown):
    pass


def test_skipped():
    pytest.skip("not here")


@pytest.mark.drill_cases("other cases")
def test_counted_elsewhere():
    pass
"""

DRILLS = """
import pytest

from tests.drills import record


@pytest.mark.drill("loses data")
def test_loses_data():
    record(acknowledged=5, lost=3)
    assert False, "lost 3"


@pytest.mark.drill("dies early ({provider})")
@pytest.mark.parametrize("provider", ["sqlite"])
def test_dies_before_measuring(provider):
    raise RuntimeError("the server did not start")


@pytest.mark.drill("cannot run")
def test_cannot_run():
    pytest.skip("needs root to mount a small tmpfs")


@pytest.mark.drill("holds")
def test_holds():
    record(acknowledged=7, lost=0)
    record(acknowledged=3)
"""


def test_the_screen_shows_failures_errors_and_skips(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cases.py").write_text(CASES)
    (tmp_path / "test_drills.py").write_text(DRILLS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    screen = result.stdout.split(" drills ", 1)[-1]
    lines = {" ".join(line.split()) for line in screen.splitlines()}
    assert "counted cases passed 1 failed 3 skipped 1" in lines, result.stdout
    assert "other cases passed 1 failed 0 skipped 0" in lines, result.stdout
    assert "loses data acknowledged 5 lost 3 FAILED" in lines, result.stdout
    assert "dies early (sqlite) FAILED" in lines, result.stdout
    assert "cannot run skipped: needs root to mount a small tmpfs" in lines, result.stdout
    assert "holds acknowledged 10 lost 0 passed" in lines, result.stdout
