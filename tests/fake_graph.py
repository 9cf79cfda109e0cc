"""A local fake of Meta's Graph API for the Cloud API engine, and Meta's webhooks.

Built from Meta's documentation, cited where each shape comes from:
- Graph API versions: the changelog (https://developers.facebook.com/docs/graph-api/changelog/):
  v21.0 (until 21 January 2027) to v26.0 are available; the fake refuses others.
- Sending messages, `to` or `recipient` (a BSUID) and the answer's `contacts` (`input`,
  `wa_id`/`user_id`) and `messages` (`id`): the messages API reference and the
  business-scoped user ID guide
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/).
- Errors `{error: {message, type, code, error_subcode, error_data: {details}, fbtrace_id}}`
  and their codes: the error code reference
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/);
  Graph answers them with HTTP 400 whatever the code (the engine must map by code).
- The phone number's fields (`status`, `quality_rating`, `messaging_limit_tier`,
  `platform_type`, `throughput`, `health_status.can_send_message`): the
  WhatsAppBusinessPhoneNumber reference; `GET /{waba}/subscribed_apps`: the webhooks
  overview ("subscribe your app to the business account").
- Media upload (`POST /{phone-number-id}/media`, multipart `messaging_product`, `type`,
  `file`) and the supported media types and sizes.
- Replies (`context: {message_id}`), reactions (`reaction: {message_id, emoji}`, "" removes),
  locations, contacts (`name.formatted_name` and one more name part required, `phones`) and
  templates (`template: {name, language: {code}, components}`): the messages API reference
  and its guides (https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/).
- Marking a message read (`{messaging_product, status: "read", message_id}` → `{success}`,
  131009 for an id that is not a received message's): "Mark messages as read".
- Downloading received media: `GET /{media-id}?phone_number_id=` answers `{messaging_product,
  url, mime_type, sha256, file_size, id}`; the URL answers the bytes to the same bearer token
  (the "Download media" guide of the media reference).
- Webhook payloads (`whatsapp_business_account` entries, `messages` and `statuses`,
  `errors`, `account_update`): the messages webhook reference
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/)
  and pywa's parsing of them (`pywa/types/message.py`, `message_status.py`, `user.py`).

The fake also queues the webhooks Meta would send after a send it accepted (a
`failed` status for a recipient outside the 24-hour window): tests deliver them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "EAAG-good-token"
PHONE_NUMBER_ID = "106540352242922"
OTHER_PHONE_NUMBER_ID = "106540352242923"  # a second number of the same app
DISPLAY_NUMBER = "+1 555-010-0200"
WABA_ID = "102290129340398"
VERSIONS = frozenset(f"v{n}.0" for n in range(21, 27))
KB, MB = 1024, 1024 * 1024

# Recipients that make the fake answer as Meta does in each case.
RATE_LIMITED_NUMBER = "15550009999"  # 130429: throughput reached
PAIR_LIMITED_NUMBER = "15550009998"  # 131056: too many to this one recipient
SPAM_LIMITED_NUMBER = "15550009997"  # 131048: a quality restriction
TEMPORARY_NUMBER = "15550009996"  # 131016: service unavailable (with HTTP 400)
OUTSIDE_WINDOW_NUMBER = "15550009995"  # accepted, then failed by webhook (131047)
UNDELIVERABLE_NUMBER = "15550009994"  # accepted, then failed by webhook (131026)
REWRITTEN_NUMBER = "5215512345678"  # Mexico: Meta answers wa_id 525512345678
REWRITTEN_WA_ID = "525512345678"
SLOW_NUMBER = "15550009993"  # answered after `slow_seconds`

IMAGE_TYPES = {"image/jpeg": 5 * MB, "image/png": 5 * MB}
VIDEO_TYPES = {"video/mp4": 16 * MB, "video/3gpp": 16 * MB}
AUDIO_TYPES = {
    t: 16 * MB for t in ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg")
}
STICKER_TYPES = {"image/webp": 500 * KB}
UPLOAD_TYPES = (
    ("image", IMAGE_TYPES),
    ("video", VIDEO_TYPES),
    ("audio", AUDIO_TYPES),
    ("sticker", STICKER_TYPES),
)


def error_body(code: int, message: str, *, details: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": f"(#{code}) {message}",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AI5Ob1vJcJ8Bq5pr6ZbFS5E",
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


def _error(status: int, code: int, message: str, details: str | None = None) -> web.Response:
    return web.json_response(error_body(code, message, details=details), status=status)


@dataclass
class FakeGraph:
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Webhook payloads Meta would send next (tests deliver them, signed).
    outbox: list[dict[str, Any]] = field(default_factory=list)
    token: str = TOKEN
    failures: int = 0  # how many next calls fail as Meta does in an outage (HTTP 500, code 2)
    subscribed: bool = True
    slow_seconds: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self.media: dict[str, dict[str, Any]] = {}
        self.received: dict[str, bytes] = {}  # media of inbound messages, by media id
        self.read_marks: list[str] = []
        app = web.Application(client_max_size=120 * MB)
        app.router.add_get("/download/{media_id}", self.download)
        app.router.add_get("/{version}/{node}/subscribed_apps", self.subscribed_apps)
        app.router.add_get("/{version}/{node}", self.node)
        app.router.add_post("/{version}/{number}/messages", self.messages)
        app.router.add_post("/{version}/{number}/media", self.upload)
        # The loop runs in a thread of its own from the start: a test may run its own loop
        # in the main thread (Playwright's sync API does).
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.runner = web.AppRunner(app)
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)

    def sent(self) -> list[dict[str, Any]]:
        """The message requests received, oldest first."""
        return [r["json"] for r in self.requests if r["path"].endswith("/messages")]

    def _check(self, request: web.Request, number: str | None = None) -> web.Response | None:
        if self.failures > 0:
            self.failures -= 1
            return _error(500, 2, "Service temporarily unavailable")
        if request.match_info["version"] not in VERSIONS:
            return _error(400, 2500, "Unknown path components")
        if request.headers.get("Authorization") != f"Bearer {self.token}" or self.token != TOKEN:
            return _error(401, 190, "Error validating access token: Session has expired")
        if number is not None and number not in (PHONE_NUMBER_ID, OTHER_PHONE_NUMBER_ID):
            return _error(400, 100, "Unsupported post request. Object does not exist")
        return None

    # -- reading --------------------------------------------------------------------

    def receive_media(self, data: bytes, mimetype: str) -> str:
        """A file a customer sent: its media id, for an inbound message webhook."""
        media_id = f"{next(self._ids) + 2_000_000_000}"
        self.media[media_id] = {"kind": "inbound", "mimetype": mimetype, "size": len(data)}
        self.received[media_id] = data
        return media_id

    async def node(self, request: web.Request) -> web.Response:
        node = request.match_info["node"]
        self.requests.append({"path": request.path, "query": dict(request.query)})
        if node in self.received:
            return self._media_url(request, node)
        refused = self._check(request, node)
        if refused:
            return refused
        fields = set(request.query.get("fields", "").split(","))
        number = {
            "id": node,
            "display_phone_number": DISPLAY_NUMBER,
            "verified_name": "Fake Shop",
            "status": "CONNECTED",
            "quality_rating": "GREEN",
            "messaging_limit_tier": "TIER_1K",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "health_status": {
                "can_send_message": "AVAILABLE",
                "entities": [
                    {"entity_type": "PHONE_NUMBER", "id": node, "can_send_message": "AVAILABLE"}
                ],
            },
        }
        return web.json_response({k: v for k, v in number.items() if k in fields or k == "id"})

    def _media_url(self, request: web.Request, media_id: str) -> web.Response:
        refused = self._check(request, request.query.get("phone_number_id"))
        if refused:
            return refused
        data = self.received[media_id]
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/download/{media_id}",
                "mime_type": self.media[media_id]["mimetype"],
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data),
                "id": media_id,
            }
        )

    async def download(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        self.requests.append({"path": request.path})
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, 190, "Error validating access token")
        if media_id not in self.received:
            return web.Response(status=404)
        return web.Response(
            body=self.received[media_id], content_type=self.media[media_id]["mimetype"]
        )

    async def subscribed_apps(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "query": dict(request.query)})
        refused = self._check(request)
        if refused:
            return refused
        apps = [{"whatsapp_business_api_data": {"id": "6713920000", "name": "Fake app"}}]
        return web.json_response({"data": apps if self.subscribed else []})

    # -- sending --------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.Response:
        refused = self._check(request, request.match_info["number"])
        body = await request.json()
        self.requests.append({"path": request.path, "json": body})
        if refused:
            return refused
        if body.get("status") == "read":
            message_id = body.get("message_id")
            if body.get("messaging_product") != "whatsapp" or not isinstance(message_id, str):
                return _error(400, 100, "Invalid parameter")
            if not message_id.startswith("wamid."):
                return _error(400, 131009, "Parameter value is not valid")
            self.read_marks.append(message_id)
            return web.json_response({"success": True})
        kind = body.get("type")
        to, recipient = body.get("to"), body.get("recipient")
        if body.get("messaging_product") != "whatsapp" or not (to or recipient):
            return _error(400, 100, "Invalid parameter")
        shape = list if kind == "contacts" else dict
        if kind not in body or not isinstance(body[kind], shape):
            return _error(400, 100, "Invalid parameter", f"Param {kind} is required")
        content = body[kind]
        problem = _content_problem(kind, content, body.get("context"))
        if problem is not None:
            return _error(400, 100, "Invalid parameter", problem)
        if kind == "text" and len(content.get("body", "")) > 4096:
            return _error(400, 100, "Invalid parameter", "Param text['body'] is too long")
        if kind in ("image", "video", "audio", "document", "sticker"):
            uploaded = self.media.get(str(content.get("id")))
            if uploaded is None and "link" not in content:
                return _error(400, 131009, "Parameter value is not valid")
            if uploaded is not None and kind != uploaded["kind"]:
                # Meta accepts, then fails the message by webhook (131053).
                self._later_failure(body, 131053, "Media upload error", "Unsupported media type")
        if to == RATE_LIMITED_NUMBER:
            return _error(400, 130429, "Rate limit hit")
        if to == PAIR_LIMITED_NUMBER:
            return _error(400, 131056, "(Business Account, Consumer Account) pair rate limit hit")
        if to == SPAM_LIMITED_NUMBER:
            return _error(400, 131048, "Spam rate limit hit")
        if to == TEMPORARY_NUMBER:
            return _error(400, 131016, "Service unavailable")
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if to == SLOW_NUMBER and self.slow_seconds:
                await asyncio.sleep(self.slow_seconds)
        finally:
            self.in_flight -= 1
        wamid = f"wamid.FAKE{next(self._ids):06d}"
        if to == OUTSIDE_WINDOW_NUMBER:
            self._later_failure(
                {**body, "id": wamid},
                131047,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number.",
            )
        if to == UNDELIVERABLE_NUMBER:
            self._later_failure({**body, "id": wamid}, 131026, "Message undeliverable", None)
        contact: dict[str, Any] = {"input": to or recipient}
        if to:
            contact["wa_id"] = REWRITTEN_WA_ID if to == REWRITTEN_NUMBER else to
        else:
            contact["user_id"] = recipient
        return web.json_response(
            {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}
        )

    def _later_failure(
        self, body: dict[str, Any], code: int, title: str, details: str | None
    ) -> None:
        if "id" not in body:
            return
        error: dict[str, Any] = {"code": code, "title": title, "message": title}
        if details is not None:
            error["error_data"] = {"details": details}
        self.outbox.append(status_webhook(body["id"], "failed", body.get("to"), errors=[error]))

    async def upload(self, request: web.Request) -> web.Response:
        refused = self._check(request, request.match_info["number"])
        form = await request.post()
        upload = form.get("file")
        data = upload.file.read() if hasattr(upload, "file") else b""
        record = {
            "path": request.path,
            "form": {k: v for k, v in form.items() if isinstance(v, str)},
            "file": getattr(upload, "filename", None),
            "size": len(data),
            "content_type": getattr(upload, "content_type", None),
        }
        self.requests.append(record)
        if refused:
            return refused
        mimetype = form.get("type")
        if form.get("messaging_product") != "whatsapp" or not data or not isinstance(mimetype, str):
            return _error(400, 100, "Invalid parameter")
        kind, limit = next(
            ((k, types[mimetype]) for k, types in UPLOAD_TYPES if mimetype in types),
            ("document", 100 * MB),
        )
        if len(data) > limit:
            return _error(400, 131053, "Media upload error", "File too large")
        media_id = f"{next(self._ids) + 1_000_000_000}"
        self.media[media_id] = {"kind": kind, "mimetype": mimetype, "size": len(data)}
        return web.json_response({"id": media_id})


def _content_problem(kind: str, content: Any, context: Any) -> str | None:
    """What Meta's messages reference requires of each kind, as its error details say."""
    if context is not None and not (
        isinstance(context, dict) and isinstance(context.get("message_id"), str)
    ):
        return "Param context['message_id'] is required"
    if kind == "location" and not all(
        isinstance(content.get(k), int | float) for k in ("latitude", "longitude")
    ):
        return "Param location['latitude'] and location['longitude'] are required"
    if kind == "reaction" and not (
        isinstance(content.get("message_id"), str) and isinstance(content.get("emoji"), str)
    ):
        return "Param reaction['message_id'] is required"
    if kind == "template" and not (
        isinstance(content.get("name"), str)
        and isinstance(content.get("language"), dict)
        and isinstance(content["language"].get("code"), str)
    ):
        return "Param template['name'] and template['language']['code'] are required"
    if kind == "contacts":
        for card in content:
            name = card.get("name") if isinstance(card, dict) else None
            if not isinstance(name, dict) or not name.get("formatted_name"):
                return "Param contacts[0]['name']['formatted_name'] is required"
            parts = ("first_name", "last_name", "middle_name", "suffix", "prefix")
            if not any(name.get(p) for p in parts):
                return "Param contacts[0]['name'] needs one of first_name, last_name, ..."
    return None


# -- Meta's webhooks, as its reference shows them ----------------------------------------


def envelope(
    value: dict[str, Any], field: str = "messages", phone_number_id: str = PHONE_NUMBER_ID
) -> dict[str, Any]:
    """One `whatsapp_business_account` delivery with one change."""
    if field == "messages":
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100200", "phone_number_id": phone_number_id},
            **value,
        }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": field}]}],
    }


def message_webhook(
    message: dict[str, Any],
    *,
    phone: str | None = "16505551234",
    bsuid: str | None = "US.13491208655302741918",
    name: str = "Sheena Nelson",
    username: str | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """An incoming message (`message` holds `type` and its content) from a user: with a
    phone number, a BSUID or both, as the BSUID guide shows them."""
    wamid = message.pop("id", f"wamid.IN{time.monotonic_ns()}")
    contact: dict[str, Any] = {"profile": {"name": name}}
    if username:
        contact["profile"]["username"] = username
    if phone:
        contact["wa_id"] = phone
    if bsuid:
        contact["user_id"] = bsuid
    sender: dict[str, Any] = {}
    if phone:
        sender["from"] = phone
    if bsuid:
        sender["from_user_id"] = bsuid
    return envelope(
        {
            "contacts": [contact],
            "messages": [{**sender, "id": wamid, "timestamp": "1749416383", **message}],
        },
        phone_number_id=phone_number_id,
    )


def status_webhook(
    wamid: str,
    status: str,
    recipient: str | None = "16505551234",
    *,
    errors: list[dict[str, Any]] | None = None,
    recipient_user_id: str | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A status of a message the business sent (`sent`, `delivered`, `read`, `played`,
    `failed` with `errors`)."""
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": "1749416400"}
    if recipient:
        item["recipient_id"] = recipient
    if recipient_user_id:
        item["recipient_user_id"] = recipient_user_id
    if errors:
        item["errors"] = errors
    return envelope({"statuses": [item]}, phone_number_id=phone_number_id)


def account_update_webhook(event: str = "ACCOUNT_RESTRICTION", **extra: Any) -> dict[str, Any]:
    """An `account_update` (bans, restrictions, violations) of the business account."""
    return envelope(
        {"phone_number": "15550100200", "event": event, **extra}, field="account_update"
    )


def sign(secret: str, body: dict[str, Any] | bytes) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers Meta sends: X-Hub-Signature-256 under the app secret."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }
