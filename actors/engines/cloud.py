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
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

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
from domain.phone import USER_SERVER, jid_number

TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
SEEN_MEMORY = 10_000
RATE_LIMIT_CODES = {4, 80007, 130429, 131048, 131056}
AUTH_CODES = {190, 10, 200}


class _Loop:
    """One event loop thread and HTTP session shared by every cloud engine."""

    _lock = threading.Lock()
    _instance: _Loop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="cloud-engine", daemon=True).start()
        self.session: aiohttp.ClientSession = self.run(self._session())

    @classmethod
    def get(cls) -> _Loop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Loop()
            return cls._instance

    @staticmethod
    async def _session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=TIMEOUT)

    def run(self, coroutine: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


def graph_error(status: int, body: Any) -> EngineError:
    """A Graph API error as an API error a person understands."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = error.get("code")
    message = error.get("message") or f"HTTP {status}"
    if status == 429 or code in RATE_LIMIT_CODES:
        return EngineError(f"Meta's rate limit was hit: {message}", "rate_limited", 429)
    if status in (401, 403) or code in AUTH_CODES:
        return EngineError(f"Meta refused the access token: {message}", "cloud_auth_failed", 502)
    if status >= 500:
        return EngineError(f"Meta's Graph API failed: {message}", "cloud_unavailable", 502)
    return EngineError(
        f"Meta's Graph API refused the request: {message} (code {code})", "cloud_rejected", 400
    )


class CloudEngine(Engine, CloudWebhookReceiver):
    """An instance on the WhatsApp Business Cloud API."""

    def __init__(self, settings: dict[str, Any], emit: Emit) -> None:
        self.settings = settings
        self.emit = emit
        self._loop = _Loop.get()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_lock = threading.Lock()
        self.connected = False

    @property
    def _base(self) -> str:
        base = self.settings.get("graphBaseUrl", "https://graph.facebook.com").rstrip("/")
        return f"{base}/{self.settings.get('apiVersion', 'v21.0')}"

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
                f"/{self.settings['phoneNumberId']}",
                params={"fields": "display_phone_number,verified_name"},
            )
        except EngineError as error:
            self.connected = False
            self.emit(Disconnected(f"{error.code}: {error}", will_reconnect=False))
            return
        self.connected = True
        digits = "".join(c for c in str(number.get("display_phone_number", "")) if c.isdigit())
        self.emit(Connected(digits or None, number.get("verified_name")))

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
            f"/{self.settings['phoneNumberId']}/messages",
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
        answer = self._call("POST", f"/{self.settings['phoneNumberId']}/media", data=form)
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
        async def call() -> Any:
            try:
                async with self._loop.session.request(
                    method,
                    self._base + path,
                    params=params,
                    json=json_body,
                    data=data,
                    headers=self._auth,
                    allow_redirects=False,
                ) as response:
                    text = await response.text()
                    try:
                        body = json.loads(text) if text else {}
                    except ValueError:
                        body = {}
                    if response.status >= 300:
                        raise graph_error(response.status, body)
                    return body
            except (aiohttp.ClientError, TimeoutError) as error:
                raise EngineError(
                    f"Meta's Graph API is unreachable: {error or type(error).__name__}",
                    "cloud_unavailable",
                    502,
                ) from None

        return self._loop.run(call())
