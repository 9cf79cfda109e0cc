"""Log files: one format per record for every handler, rotation at the configured size, and
what the server logs about its answers (one line per expected refusal, errors in error.log)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pykka
import uvicorn
from eventsourcing.persistence import PersistenceError
from freezegun import freeze_time
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.access_log import AccessLog, Ration
from app.cli import LOG_FORMAT, OnceFormatter, SizedRotatingFileHandler, setup_logging
from app.config import Settings
from app.errors import EXCEPTION_HANDLERS, ApiError
from domain.instance import InstanceNotConnected
from tests.mongo import free_port
from tests.server import wait_until


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


# -- what the server logs about its answers ---------------------------------------------


class Refuser(pykka.ThreadingActor):
    """Hands an expected domain error back to its caller, as an instance actor does."""

    def send(self) -> None:
        raise InstanceNotConnected("instance x is not connected (status: qr)")


@contextmanager
def logging_server(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 with the server's logging, access log and error handlers,
    and routes that answer what the product's routes can: an expected 4xx (directly and
    from an actor), a storage failure (503) and a bug (500)."""
    actor = Refuser.start()

    async def refused(request: Request) -> Response:
        raise ApiError(404, "instance_not_found", "Instance not found")

    async def from_actor(request: Request) -> Response:
        await asyncio.to_thread(lambda: actor.proxy().send().get(timeout=5))
        return Response()

    async def storage(request: Request) -> Response:
        raise PersistenceError("disk I/O error")

    async def bug(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = Starlette(
        routes=[
            Route("/refused", refused),
            Route("/from-actor", from_actor),
            Route("/storage", storage),
            Route("/bug", bug),
        ],
        middleware=[Middleware(AccessLog)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    setup_logging(Settings(logs_dir=tmp_path / "logs"))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=free_port(),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        wait_until(lambda: server.started)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)
        actor.stop()
        for handler in root.handlers[len(before[0]) :]:
            handler.close()
        root.handlers[:] = before[0]
        root.setLevel(before[1])
        for name in ("pykka", "uvicorn.error"):
            logging.getLogger(name).filters.clear()


def test_expected_refusals_are_one_line_and_every_5xx_an_error_with_its_request_id(
    tmp_path: Path,
) -> None:
    with logging_server(tmp_path) as url, httpx.Client(base_url=url) as client:
        refused = client.get("/refused")
        from_actor = client.get("/from-actor", headers={"X-Request-Id": "caller-id-1"})
        forged = client.get("/refused", headers={"X-Request-Id": "x request=forged code=none"})
        failures = [client.get("/storage"), client.get("/bug")]
    assert [r.status_code for r in (refused, from_actor, *failures)] == [404, 409, 503, 500]
    assert from_actor.json()["code"] == "instance_not_connected"
    assert from_actor.headers["x-request-id"] == "caller-id-1"  # the caller's own id is kept
    assert "forged" not in forged.headers["x-request-id"]  # but only a plain token
    combined = (tmp_path / "logs" / "combined.log").read_text()
    errors = (tmp_path / "logs" / "error.log").read_text()

    # An expected refusal is its access line and nothing else: no traceback, from the
    # route or from the actor that raised it.
    for answer in (refused, from_actor):
        rid = answer.headers["x-request-id"]
        lines = [line for line in combined.splitlines() if rid in line]
        assert len(lines) == 1 and " INFO app.access: " in lines[0], lines
        assert lines[0].endswith(f"request={rid} code={answer.json()['code']}")
    assert "Exception returned from" not in combined

    # error.log holds errors only: each line starts a record at ERROR or above, or continues
    # the traceback of one.
    records = [line for line in errors.splitlines() if re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert records and all(re.search(r" (ERROR|CRITICAL) ", line) for line in records), records
    # Every 5xx is an error line that names its request id; the bug's traceback is logged
    # once (the error handler's, with the id), not again by uvicorn without it.
    for answer in failures:
        rid = answer.headers["x-request-id"]
        assert re.search(rf" ERROR app\.access: GET /\w+ 5\d\d .* request={rid}\b", errors)
    assert errors.count("Traceback") == 1 and "RuntimeError: a bug" in errors
    bug_id = failures[1].headers["x-request-id"]
    assert f"ERROR app.errors: GET /bug failed request={bug_id}" in errors
