"""Chat message history: both directions, with the status kept current by receipts."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain.instance import Instance
from domain.messages import changed_by_author
from domain.phone import is_group, phone_jid
from domain.timestamps import iso_ms
from projections.base import ReadModelProjection, ident, row_id
from projections.rows import Rows, Table

# A receipt never moves a message backwards (a late "delivered" after "read"). A failure
# after the network accepted a message (Cloud API) replaces whatever came before, and
# nothing replaces it.
STATUS_RANK = {
    "pending": 0,
    "sent": 1,
    "received": 1,
    "delivered": 2,
    "read": 3,
    "played": 4,
    "failed": 9,
}


class Messages(ReadModelProjection):
    """One row per message an instance sent or received, with what happened to it since:
    receipts (per participant in a group), reactions, edits, revocation, poll votes."""

    name = "messages"

    tables = (
        Table(
            "messages",
            {
                "id": str,
                "instance_id": str,
                "remote_jid": str,  # the chat: a group's JID in a group
                "from_me": int,
                "message_type": str,
                "content": str,
                "message_id": str,
                "has_media": int,
                "media": str,
                "status": str,
                "created_at": str,
                "data": str,  # JSON: the structured content, by kind (location, poll...)
                "error": str,  # JSON: {code, title, details} of a failed message
                "sender": str,  # who wrote a received message (the participant, in a group)
                "phone": str,  # the other party's (the author's, in a group), when known
                "lid": str,
                "quoted_message_id": str,
                "reactions": str,  # JSON: [{from, emoji}], one per reactor ("me": ours)
                "edited": int,
                "revoked": int,
                "votes": str,  # JSON: {voter: [options]} of a poll
                "receipts": str,  # JSON: {participant: status} of our message to a group
                "recipients": int,  # how many a group message went to
                "media_path": str,  # where the server keeps the file (never shown)
            },
            pk=("id",),
            indexes=[
                (("instance_id", "remote_jid", "created_at"), False),
                (("instance_id", "message_id"), False),
            ],
        ),
    )

    @singledispatchmethod
    def apply(self, event: Any, rows: Rows) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: Instance.MessageSent, rows: Rows) -> None:
        row = self._row(event, event.to, True, event.message_type, event.body, event.media, "sent")
        row.update(
            phone=event.phone,
            lid=event.lid,
            quoted_message_id=event.quoted_message_id,
            data=_json(event.data),
            recipients=len(event.recipients) or None,
        )
        rows.insert("messages", row)

    @apply.register
    def _(self, event: Instance.MessageReceived, rows: Rows) -> None:
        row = self._row(
            event, event.chat, False, event.message_type, event.body, event.media, "received"
        )
        row.update(
            sender=event.sender,
            phone=event.phone,
            lid=event.lid,
            quoted_message_id=event.quoted_message_id,
            data=_json(event.data),
        )
        rows.insert("messages", row)

    @apply.register
    def _(self, event: Instance.MessageStatusChanged, rows: Rows) -> None:
        where = {"instance_id": ident(event.originator_id), "message_id": event.message_id}
        if event.participant is not None and event.status != "failed":
            self._group_receipt(rows, where, event.participant, event.status)
            return
        rows.advance(
            "messages",
            where,
            "status",
            event.status,
            STATUS_RANK,
            {"error": json.dumps(event.error)} if event.error is not None else None,
        )

    @staticmethod
    def _group_receipt(rows: Rows, where: dict[str, Any], participant: str, status: str) -> None:
        """A group message is delivered once every recipient has it, read once every
        recipient has read it (as WhatsApp's ticks say)."""
        for row in rows.find("messages", where):
            if not row["from_me"]:
                continue
            receipts = json.loads(row["receipts"] or "{}")
            if STATUS_RANK.get(receipts.get(participant, ""), 0) >= STATUS_RANK.get(status, 0):
                continue
            receipts[participant] = status
            values: dict[str, Any] = {"receipts": json.dumps(receipts, sort_keys=True)}
            recipients = row["recipients"] or 1
            if len(receipts) >= recipients:
                lowest = min(receipts.values(), key=lambda s: STATUS_RANK.get(s, 0))
                if STATUS_RANK.get(lowest, 0) > STATUS_RANK.get(row["status"], 0):
                    values["status"] = lowest
            rows.update("messages", row["id"], values)

    @apply.register
    def _(self, event: Instance.MessageReacted, rows: Rows) -> None:
        reactor = "me" if event.from_me else (event.sender or "")
        for row in self._rows(rows, event):
            if not _in_chat(row, event):
                continue  # a reaction names its message by id alone: not one of this chat
            reactions = [r for r in json.loads(row["reactions"] or "[]") if r["from"] != reactor]
            if event.emoji:
                reactions.append({"from": reactor, "emoji": event.emoji})
            rows.update("messages", row["id"], {"reactions": json.dumps(reactions)})

    @apply.register
    def _(self, event: Instance.MessageEdited, rows: Rows) -> None:
        for row in self._changed(rows, event):
            if not row["revoked"]:
                rows.update("messages", row["id"], {"content": event.body, "edited": 1})

    @apply.register
    def _(self, event: Instance.MessageRevoked, rows: Rows) -> None:
        # The placeholder keeps who and when; what it said stays in the event history only.
        for row in self._changed(rows, event, admins=True):
            rows.update(
                "messages",
                row["id"],
                {
                    "content": "",
                    "revoked": 1,
                    "data": None,
                    "media": None,
                    "has_media": 0,
                    "media_path": None,
                    "reactions": None,
                    "votes": None,
                },
            )

    @apply.register
    def _(self, event: Instance.PollVoted, rows: Rows) -> None:
        voter = "me" if event.from_me else (event.voter or "")
        for row in self._rows(rows, event):
            if row["revoked"]:
                continue
            votes = json.loads(row["votes"] or "{}")
            if event.options:
                votes[voter] = list(event.options)
            else:
                votes.pop(voter, None)
            rows.update("messages", row["id"], {"votes": json.dumps(votes, sort_keys=True)})

    @classmethod
    def _changed(cls, rows: Rows, event: Any, admins: bool = False) -> list[dict[str, Any]]:
        """The rows of the message an edit or a revocation names, if its author made it
        (`admins`: in a group, a revocation from the group's chat too, as an admin may)."""
        by = (event.sender, event.phone, event.lid)
        return [
            row
            for row in cls._rows(rows, event)
            if changed_by_author(
                bool(row["from_me"]),
                (row["sender"] or row["remote_jid"], row["phone"], row["lid"]),
                event.from_me,
                by,
            )
            or (admins and is_group(row["remote_jid"]) and row["remote_jid"] == event.chat)
        ]

    @staticmethod
    def _rows(rows: Rows, event: Any) -> list[dict[str, Any]]:
        """The rows of the message an event names (two if the instance wrote to itself)."""
        where = {"instance_id": ident(event.originator_id), "message_id": event.message_id}
        return rows.find("messages", where)

    @staticmethod
    def _row(
        event: Any,
        remote_jid: str,
        from_me: bool,
        kind: str,
        content: str,
        media: dict[str, Any] | None,
        status: str,
    ) -> dict[str, Any]:
        public_media = (
            {k: v for k, v in media.items() if k != "path"} if media is not None else None
        )
        return {
            "id": row_id(event),
            "instance_id": ident(event.originator_id),
            "remote_jid": remote_jid,
            "from_me": int(from_me),
            "message_type": kind,
            "content": content,
            "message_id": event.message_id,
            "has_media": int(media is not None),
            "media": json.dumps(public_media) if public_media is not None else None,
            "status": status,
            "created_at": iso_ms(event.timestamp),
            "data": None,
            "error": None,
            "sender": None,
            "phone": None,
            "lid": None,
            "quoted_message_id": None,
            "reactions": None,
            "edited": 0,
            "revoked": 0,
            "votes": None,
            "receipts": None,
            "recipients": None,
            "media_path": media.get("path") if media is not None else None,
        }


def _in_chat(row: dict[str, Any], event: Any) -> bool:
    """Whether a change that came from `event.chat` (a group, or a person by either name)
    is in the chat of the message `row`."""
    chat = row["remote_jid"]
    if is_group(chat) or is_group(event.chat):
        return bool(chat == event.chat)
    names = {chat, row["lid"], phone_jid(row["phone"]) if row["phone"] else None}
    return event.chat in names or bool(event.lid and event.lid == row["lid"])


def _json(value: Any) -> str | None:
    return json.dumps(value) if value is not None else None
