"""What a webhook receiver gets for each domain event, in the seed's shape, and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.instance import Instance
from domain.phone import USER_SERVER


def _iso(event: Any) -> str:
    return _utc(event.timestamp)


def _utc(ts: datetime) -> str:
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def iso_epoch(seconds: float) -> str:
    return _utc(datetime.fromtimestamp(seconds, UTC))


# The setting that asks for each receipt; `played` (a voice message listened to) is a read.
STATUS_FLAGS = {"delivered": "notifyDelivery", "read": "notifyRead", "played": "notifyRead"}


def payload(event: Any, settings: dict[str, Any]) -> dict[str, Any] | None:
    """`{event, data, timestamp}` for a domain event, or None when the settings filter it out."""
    instance_id = str(event.originator_id)
    name: str
    data: dict[str, Any]
    if isinstance(event, Instance.MessageReceived):
        if not settings.get("notifyReceived", True):
            return None
        name = "message_received"
        data = {
            "instanceId": instance_id,
            "messageId": event.message_id,
            "from": event.sender,
            "body": event.body,
            "type": "conversation" if event.message_type == "text" else event.message_type,
            "timestamp": event.received_at,
            "hasMedia": event.media is not None,
            "pushName": event.push_name,
        }
        # Who wrote it (a group's participant, the person's phone and LID), its structured
        # content and the sender's Cloud API identity, when there are any.
        for key, value in (
            ("participant", event.participant),
            ("phone", event.phone),
            ("lid", event.lid),
            ("data", event.data),
            ("bsuid", event.bsuid),
            ("username", event.username),
        ):
            if value:
                data[key] = value
    elif isinstance(event, Instance.MessageUndecryptable):
        if not settings.get("notifyReceived", True):
            return None
        name = "message_undecryptable"
        data = {
            "instanceId": instance_id,
            "messageId": event.message_id,
            "from": event.sender,
            "participant": event.participant,
            "phone": event.phone,
            "lid": event.lid,
            "unavailable": event.unavailable,
            "timestamp": event.received_at,
        }
    elif isinstance(event, Instance.MessageSent):
        if not settings.get("notifySent", True):
            return None
        name = "message_sent"
        data = {
            "instanceId": instance_id,
            "messageId": event.message_id,
            "to": event.to,
            "body": event.body,
            "type": event.message_type,
            "timestamp": event.sent_at,
            "hasMedia": event.media is not None,
        }
        if event.origin != "api":
            data["origin"] = event.origin  # sent from the phone or another linked device
    elif isinstance(event, Instance.MessageStatusChanged):
        # A failure after acceptance is always sent (SPEC 5): the message is lost otherwise.
        if event.status != "failed":
            wanted = STATUS_FLAGS.get(event.status)
            if wanted is None or not settings.get(wanted, False):
                return None
        name = "message_status"
        data = {
            "instanceId": instance_id,
            "messageId": event.message_id,
            "status": event.status,
            "from": event.remote_jid,
            "fromMe": event.from_me,
        }
        if event.error is not None:
            data["error"] = event.error
    elif isinstance(event, Instance.ConnectionOpened):
        name = "connection_opened"
        data = {"instanceId": instance_id}
        if event.phone:
            data["phone"] = event.phone
            data["jid"] = f"{event.phone}@{USER_SERVER}"
    elif isinstance(event, Instance.ConnectionClosed):
        name = "connection_closed"
        data = {
            "instanceId": instance_id,
            "reason": event.reason,
            "willReconnect": event.will_reconnect,
        }
        if event.retry_at is not None:
            data["retryAt"] = iso_epoch(event.retry_at)
    elif isinstance(event, Instance.TemporarilyBanned):
        name = "connection_closed"
        data = {
            "instanceId": instance_id,
            "reason": f"banned: {event.reason}",
            "willReconnect": True,
            "retryAt": iso_epoch(event.expires_at),
        }
    elif isinstance(event, Instance.ClientOutdated):
        name = "connection_closed"
        data = {
            "instanceId": instance_id,
            "reason": "client_outdated",
            "willReconnect": False,
        }
    elif isinstance(event, Instance.LoggedOut):
        name = "connection_closed"
        data = {"instanceId": instance_id, "reason": "logout", "willReconnect": False}
    elif isinstance(event, Instance.QrReceived):
        name = "qr_received"
        data = {"instanceId": instance_id, "qrCode": event.qr_code}
    else:
        return None
    return {"event": name, "data": data, "timestamp": _iso(event)}
