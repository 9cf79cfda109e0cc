"""One log line per request: method, route, status, duration, instance, request id and the
error code of an error answer; never bodies or keys. Answers of 5xx are errors (error.log)."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.access")

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
            await self.app(scope, receive, send_and_note)
        except Exception:
            scope.setdefault("error_code", "internal_error")  # answered by the error handler
            raise
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or scope["path"]
            instance = (scope.get("path_params") or {}).get("instanceId", "-")
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
            if log.isEnabledFor(level):
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
