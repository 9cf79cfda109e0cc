"""Meta's WhatsApp Business Cloud API as an engine.

Outbound: the Graph API (`{graphBaseUrl}/{version}/{phoneNumberId}/messages`, `/media`)
through `graph.GraphClient`; sends run on the shared loop, several at once per
instance, and the actor records each when Meta has answered (`ConcurrentSends`).
Inbound: Meta's webhook is verified and parsed by the route (see `webhook.py`); the
engine only registers the instance's webhook credentials in the `CloudDirectory`.

Connecting checks the token with a Graph call and reads the number's state (status,
quality rating, messaging limit, platform, health) and, with `wabaId`, whether the
app is subscribed to the business account. A temporary failure (an outage, a rate
limit, no answer) is retried with a growing delay; a refused token is final until
the settings change. The token is checked again on every socket check.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp

from actors.engines.base import (
    NO_OPTIONS,
    Connected,
    ContactCard,
    Disconnected,
    Emit,
    Engine,
    EngineError,
    Location,
    Media,
    SendOptions,
    Sent,
    Template,
)
from actors.engines.capabilities import (
    ConcurrentSends,
    ContactCards,
    Locations,
    MediaDownload,
    Reactions,
    ReadReceipts,
    Replies,
    Templates,
)
from actors.engines.cloud import media as cloud_media
from actors.engines.cloud.directory import CloudDirectory, CloudEndpoint
from actors.engines.cloud.errors import bad_answer, is_auth, is_temporary
from actors.engines.cloud.graph import FORMER_DEFAULT_VERSION, GraphClient
from domain.messages import MessageRef
from domain.phone import BSUID_SERVER, USER_SERVER

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096  # Meta's limit for a text message's body
CAPTION_LIMIT = 1024  # and for a media caption
RETRY_CAP = 60.0
NUMBER_FIELDS = "display_phone_number,verified_name"
STATE_FIELDS = "status,quality_rating,messaging_limit_tier,platform_type,throughput,health_status"
_WORD = re.compile(r"^[A-Za-z0-9_]{1,40}$")


class CloudEngine(
    Engine,
    ConcurrentSends,
    Replies,
    Locations,
    ContactCards,
    Templates,
    Reactions,
    MediaDownload,
    ReadReceipts,
):
    """An instance on the WhatsApp Business Cloud API.

    Beyond text and media, what Meta's Messages API does: replies (`context`),
    locations, contact cards, templates, reactions, read marks, and downloads of
    received media through the Graph media URL. Polls, edits, revocations, presence,
    groups and LIDs are not part of the Cloud API: those answer
    `400 unsupported_by_engine`, and so do mentions.

    `allow_private` and `require_https` are the server's address policy
    (WEBHOOK_ALLOW_PRIVATE, production): the settings were checked against it when
    they were stored, and are checked again on every call, since a host's address and
    the server's policy may both have changed since."""

    addressable = (USER_SERVER, BSUID_SERVER)

    def __init__(
        self,
        instance_id: str,
        settings: dict[str, Any],
        emit: Emit,
        *,
        directory: CloudDirectory,
        allow_private: bool = False,
        require_https: bool = True,
        default_version: str,
        retry_base: float = 1.0,
        uploads_dir: Path | None = None,
        max_file_size: int = cloud_media.DOWNLOAD_LIMIT,
    ) -> None:
        self.instance_id = instance_id
        self.uploads_dir = uploads_dir
        self.max_file_size = max_file_size
        self.settings = settings
        self.emit = emit
        self.directory = directory
        self.retry_base = retry_base
        version = settings.get("apiVersion")
        self.graph = GraphClient(
            settings.get("graphBaseUrl"),
            default_version if version in (None, FORMER_DEFAULT_VERSION) else version,
            str(settings.get("accessToken") or ""),
            allow_private=allow_private,
            require_https=require_https,
        )
        self.connected = False
        self._generation = 0  # a disconnect ends whatever the connect before it started
        self._lock = threading.Lock()
        number = str(settings.get("phoneNumberId") or "")
        if number.isascii() and number.isdigit():
            directory.register(
                CloudEndpoint(
                    instance_id,
                    number,
                    str(settings.get("appSecret") or ""),
                    str(settings.get("verifyToken") or ""),
                    settings.get("wabaId") or None,
                )
            )

    @property
    def _number(self) -> str:
        """The phone number id, which becomes a path segment: digits only."""
        number = str(self.settings.get("phoneNumberId") or "")
        if not (number.isascii() and number.isdigit()):
            raise EngineError(
                "The phoneNumberId must be digits only", "invalid_cloud_settings", 400
            )
        return number

    # -- connection ---------------------------------------------------------------

    def connect(self) -> None:
        """Check the token and read the number's state, in the background."""
        with self._lock:
            self._generation += 1
            generation = self._generation
        self.graph.loop.submit(self._connect(generation, attempt=0))

    def disconnect(self) -> None:
        with self._lock:
            self._generation += 1
            self.connected = False

    def logout(self) -> None:
        self.disconnect()

    def forget(self) -> None:
        self.disconnect()
        self.directory.forget(self.instance_id)

    def healthy(self) -> bool:
        """Check the token again, in the background (a revoked token disconnects)."""
        if self.connected:
            self.graph.loop.submit(self._check_token(self._generation))
        return True

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    async def _connect(self, generation: int, attempt: int) -> None:
        try:
            number = await self.graph.call(
                "GET", f"/{self._number}", params={"fields": NUMBER_FIELDS}
            )
            details = await self._state()
        except EngineError as error:
            if not self._current(generation):
                return
            self.connected = False
            retry = is_temporary(error)
            self.emit(Disconnected(f"{error.code}: {error}", will_reconnect=retry))
            if retry:
                delay = min(RETRY_CAP, self.retry_base * 2**attempt) * random.uniform(0.75, 1.0)
                log.warning(
                    "instance %s: the Graph API failed for now (%s); trying again in %.1f s",
                    self.instance_id,
                    error.code,
                    delay,
                )
                await asyncio.sleep(delay)
                if self._current(generation):
                    await self._connect(generation, attempt + 1)
            return
        except Exception:
            log.exception("instance %s: connecting to the Graph API failed", self.instance_id)
            if self._current(generation):
                self.emit(Disconnected("engine_error", will_reconnect=False))
            return
        if not self._current(generation):
            return
        self.connected = True
        digits = "".join(c for c in str(number.get("display_phone_number", "")) if c.isdigit())
        name = number.get("verified_name")
        self.emit(
            Connected(
                digits[:20] or None,
                name[:256] if isinstance(name, str) and name.isprintable() else None,
                details,
            )
        )

    async def _state(self) -> dict[str, Any]:
        """What Meta says about the number (and whether the app gets its webhooks).

        Best effort: these fields differ between Graph versions, and a refusal here
        does not stop the instance from connecting."""
        details: dict[str, Any] = {}
        try:
            state = await self.graph.call(
                "GET", f"/{self._number}", params={"fields": STATE_FIELDS}
            )
        except EngineError as error:
            if is_auth(error):
                raise
            state = {}
        throughput, health = state.get("throughput"), state.get("health_status")
        said = {
            "status": state.get("status"),
            "qualityRating": state.get("quality_rating"),
            "messagingLimitTier": state.get("messaging_limit_tier"),
            "platformType": state.get("platform_type"),
            "throughput": throughput.get("level") if isinstance(throughput, dict) else None,
            "canSendMessage": health.get("can_send_message") if isinstance(health, dict) else None,
        }
        # Enumerations, from whatever host graphBaseUrl names: kept only when they look so.
        details.update({k: v for k, v in said.items() if isinstance(v, str) and _WORD.match(v)})
        warnings = []
        if details.get("canSendMessage") not in (None, "AVAILABLE"):
            warnings.append("cannot_send_messages")
        waba = str(self.settings.get("wabaId") or "")
        if waba.isascii() and waba.isdigit():
            try:
                apps = await self.graph.call("GET", f"/{waba}/subscribed_apps")
            except EngineError as error:
                if is_auth(error):
                    raise
                apps = {"data": None}
            if isinstance(apps.get("data"), list) and not apps["data"]:
                warnings.append("app_not_subscribed")
                log.warning(
                    "instance %s: the app is not subscribed to business account %s: Meta "
                    "sends it no webhooks (POST /%s/subscribed_apps subscribes it)",
                    self.instance_id,
                    waba,
                    waba,
                )
        if warnings:
            details["warnings"] = warnings
        return details

    async def _check_token(self, generation: int) -> None:
        try:
            await self.graph.call("GET", f"/{self._number}", params={"fields": "id"})
        except EngineError as error:
            if is_auth(error):
                self._lost_token(generation, error)
        except Exception:
            log.exception("instance %s: checking the token failed", self.instance_id)

    def _lost_token(self, generation: int, error: EngineError) -> None:
        """Meta refused the token: the instance is disconnected until its settings change."""
        with self._lock:
            if not self._current(generation) or not self.connected:
                return
            self.connected = False
        log.warning("instance %s: Meta refused the access token (%s)", self.instance_id, error)
        self.emit(Disconnected(f"{error.code}: {error}", will_reconnect=False))

    # -- sending --------------------------------------------------------------------

    def send_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Sent:
        return self.start_text(to, text, options).result(timeout=120)

    def send_media(
        self, to: str, media: Media, caption: str, options: SendOptions = NO_OPTIONS
    ) -> Sent:
        return self.start_media(to, media, caption, options).result(timeout=300)

    def start_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Future[Sent]:
        """Send text: checked here, sent on the loop; the future holds Meta's answer."""
        recipient = self._recipient(to) | _context(options)
        if len(text) > TEXT_LIMIT:
            raise EngineError(
                f"The Cloud API takes text of at most {TEXT_LIMIT} characters "
                f"(this one has {len(text)})",
                "text_too_long",
                400,
            )
        self._check_connected()
        content = {"body": text, "preview_url": False}
        return self.graph.loop.submit(self._message(recipient, "text", content))

    def start_media(
        self, to: str, media: Media, caption: str, options: SendOptions = NO_OPTIONS
    ) -> Future[Sent]:
        """Send a file we hold: uploaded to Meta, then sent by its media id."""
        recipient = self._recipient(to) | _context(options)
        chosen = cloud_media.choose(media.path, media.mimetype, media.size)
        if caption and len(caption) > CAPTION_LIMIT:
            raise EngineError(
                f"The Cloud API takes captions of at most {CAPTION_LIMIT} characters "
                f"(this one has {len(caption)})",
                "caption_too_long",
                400,
            )
        self._check_connected()
        return self.graph.loop.submit(self._send_media(recipient, media, chosen, caption))

    # -- everything else the Messages API does ---------------------------------------

    def send_location(self, to: str, location: Location, options: SendOptions) -> Sent:
        place: dict[str, Any] = {"latitude": location.latitude, "longitude": location.longitude}
        place |= {k: v for k, v in (("name", location.name), ("address", location.address)) if v}
        return self._send_now(self._recipient(to) | _context(options), "location", place)

    def send_contacts(self, to: str, cards: tuple[ContactCard, ...], options: SendOptions) -> Sent:
        # Meta requires name.formatted_name and one more name part; a phone with its wa_id
        # makes the card's "Message" button open the chat.
        contacts = [
            {
                "name": {"formatted_name": card.name, "first_name": card.name},
                "phones": [{"phone": f"+{card.phone}", "type": "CELL", "wa_id": card.phone}],
            }
            for card in cards
        ]
        return self._send_now(self._recipient(to) | _context(options), "contacts", contacts)

    def send_template(self, to: str, template: Template) -> Sent:
        content: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
        if template.components:
            content["components"] = list(template.components)
        return self._send_now(self._recipient(to), "template", content)

    def react(self, message: MessageRef, emoji: str) -> Sent:
        """A reaction goes to the chat of the message; "" removes ours (Meta's rule)."""
        content = {"message_id": message.message_id, "emoji": emoji}
        return self._send_now(self._recipient(message.chat), "reaction", content)

    def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        """Meta marks a message read and every earlier one of the conversation with it:
        one call for the newest of them."""
        if not messages:
            return
        newest = max(messages, key=lambda m: m.sent_at)
        self._check_connected()
        body = {"messaging_product": "whatsapp", "status": "read", "message_id": newest.message_id}
        self.graph.run(self._call("POST", f"/{self._number}/messages", json_body=body), 120)

    def download(self, message: MessageRef) -> Media:
        """A received file: its URL from `GET /{media-id}` (valid for 5 minutes), then the
        bytes from that URL with the access token, into the uploads directory."""
        found = cloud_media.media_id(message)
        if found is None or self.uploads_dir is None:
            raise EngineError(f"Message {message.message_id} has no media", "no_media", 404)
        self._check_connected()
        return self.graph.run(
            cloud_media.download(
                self.graph,
                self._call,
                found,
                self._number,
                message,
                self.uploads_dir,
                self.max_file_size,
            ),
            300,
        )

    def _send_now(self, recipient: dict[str, Any], kind: str, content: Any) -> Sent:
        self._check_connected()
        return self.graph.run(self._message(recipient, kind, content), 120)

    async def _call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        """A Graph call; a refused token disconnects the instance."""
        generation = self._generation
        try:
            return await self.graph.call(method, path, **options)
        except EngineError as error:
            if is_auth(error):
                self._lost_token(generation, error)
            raise

    def _check_connected(self) -> None:
        if not self.connected:
            raise EngineError(
                "The Cloud API credentials have not been confirmed", "instance_not_connected"
            )

    @staticmethod
    def _recipient(to: str) -> dict[str, str]:
        """How Meta addresses a chat: `to` a phone number, or `recipient` a BSUID."""
        number, _, server = to.partition("@")
        if server == USER_SERVER:
            return {"to": number}
        if server == BSUID_SERVER:
            return {"recipient": number}
        raise EngineError(
            "The Cloud API sends to phone numbers and business-scoped user ids only "
            f"(not {server or to} chats)",
            "unsupported_by_engine",
            400,
        )

    async def _send_media(
        self, recipient: dict[str, Any], media: Media, chosen: cloud_media.CloudMedia, caption: str
    ) -> Sent:
        content: dict[str, Any] = {"id": await self._upload(media, chosen.mimetype)}
        if caption and chosen.kind in ("image", "video", "document"):
            content["caption"] = caption
        if chosen.kind == "document":
            content["filename"] = media.filename
        return await self._message(recipient, chosen.kind, content)

    async def _message(self, recipient: dict[str, Any], kind: str, content: Any) -> Sent:
        answer = await self._call(
            "POST",
            f"/{self._number}/messages",
            json_body={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                **recipient,
                "type": kind,
                kind: content,
            },
        )
        try:
            message_id = str(answer["messages"][0]["id"])[:256]
        except (KeyError, IndexError, TypeError):
            raise bad_answer() from None
        return Sent(message_id, int(time.time()), chat=_chat(answer), message_type=kind)

    async def _upload(self, media: Media, mimetype: str) -> str:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mimetype)
        data = await asyncio.to_thread(Path(media.path).read_bytes)
        form.add_field("file", data, filename=media.filename, content_type=mimetype)
        answer = await self.graph.call("POST", f"/{self._number}/media", data=form)
        if not isinstance(answer.get("id"), str | int):
            raise bad_answer()
        return str(answer["id"])[:256]


def _context(options: SendOptions) -> dict[str, Any]:
    """A reply quotes by `context.message_id`; the Cloud API has no mentions."""
    if options.mentions:
        raise EngineError("The cloud engine cannot mention people", "unsupported_by_engine", 400)
    if options.quoted is None:
        return {}
    return {"context": {"message_id": options.quoted.message_id}}


def _chat(answer: dict[str, Any]) -> str | None:
    """The chat Meta delivered to (`contacts[0].wa_id`): numbers Meta rewrites (a
    country's old format) would otherwise split one customer into two chats."""
    try:
        wa_id = answer["contacts"][0]["wa_id"]
    except (KeyError, IndexError, TypeError):
        return None
    if not (isinstance(wa_id, str) and wa_id.isascii() and wa_id.isdigit() and len(wa_id) <= 20):
        return None
    return f"{wa_id}@{USER_SERVER}"
