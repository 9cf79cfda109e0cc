"""Messages, chats, groups and people as the API shows them, from the read-model rows.

Also the other way: a message row as the `MessageRef` a command needs (what the engine
must know to address it, and what WhatsApp's rules are checked on).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from app.answers import (
    ChatSummary,
    GroupView,
    LastMessage,
    MessageView,
    ParticipantView,
    PollOptionView,
    PollView,
    ReactionView,
)
from domain.groups import Group
from domain.messages import MessageRef
from domain.phone import USER_SERVER, is_group, is_lid, jid_number
from domain.timestamps import iso_seconds

Row = Mapping[str, Any]


# -- messages -----------------------------------------------------------------------------


def message_ref(row: Row) -> MessageRef:
    """A message row as commands take it."""
    media = json.loads(row["media"]) if row.get("media") else None
    if media is not None and row.get("media_path"):
        media["path"] = row["media_path"]
    return MessageRef(
        message_id=row["message_id"],
        chat=row["remote_jid"],
        sender=None if row["from_me"] else (row.get("sender") or row["remote_jid"]),
        from_me=bool(row["from_me"]),
        message_type=row["message_type"],
        body=row["content"] or "",
        sent_at=seconds(row["created_at"]),
        data=json.loads(row["data"]) if row.get("data") else None,
        media=media,
        revoked=bool(row.get("revoked")),
        phone=row.get("phone"),
        lid=row.get("lid"),
    )


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def history_message(row: Row, known: Mapping[str, Row]) -> MessageView:
    """A history row, with the other party's phone and LID filled in from the pairs the
    instance learnt (also those learnt after the message)."""
    data = json.loads(row["data"]) if row.get("data") else {}
    party = row.get("sender") or row["remote_jid"]
    phone, lid = person(party, known, row.get("phone"), row.get("lid"))
    view = MessageView(
        id=row["id"],
        instanceId=row["instance_id"],
        remoteJid=row["remote_jid"],
        fromMe=bool(row["from_me"]),
        messageType=row["message_type"],
        content=row["content"],
        messageId=row["message_id"],
        hasMedia=bool(row["has_media"]),
        media=json.loads(row["media"]) if row["media"] else None,
        status=row["status"],
        createdAt=row["created_at"],
        sender=row.get("sender") if is_group(row["remote_jid"]) else None,
        phone=phone,
        lid=lid,
        quotedMessageId=row.get("quoted_message_id"),
        reactions=[
            ReactionView(sender=r["from"], emoji=r["emoji"])
            for r in (json.loads(row["reactions"]) if row.get("reactions") else [])
        ],
        edited=bool(row.get("edited")),
        revoked=bool(row.get("revoked")),
    )
    # The content by type has a field of its own; `data` keeps all of it, as it always has.
    if "location" in data:
        view.location = data["location"]
    if "contacts" in data:
        view.contacts = data["contacts"]
    if "poll" in data:
        poll = data["poll"]
        votes: dict[str, list[str]] = json.loads(row["votes"]) if row.get("votes") else {}
        view.poll = PollView(
            question=poll["question"],
            multipleAnswers=bool(poll.get("multipleAnswers")),
            options=[
                PollOptionView(
                    name=o, votes=sorted(v for v, chosen in votes.items() if o in chosen)
                )
                for o in poll["options"]
            ],
        )
    if data:
        view.data = data
    if row.get("error"):
        view.error = json.loads(row["error"])
    return view


def person(
    jid: str, known: Mapping[str, Row], phone: str | None = None, lid: str | None = None
) -> tuple[str | None, str | None]:
    """(phone, lid) of the person a JID names: as recorded, as learnt since, as the JID
    itself says."""
    if is_group(jid):
        return None, None
    pair = known.get(jid)
    if pair is not None:
        phone, lid = phone or pair["phone"], lid or pair["lid"]
    if is_lid(jid):
        return phone, lid or jid
    if jid.endswith("@" + USER_SERVER):
        return phone or jid_number(jid), lid
    return phone, lid


# -- groups, chats ------------------------------------------------------------------------


def group_view(group: Group) -> GroupView:
    """A group as the engine gave it."""
    described = group.describe()
    return GroupView(
        id=group.id,
        subject=group.subject,
        description=group.description,
        owner=group.owner,
        announce=group.announce,
        locked=group.locked,
        createdAt=iso_seconds(group.created_at),
        participants=[ParticipantView(**p) for p in described["participants"]],
    )


def group_row_view(row: Row) -> GroupView:
    """A group as the read model holds it."""
    return GroupView(
        id=row["jid"],
        subject=row["subject"],
        description=row["description"] or "",
        owner=row["owner"],
        announce=bool(row["announce"]),
        locked=bool(row["locked"]),
        createdAt=row["created_at"],
        participants=[ParticipantView(**p) for p in json.loads(row["participants"] or "[]")],
    )


def chat_view(row: Row) -> ChatSummary:
    return ChatSummary(
        id=row["jid"],
        name=row["name"],
        isGroup=bool(row["is_group"]),
        lastMessage=(
            msgspec.json.decode(row["last_message"], type=LastMessage)
            if row["last_message"]
            else None
        ),
        unreadCount=int(row["unread_count"] or 0),
        updatedAt=row["updated_at"],
    )
