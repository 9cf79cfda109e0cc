"""Calls to Meta's Graph API for one Cloud API instance.

Every engine shares one event loop thread and, per address policy, one aiohttp
session whose connections go only where `actors.outbound` allows: `graphBaseUrl` is
the user's to choose, and the server calls it with the instance's access token. An
answer is read up to ANSWER_LIMIT, and nothing of its free text is repeated (see
`errors.py`). Each instance has at most IN_FLIGHT calls open at once: Meta allows
80 messages a second per number by default, and a send takes a round trip.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from actors.engines.base import EngineError
from actors.engines.cloud.errors import bad_answer, graph_error, unreachable
from actors.outbound import OutboundHTTP, refused

META_GRAPH_URL = "https://graph.facebook.com"
# The default every instance stored until the server's own (CLOUD_API_VERSION) became
# the default: read as no choice, so those instances follow the server's (Meta retires
# v21.0 on 21 January 2027).
FORMER_DEFAULT_VERSION = "v21.0"
TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10, sock_read=60)
ANSWER_LIMIT = 64 * 1024  # Graph answers are small JSON documents; read no more than this
IN_FLIGHT = 32


def graph_url_problem(url: str, require_https: bool) -> str | None:
    """Why `url` cannot be a Graph API base URL (None: it can).

    An origin with an optional path prefix: no credentials, query or fragment, and
    https when `require_https` (production). The address it resolves to is checked
    separately, by the address policy."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "is not a URL"
    schemes = ("https",) if require_https else ("https", "http")
    if parts.scheme not in schemes:
        return "must be an https URL" if require_https else "must be an http(s) URL"
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return "must name a host, without credentials"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "must not have a query or fragment"
    return None


def media_url_problem(url: str, require_https: bool) -> str | None:
    """Why the server will not fetch a media URL a Graph answer gave (None: it will).
    Meta's (lookaside.fbsbx.com) have a query; no credentials, https in production."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in (("https",) if require_https else ("https", "http")):
        return "must be https" if require_https else "must be http(s)"
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return "must name a host, without credentials"
    return None


def is_metas(url: str | None) -> bool:
    """Whether `url` is Meta's own Graph API (the default)."""
    return url is None or url.rstrip("/") == META_GRAPH_URL


class GraphLoop:
    """One event loop thread shared by every cloud engine, with one HTTP session per
    address policy."""

    _lock = threading.Lock()
    _instance: GraphLoop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="cloud-engine", daemon=True).start()
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    @classmethod
    def get(cls) -> GraphLoop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = GraphLoop()
                atexit.register(cls._instance.close)
            return cls._instance

    def close(self) -> None:
        """Close the sessions (at exit: aiohttp complains of sessions left open)."""

        async def close_all() -> None:
            for session in self._sessions.values():
                await session.close()

        with contextlib.suppress(Exception):
            self.submit(close_all()).result(5)

    def session(self, allow_private: bool) -> aiohttp.ClientSession:
        """The session for this policy (made in the loop's thread, on first use)."""
        session = self._sessions.get(allow_private)
        if session is None:
            session = self._sessions[allow_private] = OutboundHTTP(allow_private).session(
                connector={"limit": 1024}, timeout=TIMEOUT
            )
        return session

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> Future[Any]:
        """Run `coroutine` on the loop; its future, for any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


class GraphClient:
    """The Graph API as one instance reaches it: base URL, version, token, policy."""

    def __init__(
        self,
        base_url: str | None,
        version: str,
        token: str,
        *,
        allow_private: bool,
        require_https: bool,
    ) -> None:
        self.base_url = (base_url or META_GRAPH_URL).rstrip("/")
        self.version = version
        self._token = token
        self.allow_private = allow_private
        self.require_https = require_https
        self.loop = GraphLoop.get()
        self._slots: asyncio.Semaphore | None = None  # made in the loop

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
    ) -> dict[str, Any]:
        """One Graph call (on the loop): the answer's JSON object, or EngineError."""
        problem = graph_url_problem(self.base_url, self.require_https)
        if problem is not None:
            raise EngineError(f"The graphBaseUrl {problem}", "graph_url_not_allowed", 400)
        if self._slots is None:
            self._slots = asyncio.Semaphore(IN_FLIGHT)
        async with self._slots:
            try:
                async with self.loop.session(self.allow_private).request(
                    method,
                    f"{self.base_url}/{self.version}{path}",
                    params=params,
                    json=json_body,
                    data=data,
                    headers={"Authorization": f"Bearer {self._token}"},
                    allow_redirects=False,
                ) as response:
                    body = await _answer(response)
                    if response.status >= 300:
                        raise graph_error(response.status, body)
                    if not isinstance(body, dict):
                        raise bad_answer()
                    return body
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                if refused(error):
                    raise EngineError(
                        "The graphBaseUrl is not allowed on this server",
                        "graph_url_not_allowed",
                        400,
                    ) from None
                raise unreachable() from None

    async def fetch(self, url: str, destination: Path, limit: int) -> int:
        """Download what a Graph answer pointed to (a media URL: Meta's CDN, with the
        access token) into `destination`, at most `limit` bytes; the size."""
        problem = media_url_problem(url, self.require_https)
        if problem is not None:
            raise EngineError(f"The media URL {problem}", "graph_url_not_allowed", 502)
        size = 0
        try:
            async with self.loop.session(self.allow_private).get(
                url,
                headers={"Authorization": f"Bearer {self._token}"},
                allow_redirects=False,
                timeout=DOWNLOAD_TIMEOUT,
            ) as response:
                if response.status >= 300:
                    raise graph_error(response.status, await _answer(response))
                with destination.open("wb") as file:
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        size += len(chunk)
                        if size > limit:
                            raise EngineError(
                                f"The media is larger than {limit} bytes",
                                "media_too_large",
                                413,
                            )
                        file.write(chunk)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            destination.unlink(missing_ok=True)
            if refused(error):
                raise EngineError(
                    "The media URL is not allowed on this server", "graph_url_not_allowed", 502
                ) from None
            raise unreachable() from None
        except EngineError:
            destination.unlink(missing_ok=True)
            raise
        return size

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        """Run a coroutine on the loop and wait for it (from another thread)."""
        return self.loop.submit(coroutine).result(timeout)


async def _answer(response: aiohttp.ClientResponse) -> Any:
    """The answer's JSON document; {} when it is not JSON or longer than ANSWER_LIMIT."""
    raw = bytearray()
    async for chunk in response.content.iter_chunked(8192):
        raw += chunk
        if len(raw) > ANSWER_LIMIT:
            return {}
    try:
        return json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        return {}
