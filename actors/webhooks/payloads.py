"""What a webhook receiver gets for each domain event, in the seed's shape, and when."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from domain.instance import Instance
from domain.phone import USER_SERVER


def _iso(event: Any) -> str:
    ts = event.timestamp
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


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
        # The chat (a group's, in a group), the sender's phone and LID, the quoted message,
        # mentions, structured content and Cloud API identity, when there are any.
        for key, value in (
            ("chat", event.chat if event.chat != event.sender else None),
            ("phone", event.phone),
            ("lid", event.lid),
            ("quotedMessageId", event.quoted_message_id),
            ("mentions", event.mentions),
            ("data", event.data),
            ("bsuid", event.bsuid),
            ("username", event.username),
        ):
            if value:
                data[key] = value
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
        for key, value in (
            ("phone", event.phone),
            ("lid", event.lid),
            ("quotedMessageId", event.quoted_message_id),
            ("mentions", event.mentions),
            ("data", event.data),
        ):
            if value:
                data[key] = value
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
        for key, value in (
            ("participant", event.participant),
            ("phone", event.phone),
            ("lid", event.lid),
        ):
            if value:
                data[key] = value
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
    elif isinstance(event, Instance.LoggedOut):
        name = "connection_closed"
        data = {"instanceId": instance_id, "reason": "logout", "willReconnect": False}
    elif isinstance(event, Instance.QrReceived):
        name = "qr_received"
        data = {"instanceId": instance_id, "qrCode": event.qr_code}
    else:
        found = _update(event, settings)
        if found is None:
            return None
        name, data = found
        data = {"instanceId": instance_id, **data}
    return {"event": name, "data": data, "timestamp": _iso(event)}


# The flag that asks for each of the events beyond the seed's (all off by default).
UPDATE_FLAGS = {
    Instance.MessageReacted: "notifyMessageUpdates",
    Instance.MessageEdited: "notifyMessageUpdates",
    Instance.MessageRevoked: "notifyMessageUpdates",
    Instance.PollVoted: "notifyMessageUpdates",
    Instance.GroupCreated: "notifyGroups",
    Instance.GroupJoined: "notifyGroups",
    Instance.GroupLeft: "notifyGroups",
    Instance.GroupParticipantsChanged: "notifyGroups",
    Instance.GroupSettingsChanged: "notifyGroups",
    Instance.PresenceUpdated: "notifyPresence",
}


def _update(event: Any, settings: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The name and data of a message update, group update or presence update, or None
    when it is not one or its flag is off."""
    flag = UPDATE_FLAGS.get(type(event))
    if flag is None or not settings.get(flag, False):
        return None
    who = {k: v for k in ("phone", "lid") if (v := getattr(event, k, None))}
    if isinstance(event, Instance.PresenceUpdated):
        return "presence_update", {
            "jid": event.jid,
            "state": event.state,
            "lastSeen": event.last_seen,
            **who,
        }
    if isinstance(event, Instance.PollVoted):
        return "poll_vote", {
            "messageId": event.message_id,
            "chat": event.chat,
            "voter": event.voter,
            "fromMe": event.from_me,
            "options": event.options,
            **who,
        }
    if isinstance(
        event, Instance.MessageReacted | Instance.MessageEdited | Instance.MessageRevoked
    ):
        data: dict[str, Any] = {
            "messageId": event.message_id,
            "chat": event.chat,
            "from": event.sender,
            "fromMe": event.from_me,
            **who,
        }
        if isinstance(event, Instance.MessageReacted):
            return "message_reaction", {**data, "emoji": event.emoji}
        if isinstance(event, Instance.MessageEdited):
            return "message_edited", {**data, "body": event.body}
        return "message_revoked", data
    return "group_update", _group_update(event)


def _group_update(event: Any) -> dict[str, Any]:
    if isinstance(event, Instance.GroupCreated | Instance.GroupJoined):
        group = event.group
        data: dict[str, Any] = {
            "groupId": group["id"],
            "action": "created" if isinstance(event, Instance.GroupCreated) else "joined",
            "subject": group["subject"],
            "participants": group["participants"],
        }
        if isinstance(event, Instance.GroupJoined):
            data.update(reason=event.reason, by=event.by)
        return data
    if isinstance(event, Instance.GroupLeft):
        return {"groupId": event.group_id, "action": "left", "reason": event.reason, "by": event.by}
    if isinstance(event, Instance.GroupParticipantsChanged):
        return {
            "groupId": event.group_id,
            "action": event.action,
            "participants": event.participants,
            "by": event.by,
        }
    return {
        "groupId": event.group_id,
        "action": "settings",
        "changes": event.changes,
        "by": event.by,
    }
