"""One log line per request: method, route, status, duration, instance, request id and the
error code of an error answer; never bodies or keys. Answers of 5xx are errors (error.log).

What a client chose (a path that matched no route, an instance id) is logged shortened
(and, by the log formatter, with its control characters escaped), a request target longer
than MAX_TARGET is refused with 414 before anything else, and lines about requests that
were refused without credentials are rationed (JUNK_BURST at once, JUNK_PER_SECOND after
that; the rest are counted in one line), so junk cannot push the log's history out of its
rotated files.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.access")

MAX_TARGET = 8192  # bytes of path and query string
SHOWN_PATH = 120  # characters of an unmatched path in a log line
SHOWN_ID = 40  # characters of an instance id
JUNK_BURST = 100
JUNK_PER_SECOND = 10.0
# A caller's own X-Request-Id is kept when it is a plain token (it goes into log lines).
_CALLERS_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def request_id(scope: Scope) -> str:
    """The caller's X-Request-Id if it is a plain token, otherwise a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _CALLERS_ID.fullmatch(value):
            return value.decode()
    return os.urandom(8).hex()


class AccessLog:
    """Pure ASGI middleware, so streaming responses and the hot path stay cheap. Every answer
    carries `X-Request-Id`, which its log line (and any error line about it) names."""

    def __init__(self, app: ASGIApp, count: Callable[[str, str, int], None] | None = None) -> None:
        self.app = app
        self.count = count
        self.junk = Ration(JUNK_BURST, JUNK_PER_SECOND)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        rid = scope["request_id"] = request_id(scope)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if len(scope.get("raw_path") or b"") + len(scope["query_string"]) > MAX_TARGET:
                scope["error_code"] = "uri_too_long"
                await _too_long(send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        except Exception:
            scope.setdefault("error_code", "internal_error")  # answered by the error handler
            raise
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or shorten(scope["path"], SHOWN_PATH)
            instance = shorten(
                str((scope.get("path_params") or {}).get("instanceId", "-")), SHOWN_ID
            )
            # Several nodes: a request sent on to its instance's owner, or sent here by one.
            hop = ""
            if scope.get("forwarded_to"):
                hop = f" to={scope['forwarded_to']}"
            elif scope.get("forwarded_by"):
                hop = f" via={scope['forwarded_by']}"
            if self.count is not None:
                label = "unmatched" if route is None else path
                self.count(
                    scope["method"], "forwarded" if "forwarded_to" in scope else label, status
                )
            level = logging.ERROR if status >= 500 else logging.INFO
            if log.isEnabledFor(level) and self._worth_a_line(scope, status):
                log.log(
                    level,
                    "%s %s %d %.1fms instance=%s request=%s%s%s",
                    scope["method"],
                    path,
                    status,
                    (time.perf_counter() - started) * 1000,
                    instance,
                    rid,
                    f" code={scope['error_code']}" if scope.get("error_code") else "",
                    hop,
                )

    def _worth_a_line(self, scope: Scope, status: int) -> bool:
        """Every request gets its line, except refusals of callers without credentials
        beyond their ration (counted, and said in the next line that is written)."""
        if not 400 <= status < 500 or "principal" in scope:
            return True
        allowed, skipped = self.junk.take()
        if allowed and skipped:
            log.warning(
                "%d more line(s) about requests refused without credentials were not logged",
                skipped,
            )
        return allowed


class Ration:
    """A token bucket: `burst` at once, then `per_second`; counts what it refused."""

    def __init__(self, burst: int, per_second: float) -> None:
        self.burst = burst
        self.per_second = per_second
        self.tokens = float(burst)
        self.at = time.monotonic()
        self.refused = 0

    def take(self) -> tuple[bool, int]:
        """(whether one more is allowed, how many were refused since the last allowed one)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens < 1:
            self.refused += 1
            return False, 0
        self.tokens -= 1
        refused, self.refused = self.refused, 0
        return True, refused


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


_TOO_LONG = msgspec.json.encode(
    {
        "error": f"The request target (path and query) is longer than {MAX_TARGET} bytes",
        "code": "uri_too_long",
    }
)


async def _too_long(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 414,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_TOO_LONG)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _TOO_LONG})
