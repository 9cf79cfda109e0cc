"""Any node answers any request: one for an instance owned by another node goes there.

`ClusterRouter` is the outermost ASGI layer after the access log. For a request whose path
names an instance (a route with `{instanceId}`) that another live node owns, it sends the
request to that node's NODE_URL as it came (method, path, query, headers, body, streamed)
with signed cluster headers, and streams the answer back unchanged: status, headers and
body, QR images, media downloads and event streams included. Everything else runs here:
requests of instances this node owns, requests that name no instance, and requests of an
instance nobody owns right now, whose routes answer `503 instance_moving` where they need
its actor (and answer from the shared read models where they do not).

A forwarded request is never forwarded again: the owner it reaches runs it itself, so a
stale view of who owns what costs one `503 instance_moving`, never a loop. The caller's
credentials travel untouched, so the owner authenticates the very caller; the client's
address travels in the signed headers. A request that carries cluster headers it cannot
prove is refused (403) before anything else reads it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.cluster.signing import PREFIX, BadSignature, Signer

log = logging.getLogger(__name__)

#: Headers about one connection, not the request (RFC 9110 §7.6.1), and the Host, which is
#: the owner's on the way there.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
#: Headers of the owner's answer that this node's own server adds again.
OWN_ANSWER_HEADERS = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}
#: Bodies up to this size are read whole before forwarding (one write); larger ones stream.
SMALL_BODY = 64 * 1024


@dataclass(frozen=True)
class Owner:
    """Another node that owns an instance, and how to reach it."""

    node_id: str
    url: str


class Routing:
    """Who owns an instance, as far as this node knows (kept by the cluster node)."""

    def owner_of(self, instance_id: str) -> Owner | None:
        """The other node to forward to, or None to answer here."""
        raise NotImplementedError


class ForwardCounts:
    """What forwarding did, for /metrics and /health."""

    def __init__(self) -> None:
        self.sent = 0  # requests forwarded to their owner
        self.failed = 0  # owner unreachable: answered 503 instance_moving
        self.received = 0  # requests other nodes forwarded here
        self.refused = 0  # cluster headers that did not verify


def instance_prefixes(paths: Iterable[str]) -> tuple[str, ...]:
    """The path prefixes before `{instanceId}` of the routes that name an instance."""
    found = {path.split("{instanceId}", 1)[0] for path in paths if "{instanceId}" in path}
    return tuple(sorted(found, key=len, reverse=True))


def instance_in(path: str, prefixes: tuple[str, ...]) -> str | None:
    """The instance id a request path names (a UUID after a known prefix), if any."""
    for prefix in prefixes:
        if path.startswith(prefix):
            segment = path[len(prefix) :].split("/", 1)[0]
            if len(segment) == 36:
                try:
                    return str(UUID(segment))
                except ValueError:
                    return None
            return None
    return None


class ClusterRouter:
    """The ASGI middleware that forwards (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        node_id: str,
        signer: Signer,
        routing: Callable[[], Routing | None],
        prefixes: tuple[str, ...],
        counts: ForwardCounts,
        timeout: float = 2.0,
        answer_timeout: float = 15.0,
    ) -> None:
        self.app = app
        self.node_id = node_id
        self.signer = signer
        self.routing = routing  # None until the server has started
        self.prefixes = prefixes
        self.counts = counts
        self.timeout = timeout  # to connect to the owner
        self.answer_timeout = answer_timeout  # for the owner's answer to begin
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if any(name.startswith(PREFIX) for name, _ in headers):
            await self._forwarded_here(scope, receive, send)
            return
        routing = self.routing()
        instance_id = instance_in(scope["path"], self.prefixes)
        owner = (
            routing.owner_of(instance_id)
            if routing is not None and instance_id is not None and scope["method"] != "OPTIONS"
            else None
        )
        if owner is None:
            await self.app(scope, receive, send)
            return
        scope["forwarded_to"] = owner.node_id  # for the access log line
        scope["path_params"] = {"instanceId": instance_id}
        await self._forward(scope, receive, send, owner)

    # -- a request another node forwarded -------------------------------------------

    async def _forwarded_here(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        try:
            forwarded = self.signer.check_forwarded(headers, scope["method"], _target(scope))
        except BadSignature as error:
            self.counts.refused += 1
            client = scope.get("client") or ("?", 0)
            log.warning("refused a request with cluster headers from %s: %s", client[0], error)
            await _json(
                send,
                403,
                b'{"error":"This request claims to come from another node and cannot prove '
                b'it","code":"cluster_signature_invalid"}',
            )
            return
        self.counts.received += 1
        scope["headers"] = [(k, v) for k, v in scope["headers"] if not k.startswith(PREFIX)]
        scope["client"] = (forwarded.client, 0) if forwarded.client else scope.get("client")
        scope["forwarded_by"] = forwarded.node_id
        await self.app(scope, receive, send)

    # -- forwarding ---------------------------------------------------------------------

    async def _forward(self, scope: Scope, receive: Receive, send: Send, owner: Owner) -> None:
        target = _target(scope)
        client = (scope.get("client") or ("", 0))[0] or ""
        headers = [
            (k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP and k != b"x-request-id"
        ]
        if "request_id" in scope:  # the owner logs the request under the same id
            headers.append((b"x-request-id", scope["request_id"].encode()))
        headers += self.signer.forward_headers(self.node_id, scope["method"], target, client)
        body = await _body(receive, headers)
        session = self._client()
        started = False
        try:
            # The owner answers within its actor timeout; one that does not (frozen, or cut
            # off) is treated as gone. Once the answer has begun it may stream for long.
            asking = session.request(
                scope["method"],
                owner.url + target.decode("latin-1"),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
                data=body,
                allow_redirects=False,
            )
            async with await asyncio.wait_for(asking, self.answer_timeout) as answer:
                self.counts.sent += 1
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": [
                            (k.lower(), v)
                            for k, v in answer.raw_headers
                            if k.lower() not in OWN_ANSWER_HEADERS
                        ],
                    }
                )
                started = True
                await _stream_back(answer, receive, send)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            if started:  # the owner went away mid-answer: end it; a stream's client resumes
                log.warning("forwarding to %s broke off: %s", owner.node_id, error)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            self.counts.failed += 1
            scope["error_code"] = "instance_moving"
            log.warning("cannot reach %s (%s) to forward: %s", owner.node_id, owner.url, error)
            await _json(
                send,
                503,
                b'{"error":"The instance is moving to another node; try again in a moment",'
                b'"code":"instance_moving"}',
                [(b"retry-after", b"1")],
            )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,  # bytes pass through as the owner sent them
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=self.timeout, sock_connect=self.timeout
                ),
                connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30),
            )
        return self._session

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def relay() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self._session is not None:
                await self._session.close()
            return message

        await self.app(scope, relay, send)


def _target(scope: Scope) -> bytes:
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return path + b"?" + query if query else path


async def _body(
    receive: Receive, headers: list[tuple[bytes, bytes]]
) -> bytes | AsyncIterator[bytes] | None:
    """The request body: read whole when small, else a stream of its chunks."""
    length = next((v for k, v in headers if k == b"content-length"), None)
    if length is not None and length.isdigit() and int(length) <= SMALL_BODY:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)
    if length is None and not any(k == b"transfer-encoding" for k, _ in headers):
        return None

    async def stream() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            yield message.get("body", b"")
            if not message.get("more_body"):
                return

    return stream()


async def _stream_back(answer: aiohttp.ClientResponse, receive: Receive, send: Send) -> None:
    """Send the owner's body as it arrives, until it ends or our client goes away (a
    long-lived event stream would otherwise keep the owner's stream open forever)."""

    async def copy() -> None:
        async for chunk in answer.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    copying = asyncio.ensure_future(copy())
    watching = asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait((copying, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (copying, watching):
            task.cancel()
        await asyncio.gather(copying, watching, return_exceptions=True)
    if copying in done:
        copying.result()  # the owner's connection broke: raise to the caller
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def forwarded_by(scope: dict[str, Any]) -> str | None:
    """The node that forwarded this request here, if one did."""
    return scope.get("forwarded_by")
