"""A local fake of Meta's Graph API for the cloud engine: checks request shapes, answers like Meta."""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "EAAG-good-token"
PHONE_NUMBER_ID = "106540352242922"
RATE_LIMITED_NUMBER = "15550009999"


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "Fake",
            }
        },
        status=status,
    )


@dataclass
class FakeGraph:
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_get("/{version}/{number}", self.number)
        app.router.add_post("/{version}/{number}/messages", self.messages)
        app.router.add_post("/{version}/{number}/media", self.media)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def _check(self, request: web.Request) -> web.Response | None:
        if request.match_info["version"] != "v21.0":
            return _error(400, 2500, "Unknown path components")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.match_info["number"] != PHONE_NUMBER_ID:
            return _error(400, 100, "Unsupported get request. Object does not exist")
        return None

    async def number(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "query": dict(request.query)})
        return self._check(request) or web.json_response(
            {
                "display_phone_number": "+1 555-010-0200",
                "verified_name": "Fake Shop",
                "id": PHONE_NUMBER_ID,
            }
        )

    async def messages(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        body = await request.json()
        self.requests.append({"path": request.path, "json": body})
        if refused:
            return refused
        if (
            body.get("messaging_product") != "whatsapp"
            or "to" not in body
            or body.get("type") not in body
        ):
            return _error(400, 100, "Invalid parameter")
        if body["to"] == RATE_LIMITED_NUMBER:
            return _error(429, 130429, "Rate limit hit")
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": f"wamid.FAKE{next(self._ids):06d}"}],
            }
        )

    async def media(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        form = await request.post()
        upload = form.get("file")
        record = {
            "path": request.path,
            "form": {k: v for k, v in form.items() if isinstance(v, str)},
            "file": getattr(upload, "filename", None),
            "size": len(upload.file.read()) if hasattr(upload, "file") else 0,
        }
        self.requests.append(record)
        if refused:
            return refused
        if form.get("messaging_product") != "whatsapp" or not record["size"]:
            return _error(400, 100, "Invalid parameter")
        return web.json_response({"id": f"media-{next(self._ids)}"})
