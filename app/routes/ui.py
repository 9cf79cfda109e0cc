"""The web console: static HTML, CSS and JavaScript under app/ui, with strict security headers.

The page holds no data and no secrets; its scripts call the same /api routes as anyone else,
signed in by an HttpOnly session cookie and a CSRF token kept in memory (app/sessions.py).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

# Scripts and styles only from files on this server (no inline code), images also as blob: URLs
# (the QR code is fetched with the session), no framing, no plugins, forms post only here.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Adds HEADERS to every response of the wrapped app (pure ASGI, so files stream)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def to_console(request: Request) -> RedirectResponse:
    return RedirectResponse("/ui/instances", status_code=307)


async def console(request: Request) -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-store"})


console_app = SecurityHeaders(
    Router(
        routes=[
            Route("/", to_console, methods=["GET"], include_in_schema=False),
            Route("/instances", console, methods=["GET"], include_in_schema=False),
            Mount("/static", StaticFiles(directory=UI_DIR, check_dir=False)),
        ]
    )
)

routes = [
    Route("/ui", to_console, methods=["GET"], include_in_schema=False),
    Mount("/ui", console_app),
]
