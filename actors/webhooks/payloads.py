"""What a webhook receiver gets for each domain event, in the seed's shape, and when.

Which events are sent, and under which name, is `domain.events`' to say (its `webhook`
field); this module builds the `data` of each of them, one function per event class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain import events
from domain.instance import Instance
from domain.phone import USER_SERVER
from domain.timestamps import iso_epoch, iso_ms

# The setting that asks for each receipt; `played` (a voice message listened to) is a read.
STATUS_FLAGS = {"delivered": "notifyDelivery", "read": "notifyRead", "played": "notifyRead"}

Data = dict[str, Any] | None
Builder = Callable[[Any, str, dict[str, Any]], Data]


def payload(event: Any, settings: dict[str, Any]) -> dict[str, Any] | None:
    """`{event, data, timestamp}` for a domain event, or None when it is never sent (see
    `domain.events`) or the settings filter it out."""
    build = BUILDERS.get(type(event))
    if build is None:
        return None
    data = build(event, str(event.originator_id), settings)
    if data is None:
        return None
    return {
        "event": events.BY_CLASS[type(event)].webhook,
        "data": data,
        "timestamp": iso_ms(event.timestamp),
    }


def _received(event: Instance.MessageReceived, instance_id: str, settings: dict[str, Any]) -> Data:
    if not settings.get("notifyReceived", True):
        return None
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
    return data


def _undecryptable(
    event: Instance.MessageUndecryptable, instance_id: str, settings: dict[str, Any]
) -> Data:
    if not settings.get("notifyReceived", True):
        return None
    # As message_received names them: `from` who wrote it, `chat` the group in a group.
    data = {
        "instanceId": instance_id,
        "messageId": event.message_id,
        "from": event.participant or event.sender,
        "phone": event.phone,
        "lid": event.lid,
        "unavailable": event.unavailable,
        "timestamp": event.received_at,
    }
    if event.participant:
        data["chat"] = event.sender
    return data


def _sent(event: Instance.MessageSent, instance_id: str, settings: dict[str, Any]) -> Data:
    if not settings.get("notifySent", True):
        return None
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
    if event.origin != "api":
        data["origin"] = event.origin  # sent from the phone or another linked device
    return data


def _status(
    event: Instance.MessageStatusChanged, instance_id: str, settings: dict[str, Any]
) -> Data:
    # A failure after acceptance is always sent (SPEC 5): the message is lost otherwise.
    if event.status != "failed":
        wanted = STATUS_FLAGS.get(event.status)
        if wanted is None or not settings.get(wanted, False):
            return None
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
    return data


def _opened(event: Instance.ConnectionOpened, instance_id: str, settings: dict[str, Any]) -> Data:
    data = {"instanceId": instance_id}
    if event.phone:
        data["phone"] = event.phone
        data["jid"] = f"{event.phone}@{USER_SERVER}"
    return data


def _closed(event: Instance.ConnectionClosed, instance_id: str, settings: dict[str, Any]) -> Data:
    data = {
        "instanceId": instance_id,
        "reason": event.reason,
        "willReconnect": event.will_reconnect,
    }
    if event.retry_at is not None:
        data["retryAt"] = iso_epoch(event.retry_at)
    return data


def _banned(event: Instance.TemporarilyBanned, instance_id: str, settings: dict[str, Any]) -> Data:
    return {
        "instanceId": instance_id,
        "reason": f"banned: {event.reason}",
        "willReconnect": True,
        "retryAt": iso_epoch(event.expires_at),
    }


def _outdated(event: Instance.ClientOutdated, instance_id: str, settings: dict[str, Any]) -> Data:
    return {"instanceId": instance_id, "reason": "client_outdated", "willReconnect": False}


def _logged_out(event: Instance.LoggedOut, instance_id: str, settings: dict[str, Any]) -> Data:
    return {"instanceId": instance_id, "reason": "logout", "willReconnect": False}


def _qr(event: Instance.QrReceived, instance_id: str, settings: dict[str, Any]) -> Data:
    return {"instanceId": instance_id, "qrCode": event.qr_code}


# -- beyond the seed's events: each behind a flag that is off by default -------------------


def _who(event: Any) -> dict[str, Any]:
    return {k: v for k in ("phone", "lid") if (v := getattr(event, k, None))}


def _flag(name: str) -> Callable[[Builder], Builder]:
    """A builder that answers None unless the instance's settings turn `name` on."""

    def wrap(build: Builder) -> Builder:
        def built(event: Any, instance_id: str, settings: dict[str, Any]) -> Data:
            return build(event, instance_id, settings) if settings.get(name, False) else None

        return built

    return wrap


def _on_message(event: Any, instance_id: str) -> dict[str, Any]:
    return {
        "instanceId": instance_id,
        "messageId": event.message_id,
        "chat": event.chat,
        "from": event.sender,
        "fromMe": event.from_me,
        **_who(event),
    }


@_flag("notifyMessageUpdates")
def _reacted(event: Instance.MessageReacted, instance_id: str, settings: dict[str, Any]) -> Data:
    return {**_on_message(event, instance_id), "emoji": event.emoji}


@_flag("notifyMessageUpdates")
def _edited(event: Instance.MessageEdited, instance_id: str, settings: dict[str, Any]) -> Data:
    return {**_on_message(event, instance_id), "body": event.body}


@_flag("notifyMessageUpdates")
def _revoked(event: Instance.MessageRevoked, instance_id: str, settings: dict[str, Any]) -> Data:
    return _on_message(event, instance_id)


@_flag("notifyMessageUpdates")
def _voted(event: Instance.PollVoted, instance_id: str, settings: dict[str, Any]) -> Data:
    return {
        "instanceId": instance_id,
        "messageId": event.message_id,
        "chat": event.chat,
        "voter": event.voter,
        "fromMe": event.from_me,
        "options": event.options,
        **_who(event),
    }


@_flag("notifyPresence")
def _presence(event: Instance.PresenceUpdated, instance_id: str, settings: dict[str, Any]) -> Data:
    return {
        "instanceId": instance_id,
        "jid": event.jid,
        "state": event.state,
        "lastSeen": event.last_seen,
        **_who(event),
    }


@_flag("notifyGroups")
def _group(event: Any, instance_id: str, settings: dict[str, Any]) -> Data:
    data: dict[str, Any]
    if isinstance(event, Instance.GroupCreated | Instance.GroupJoined):
        group = event.group
        data = {
            "groupId": group["id"],
            "action": "created" if isinstance(event, Instance.GroupCreated) else "joined",
            "subject": group["subject"],
            "participants": group["participants"],
        }
        if isinstance(event, Instance.GroupJoined):
            data.update(reason=event.reason, by=event.by)
    elif isinstance(event, Instance.GroupLeft):
        data = {"groupId": event.group_id, "action": "left", "reason": event.reason, "by": event.by}
    elif isinstance(event, Instance.GroupParticipantsChanged):
        data = {
            "groupId": event.group_id,
            "action": event.action,
            "participants": event.participants,
            "by": event.by,
        }
    else:
        data = {
            "groupId": event.group_id,
            "action": "settings",
            "changes": event.changes,
            "by": event.by,
        }
    return {"instanceId": instance_id, **data}


#: The `data` of each event `domain.events` sends as a webhook (`tests/test_events.py`
#: checks that the two agree).
BUILDERS: dict[type[Any], Builder] = {
    Instance.MessageReceived: _received,
    Instance.MessageUndecryptable: _undecryptable,
    Instance.MessageSent: _sent,
    Instance.MessageStatusChanged: _status,
    Instance.ConnectionOpened: _opened,
    Instance.ConnectionClosed: _closed,
    Instance.TemporarilyBanned: _banned,
    Instance.ClientOutdated: _outdated,
    Instance.LoggedOut: _logged_out,
    Instance.QrReceived: _qr,
    Instance.MessageReacted: _reacted,
    Instance.MessageEdited: _edited,
    Instance.MessageRevoked: _revoked,
    Instance.PollVoted: _voted,
    Instance.PresenceUpdated: _presence,
    Instance.GroupCreated: _group,
    Instance.GroupJoined: _group,
    Instance.GroupLeft: _group,
    Instance.GroupParticipantsChanged: _group,
    Instance.GroupSettingsChanged: _group,
}
