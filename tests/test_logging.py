"""Log files: one format per record for every handler, and rotation at the configured size."""

from __future__ import annotations

import logging
from pathlib import Path

from freezegun import freeze_time

from app.access_log import Ration
from app.cli import LOG_FORMAT, OnceFormatter, SizedRotatingFileHandler


def logger_to(*handlers: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test-logging-{id(handlers)}")
    logger.propagate = False
    for handler in handlers:
        handler.setFormatter(OnceFormatter(LOG_FORMAT))
        logger.addHandler(handler)
    return logger


def test_the_file_rotates_at_its_size_and_keeps_its_backups(tmp_path: Path) -> None:
    path = tmp_path / "combined.log"
    path.write_text("x" * 900 + "\n")  # an earlier run's lines count towards the size
    handler = SizedRotatingFileHandler(path, maxBytes=1000, backupCount=2)
    logger = logger_to(handler)
    for n in range(30):
        logger.warning("line %02d %s", n, "y" * 40)
    handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["combined.log", "combined.log.1", "combined.log.2"]
    for name in files:
        assert 0 < (tmp_path / name).stat().st_size <= 1000
    # Nothing lost between the newest backup and the current file; the oldest went away.
    newest = (tmp_path / "combined.log.1").read_text().splitlines() + path.read_text().splitlines()
    numbers = [int(line.split("line ")[1][:2]) for line in newest]
    assert numbers == list(range(numbers[0], 30))
    assert "x" * 900 not in (tmp_path / "combined.log.2").read_text()


def test_a_record_is_formatted_once_for_all_handlers(tmp_path: Path) -> None:
    calls = []

    class Counting(OnceFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            calls.append(record)
            return super().formatTime(record, datefmt)

    first = SizedRotatingFileHandler(tmp_path / "a.log", maxBytes=10_000, backupCount=1)
    second = SizedRotatingFileHandler(tmp_path / "b.log", maxBytes=10_000, backupCount=1)
    logger = logging.getLogger("test-logging-once")
    logger.propagate = False
    formatter = Counting(LOG_FORMAT)
    for handler in (first, second):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.warning("hello %s", "world")
    for handler in (first, second):
        handler.close()
        logger.removeHandler(handler)
    assert len(calls) == 1
    assert (tmp_path / "a.log").read_text() == (tmp_path / "b.log").read_text()
    assert (tmp_path / "a.log").read_text().endswith("WARNING test-logging-once: hello world\n")


def test_a_message_is_one_line_of_bounded_length(tmp_path: Path) -> None:
    handler = SizedRotatingFileHandler(tmp_path / "c.log", maxBytes=1_000_000, backupCount=1)
    logger = logger_to(handler)
    logger.warning("GET %s", "/x\n2031-01-01 forged\r\x1b[2J\u2028more")
    logger.warning("long %s", "z" * 10_000)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")  # a traceback keeps its own lines
    handler.close()
    lines = (tmp_path / "c.log").read_text().splitlines()
    assert lines[0].endswith("GET /x\\n2031-01-01 forged\\r\\x1b[2J\\u2028more")
    assert len(lines[1]) < 4200 and lines[1].endswith("more characters]")
    assert lines[2].endswith("failed") and lines[3] == "Traceback (most recent call last):"


def test_lines_about_refused_requests_are_rationed() -> None:
    with freeze_time("2026-01-01T00:00:00Z") as clock:
        ration = Ration(burst=3, per_second=2)
        assert [ration.take() for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
        clock.tick(0.5)
        assert ration.take() == (True, 2)  # the next line says how many were left out
        assert ration.take() == (False, 0)
