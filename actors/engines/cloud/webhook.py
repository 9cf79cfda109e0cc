"""Meta's webhook for the Cloud API: its signature, and what a delivery says.

Shapes from Meta's messages webhook reference
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/),
the business-scoped user ID guide
(https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids/)
and the parsing of a widely used client library (pywa: `pywa/types/message.py`,
`pywa/types/user.py`, `pywa/types/message_status.py`).

Everything here is pure: the route verifies and parses a delivery before it hands the
reports to the instance's actor. A body that is not Meta's envelope (`{"entry": [1]}`,
nesting deeper than the decoder goes) is refused as a whole (`WebhookBodyError`, a
400); inside a well-formed envelope, a message or status that does not fit Meta's
documented shape is dropped and counted (and logged by the route), so one odd item
never costs the others. Text that goes into events is bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.engines.base import EngineEvent, Inbound, Notice, Reaction, Receipt
from actors.engines.cloud import shapes
from domain.phone import BSUID_SERVER, USER_SERVER, is_bsuid

BODY_LIMIT = 3 * 1024 * 1024  # Meta's documented largest webhook payload
TEXT_LIMIT = 8192
NAME_LIMIT = 256
ID_LIMIT = 256
STATUSES = ("delivered", "read", "played", "failed")  # "sent" is recorded by the send
STOP_PROMOTIONS = "Stop promotions"

_DIGITS = re.compile(r"[0-9]{1,20}")
_MEDIA = ("image", "video", "audio", "document", "sticker")


class WebhookBodyError(ValueError):
    """The body is not a Cloud API webhook envelope."""


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `X-Hub-Signature-256` is the HMAC-SHA256 of `body` under the app secret.

    Compared as bytes: `hmac.compare_digest` raises on text that is not ASCII."""
    if not secret or header is None:
        return False
    expected = b"sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(header.encode("utf-8", "surrogatepass"), expected)


def verify_token(expected: str, token: str | None) -> bool:
    """Whether Meta's subscription check carries this instance's verify token."""
    if not expected or token is None:
        return False
    return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode())


# -- what a delivery says ------------------------------------------------------------


@dataclass
class ChangeReports:
    """What one change of a delivery says: for the number `phone_number_id` names
    (None: the whole business account, as `account_update`), of account `waba_id`."""

    phone_number_id: str | None
    waba_id: str
    reports: list[EngineEvent] = field(default_factory=list)


@dataclass
class Delivery:
    changes: list[ChangeReports]
    dropped: list[str] = field(default_factory=list)  # why each dropped item was dropped


_ENVELOPE = msgspec.json.Decoder(shapes.Envelope)


def parse(body: bytes) -> Delivery:
    """The reports of one webhook delivery (WebhookBodyError if it is not one)."""
    try:
        envelope = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as error:
        raise WebhookBodyError(f"not a Cloud API webhook body: {_short(error)}") from None
    delivery = Delivery([])
    for entry in envelope.entry:
        for change in entry.changes:
            delivery.changes.append(_change(entry.id[:ID_LIMIT], change, delivery.dropped))
    return delivery


def _change(waba_id: str, change: shapes.Change, dropped: list[str]) -> ChangeReports:
    value = change.value
    if change.field == "account_update":
        return ChangeReports(None, waba_id, [Notice("account_update", _account_update(value))])
    metadata = _item(value.get("metadata") or {}, shapes.Metadata, dropped)
    number = metadata.phone_number_id if metadata is not None else None
    reports = ChangeReports(number if number and _DIGITS.fullmatch(number) else "", waba_id)
    if change.field != "messages":
        dropped.append(f"change of field {change.field[:40]!r}")
        return reports
    contacts = [c for c in _items(value, "contacts", shapes.Contact, dropped) if c is not None]
    for message in _items(value, "messages", shapes.Message, dropped):
        inbound = _inbound(message, contacts) if message is not None else None
        if inbound is None and message is not None:
            dropped.append(f"message {message.id[:80]!r} without a sender")
        elif inbound is not None:
            reports.reports.append(inbound)
    for status in _items(value, "statuses", shapes.Status, dropped):
        receipt = _receipt(status) if status is not None else None
        if receipt is not None:
            reports.reports.append(receipt)
    for error in _items(value, "errors", shapes.Error, dropped):
        if error is not None:
            reports.reports.append(Notice("error", _error(error)))
    return reports


def _items(value: dict[str, Any], key: str, kind: type[Any], dropped: list[str]) -> list[Any]:
    found = value.get(key)
    if found is None:
        return []
    if not isinstance(found, list):
        dropped.append(f"{key} is not a list")
        return []
    return [_item(item, kind, dropped, key) for item in found]


def _item(item: Any, kind: type[Any], dropped: list[str], key: str = "") -> Any:
    try:
        return msgspec.convert(item, kind)
    except msgspec.ValidationError as error:
        dropped.append(f"{key or kind.__name__.strip('_').lower()}: {_short(error)}")
        return None


def _short(error: Exception) -> str:
    return str(error)[:200]


def _text(value: str | None, limit: int = TEXT_LIMIT) -> str | None:
    return value[:limit] if value else None


def _id(value: str | None) -> str | None:
    return value[:ID_LIMIT] if value else None


# -- messages ------------------------------------------------------------------------


def _inbound(message: shapes.Message, contacts: list[shapes.Contact]) -> Inbound | Reaction | None:
    phone = message.sender if message.sender and _DIGITS.fullmatch(message.sender) else None
    bsuid = (
        message.from_user_id if message.from_user_id and is_bsuid(message.from_user_id) else None
    )
    if phone is None and bsuid is None:
        return None
    contact = next(
        (
            c
            for c in contacts
            if (phone is not None and c.wa_id == phone)
            or (bsuid is not None and c.user_id == bsuid)
        ),
        None,
    )
    profile = contact.profile if contact is not None and contact.profile is not None else None
    if bsuid is None and contact is not None and contact.user_id and is_bsuid(contact.user_id):
        bsuid = contact.user_id
    sender = f"{phone}@{USER_SERVER}" if phone else f"{bsuid}@{BSUID_SERVER}"
    if message.type == "reaction" and message.reaction is not None and message.reaction.message_id:
        # A reaction to a message of this chat ("" removes it): not a message of its own.
        return Reaction(
            message_id=message.reaction.message_id[:ID_LIMIT],
            chat=sender,
            sender=sender,
            emoji=_text(message.reaction.emoji, 32) or "",
            timestamp=_timestamp(message.timestamp),
            phone=phone,
        )
    body, data, media = _content(message)
    quoted = None
    if message.context is not None:
        data["context"] = _context(message.context)
        if not (message.context.forwarded or message.context.frequently_forwarded):
            quoted = _id(message.context.id)  # a reply (a forward names no message of ours)
    if message.referral is not None:
        data["referral"] = _referral(message.referral)
    return Inbound(
        message_id=message.id[:ID_LIMIT],
        sender=sender,
        push_name=_text(profile.name if profile else None, NAME_LIMIT),
        message_type=message.type[:40],
        body=body,
        media=media,
        timestamp=_timestamp(message.timestamp),
        data=data or None,
        bsuid=bsuid,
        username=_text(profile.username if profile else None, NAME_LIMIT),
        quoted_message_id=quoted,
        phone=phone,
    )


def _content(message: shapes.Message) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """The text for a person, the structured data and the media of a message."""
    kind = message.type
    if kind == "text" and message.text is not None:
        return _text(message.text.body) or "", {}, None
    if kind in _MEDIA:
        item: shapes.Media | None = getattr(message, kind)
        if item is None:
            return "", {}, None
        media = {
            "id": _id(item.id),
            "mimetype": _text(item.mime_type, 100),
            "filename": _text(item.filename, NAME_LIMIT),
            "size": None,
        }
        return _text(item.caption) or "", {}, media
    if kind == "interactive" and message.interactive is not None:
        return _interactive(message.interactive)
    if kind == "button" and message.button is not None:
        button = message.button
        data: dict[str, Any] = {
            "button": {"text": _text(button.text, 1024), "payload": _text(button.payload, 1024)}
        }
        if button.text == STOP_PROMOTIONS or button.payload == STOP_PROMOTIONS:
            data["button"]["stopPromotions"] = True
        return _text(button.text, 1024) or "", data, None
    if kind == "location" and message.location is not None:
        place = message.location
        location = {
            "latitude": place.latitude,
            "longitude": place.longitude,
            "name": _text(place.name, 1024),
            "address": _text(place.address, 1024),
            "url": _text(place.url, 2048),
        }
        said = place.name or place.address or f"{place.latitude}, {place.longitude}"
        return _text(said, 1024) or "", {"location": location}, None
    if kind == "contacts" and message.contacts is not None:
        cards = [_card(card) for card in message.contacts[:10]]
        names = ", ".join(c["name"] for c in cards if c["name"])
        return _text(names, 1024) or "", {"contacts": cards}, None
    if kind == "reaction" and message.reaction is not None:
        emoji = _text(message.reaction.emoji, 32) or ""
        reaction = {"messageId": _id(message.reaction.message_id), "emoji": emoji}
        return emoji, {"reaction": reaction}, None
    if kind == "order" and message.order is not None:
        return _order(message.order)
    if kind == "system" and message.system is not None:
        system = message.system
        data = {
            "system": {
                "type": _text(system.type, 64),
                "body": _text(system.body, 1024),
                "newWaId": _text(system.new_wa_id or system.wa_id, 32),
            }
        }
        return _text(system.body, 1024) or "", data, None
    unsupported = {
        "type": _text(message.unsupported.type if message.unsupported else None, 64),
        "errors": [_error(e) for e in message.errors[:5]],
    }
    return "", {"unsupported": unsupported}, None


def _interactive(interactive: shapes.Interactive) -> tuple[str, dict[str, Any], None]:
    reply = interactive.button_reply or interactive.list_reply
    if reply is not None:
        data: dict[str, Any] = {
            "type": interactive.type[:32],
            "id": _text(reply.id, ID_LIMIT),
            "title": _text(reply.title, 1024),
        }
        if reply.description:
            data["description"] = _text(reply.description, 1024)
        return _text(reply.title, 1024) or "", {"interactive": data}, None
    nfm = interactive.nfm_reply
    data = {
        "type": interactive.type[:32],
        "name": _text(nfm.name, 64) if nfm else None,
        "responseJson": _text(nfm.response_json) if nfm else None,
    }
    return (_text(nfm.body, 1024) or "") if nfm else "", {"interactive": data}, None


def _card(card: shapes.Card) -> dict[str, Any]:
    name = card.name
    said = (
        (name.formatted_name or " ".join(filter(None, (name.first_name, name.last_name))))
        if name
        else ""
    )
    return {
        "name": _text(said, NAME_LIMIT),
        "phones": [
            {"phone": _text(p.phone, 32), "waId": _text(p.wa_id, 32), "type": _text(p.type, 32)}
            for p in card.phones[:10]
        ],
    }


def _order(order: shapes.Order) -> tuple[str, dict[str, Any], None]:
    items = [
        {
            "productRetailerId": _text(item.product_retailer_id, ID_LIMIT),
            "quantity": item.quantity if not isinstance(item.quantity, str) else item.quantity[:32],
            "itemPrice": item.item_price
            if not isinstance(item.item_price, str)
            else item.item_price[:32],
            "currency": _text(item.currency, 8),
        }
        for item in order.product_items[:100]
    ]
    said = order.text or f"Order of {len(order.product_items)} item(s)"
    data = {
        "order": {"catalogId": _id(order.catalog_id), "text": _text(order.text), "items": items}
    }
    return _text(said, 1024) or "", data, None


def _context(context: shapes.Context) -> dict[str, Any]:
    said: dict[str, Any] = {}
    if context.id:
        said["quotedMessageId"] = _id(context.id)
    if context.sender:
        said["from"] = _text(context.sender, 64)
    if context.forwarded or context.frequently_forwarded:
        said["forwarded"] = True
    if context.frequently_forwarded:
        said["frequentlyForwarded"] = True
    return said


def _referral(referral: shapes.Referral) -> dict[str, Any]:
    """Where a click-to-WhatsApp ad or post led the customer from."""
    return {
        "sourceUrl": _text(referral.source_url, 2048),
        "sourceId": _id(referral.source_id),
        "sourceType": _text(referral.source_type, 32),
        "headline": _text(referral.headline, 1024),
        "body": _text(referral.body, 2048),
        "mediaType": _text(referral.media_type, 32),
        "ctwaClid": _text(referral.ctwa_clid, ID_LIMIT),
    }


def _timestamp(raw: str | int | None) -> int:
    try:
        value = int(raw) if raw is not None else 0
    except ValueError:
        return 0
    return value if 0 < value < 10**11 else 0


# -- statuses, errors, account updates ----------------------------------------------


def _receipt(status: shapes.Status) -> Receipt | None:
    if status.status not in STATUSES:
        return None  # "sent" (recorded by the send itself) and statuses Meta may add
    phone = (
        status.recipient_id
        if status.recipient_id and _DIGITS.fullmatch(status.recipient_id)
        else None
    )
    bsuid = (
        status.recipient_user_id
        if status.recipient_user_id and is_bsuid(status.recipient_user_id)
        else None
    )
    remote = f"{phone}@{USER_SERVER}" if phone else f"{bsuid}@{BSUID_SERVER}" if bsuid else ""
    error = _error(status.errors[0]) if status.status == "failed" and status.errors else None
    if status.status == "failed" and error is None:
        error = {"code": None, "title": None, "details": None}
    return Receipt(status.id[:ID_LIMIT], status.status, remote, error)


def _error(error: shapes.Error) -> dict[str, Any]:
    """An error as Meta's webhook states it: `{code, title, details}` (bounded)."""
    code = error.code if error.code is not None and 0 <= error.code < 10**9 else None
    details = error.error_data.details if error.error_data is not None else None
    return {
        "code": code,
        "title": _text(error.title or error.message, 200),
        "details": _text(details, 1024),
    }


def _account_update(value: dict[str, Any]) -> dict[str, Any]:
    """The parts of an `account_update` a person acts on: what happened (`event`), to
    which number, and the ban, violation or restriction it describes (bounded)."""
    said: dict[str, Any] = {}
    for key in ("event", "phone_number"):
        if isinstance(value.get(key), str | int):
            said[key] = str(value[key])[:64]
    for key in ("ban_info", "violation_info", "restriction_info", "lock_info"):
        if key in value:
            said[key] = _bounded(value[key])
    return said


def _bounded(value: Any, depth: int = 0) -> Any:
    """A small copy of JSON data: strings cut, lists and objects capped, depth 3."""
    if isinstance(value, str):
        return value[:256]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= 3:
        return None
    if isinstance(value, list):
        return [_bounded(v, depth + 1) for v in value[:10]]
    if isinstance(value, dict):
        return {str(k)[:64]: _bounded(v, depth + 1) for k, v in list(value.items())[:20]}
    return None
