"""One log line per request: method, route, status, duration, instance; never bodies or keys."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("app.access")


class AccessLog:
    """Pure ASGI middleware, so streaming responses and the hot path stay cheap."""

    def __init__(self, app: ASGIApp, count: Callable[[str, str, int], None] | None = None) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or scope["path"]
            instance = (scope.get("path_params") or {}).get("instanceId", "-")
            if self.count is not None:
                self.count(scope["method"], path if route is not None else "unmatched", status)
            level = logging.WARNING if status >= 500 else logging.INFO
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "%s %s %d %.1fms instance=%s",
                    scope["method"],
                    path,
                    status,
                    (time.perf_counter() - started) * 1000,
                    instance,
                )
