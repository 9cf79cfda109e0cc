"""Meta's WhatsApp Business Cloud API as an engine.

Outbound: the Graph API (`{graphBaseUrl}/{apiVersion}/{phoneNumberId}/messages` and
`/media`) with the instance's bearer token, through aiohttp on one shared event-loop
thread. Inbound: Meta POSTs to `/api/cloud/{instanceId}/webhook`; the route hands the
raw body and its `X-Hub-Signature-256` here, where it is verified with the app secret
and turned into engine reports. Meta retries and duplicates deliveries, so reports
already seen are dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from actors.engines.base import (
    Connected,
    Disconnected,
    Emit,
    Engine,
    EngineError,
    Inbound,
    Media,
    Receipt,
    Sent,
)
from actors.engines.capabilities import CloudWebhookReceiver
from actors.outbound import OutboundHTTP, refused
from domain.phone import USER_SERVER, jid_number

TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
META_GRAPH_URL = "https://graph.facebook.com"
ANSWER_LIMIT = 64 * 1024  # Graph answers are small JSON documents; read no more than this
SEEN_MEMORY = 10_000
RATE_LIMIT_CODES = {4, 80007, 130429, 131048, 131056}
AUTH_CODES = {190, 10, 200}
_FBTRACE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # Meta's are 11-23 such characters


class _Loop:
    """One event loop thread shared by every cloud engine, with one HTTP session per
    address policy (connections through actors.outbound: only to allowed addresses)."""

    _lock = threading.Lock()
    _instance: _Loop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="cloud-engine", daemon=True).start()
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    @classmethod
    def get(cls) -> _Loop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Loop()
            return cls._instance

    def session(self, allow_private: bool) -> aiohttp.ClientSession:
        """The session for this policy (made in the loop's thread, on first use)."""
        session = self._sessions.get(allow_private)
        if session is None:
            session = self._sessions[allow_private] = OutboundHTTP(allow_private).session(
                timeout=TIMEOUT
            )
        return session

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


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


def is_metas(url: str | None) -> bool:
    """Whether `url` is Meta's own Graph API (the default), which needs no address check."""
    return url is None or url.rstrip("/") == META_GRAPH_URL


def _code(value: Any) -> int | None:
    """A Graph error code: a whole number of sane size, else nothing."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    return None


def graph_error(status: int, body: Any) -> EngineError:
    """A Graph API error as an API error a person understands.

    The answer comes from whatever host `graphBaseUrl` names, so nothing of its free
    text is repeated (an internal service's error page must not reach the user or the
    event history): the HTTP status, Meta's numeric code and subcode, and its trace id
    when they are well formed, under a message of our own."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code, subcode = _code(error.get("code")), _code(error.get("error_subcode"))
    trace = error.get("fbtrace_id")
    details: dict[str, Any] = {"httpStatus": status}
    if code is not None:
        details["code"] = code
    if subcode is not None:
        details["subcode"] = subcode
    if isinstance(trace, str) and _FBTRACE.match(trace):
        details["fbtraceId"] = trace
    said = f"code {code}" if code is not None else f"HTTP {status}"
    if status == 429 or code in RATE_LIMIT_CODES:
        return EngineError(f"Meta's rate limit was hit ({said})", "rate_limited", 429, details)
    if status in (401, 403) or code in AUTH_CODES:
        return EngineError(
            f"Meta refused the access token ({said})", "cloud_auth_failed", 502, details
        )
    if status >= 500:
        return EngineError(f"The Graph API failed ({said})", "cloud_unavailable", 502, details)
    return EngineError(
        f"The Graph API refused the request ({said})", "cloud_rejected", 400, details
    )


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


def unreachable() -> EngineError:
    # Fixed text: the connection error's own (host, port, errno) would tell an open port
    # from a closed one.
    return EngineError("The Graph API could not be reached", "cloud_unavailable", 502)


class CloudEngine(Engine, CloudWebhookReceiver):
    """An instance on the WhatsApp Business Cloud API.

    `allow_private` and `require_https` are the server's address policy
    (WEBHOOK_ALLOW_PRIVATE, production): the settings were checked against it when
    they were stored, and are checked again before each call, since a host's address
    and the server's policy may both have changed since."""

    def __init__(
        self,
        settings: dict[str, Any],
        emit: Emit,
        *,
        allow_private: bool = False,
        require_https: bool = True,
    ) -> None:
        self.settings = settings
        self.emit = emit
        self.allow_private = allow_private
        self.require_https = require_https
        self._loop = _Loop.get()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self.connected = False

    @property
    def _graph_url(self) -> str:
        return (self.settings.get("graphBaseUrl") or META_GRAPH_URL).rstrip("/")

    @property
    def _base(self) -> str:
        return f"{self._graph_url}/{self.settings.get('apiVersion') or 'v21.0'}"

    @property
    def _number(self) -> str:
        """The phone number id, which becomes a path segment: digits only."""
        number = str(self.settings.get("phoneNumberId") or "")
        if not (number.isascii() and number.isdigit()):
            raise EngineError(
                "The phoneNumberId must be digits only", "invalid_cloud_settings", 400
            )
        return number

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings['accessToken']}"}

    # -- the engine interface -----------------------------------------------------

    def connect(self) -> None:
        """Check the credentials with a Graph call, in the background."""
        threading.Thread(target=self._check, name="cloud-connect", daemon=True).start()

    def _check(self) -> None:
        try:
            number = self._call(
                "GET",
                f"/{self._number}",
                params={"fields": "display_phone_number,verified_name"},
            )
        except EngineError as error:
            self.connected = False
            self.emit(Disconnected(f"{error.code}: {error}", will_reconnect=False))
            return
        self.connected = True
        digits = "".join(c for c in str(number.get("display_phone_number", "")) if c.isdigit())
        name = number.get("verified_name")
        self.emit(
            Connected(
                digits[:20] or None,
                name[:256] if isinstance(name, str) and name.isprintable() else None,
            )
        )

    def disconnect(self) -> None:
        self.connected = False

    def logout(self) -> None:
        self.connected = False

    def forget(self) -> None:
        self.connected = False

    def send_text(self, to: str, text: str) -> Sent:
        return self._message(to, "text", {"body": text, "preview_url": False})

    def send_media(self, to: str, media: Media, caption: str) -> Sent:
        kind = media.kind
        content: dict[str, Any] = {}
        if media.url:
            content["link"] = media.url
        else:
            content["id"] = self._upload(media)
        if caption and kind != "audio":
            content["caption"] = caption
        if kind == "document":
            content["filename"] = media.filename
        return self._message(to, kind, content)

    # -- capability: CloudWebhookReceiver (Meta's webhook) -----------------------

    def verify_subscription(self, mode: str | None, token: str | None) -> bool:
        expected = self.settings.get("verifyToken") or ""
        return mode == "subscribe" and bool(expected) and hmac.compare_digest(token or "", expected)

    def handle_webhook(self, body: bytes, signature: str | None) -> int:
        """Verify and apply one webhook POST from Meta; return how many reports it made."""
        secret = self.settings.get("appSecret") or ""
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not secret or not hmac.compare_digest(signature or "", expected):
            raise EngineError("The X-Hub-Signature-256 does not match", "invalid_signature", 403)
        try:
            document = json.loads(body)
        except ValueError:
            raise EngineError("The webhook body is not JSON", "invalid_json", 400) from None
        reports = 0
        for entry in document.get("entry", []) if isinstance(document, dict) else []:
            for change in entry.get("changes", []):
                value = change.get("value", {})
                names = {
                    c.get("wa_id"): c.get("profile", {}).get("name")
                    for c in value.get("contacts", [])
                }
                for message in value.get("messages", []):
                    if self._first_time(f"m:{message.get('id')}"):
                        self.emit(self._inbound(message, names))
                        reports += 1
                for status in value.get("statuses", []):
                    key = f"s:{status.get('id')}:{status.get('status')}"
                    if status.get("status") in (
                        "delivered",
                        "read",
                        "failed",
                        "sent",
                    ) and self._first_time(key):
                        if status["status"] != "sent":
                            self.emit(
                                Receipt(
                                    status["id"],
                                    status["status"],
                                    f"{status.get('recipient_id', '')}@{USER_SERVER}",
                                )
                            )
                        reports += 1
        return reports

    # -- inside ---------------------------------------------------------------------

    @staticmethod
    def _inbound(message: dict[str, Any], names: dict[str, str | None]) -> Inbound:
        kind = message.get("type", "text")
        content = message.get(kind, {}) if isinstance(message.get(kind), dict) else {}
        body = content.get("body") or content.get("caption") or ""
        media = None
        if kind in ("image", "video", "audio", "document", "sticker"):
            media = {
                "id": content.get("id"),
                "mimetype": content.get("mime_type"),
                "filename": content.get("filename"),
                "size": None,
            }
        sender = str(message.get("from", ""))
        return Inbound(
            message_id=str(message.get("id")),
            sender=f"{sender}@{USER_SERVER}",
            push_name=names.get(sender),
            message_type=kind,
            body=body,
            media=media,
            timestamp=int(message.get("timestamp") or time.time()),
        )

    def _first_time(self, key: str) -> bool:
        with self._seen_lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            while len(self._seen) > SEEN_MEMORY:
                self._seen.popitem(last=False)
            return True

    def _message(self, to: str, kind: str, content: dict[str, Any]) -> Sent:
        if not self.connected:
            raise EngineError(
                "The Cloud API credentials have not been confirmed", "instance_not_connected"
            )
        answer = self._call(
            "POST",
            f"/{self._number}/messages",
            json_body={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": jid_number(to),
                "type": kind,
                kind: content,
            },
        )
        try:
            return Sent(str(answer["messages"][0]["id"]), int(time.time()))
        except (KeyError, IndexError, TypeError):
            raise EngineError("Meta's answer had no message id", "cloud_unavailable", 502) from None

    def _upload(self, media: Media) -> str:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", media.mimetype)
        form.add_field(
            "file",
            Path(media.path).read_bytes(),
            filename=media.filename,
            content_type=media.mimetype,
        )
        answer = self._call("POST", f"/{self._number}/media", data=form)
        if "id" not in answer:
            raise EngineError("Meta's media upload answer had no id", "cloud_unavailable", 502)
        return str(answer["id"])

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
    ) -> Any:
        url = self._graph_url
        problem = graph_url_problem(url, self.require_https)
        if problem is not None:
            raise EngineError(f"The graphBaseUrl {problem}", "graph_url_not_allowed", 400)

        async def call() -> Any:
            try:
                async with self._loop.session(self.allow_private).request(
                    method,
                    self._base + path,
                    params=params,
                    json=json_body,
                    data=data,
                    headers=self._auth,
                    allow_redirects=False,
                ) as response:
                    body = await _answer(response)
                    if response.status >= 300:
                        raise graph_error(response.status, body)
                    if not isinstance(body, dict):
                        raise EngineError(
                            "The Graph API's answer was not understood", "cloud_unavailable", 502
                        )
                    return body
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                if refused(error):
                    raise EngineError(
                        "The graphBaseUrl is not allowed on this server",
                        "graph_url_not_allowed",
                        400,
                    ) from None
                raise unreachable() from None

        return self._loop.run(call())
