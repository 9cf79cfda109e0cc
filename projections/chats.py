"""Who is who (phone numbers and LIDs) and the chat list: one chat per person or group,
whichever of a person's two names addressed it.

WhatsApp may name a person by a LID (`…@lid`) instead of their phone number. Each pair an
instance learns (IdentityLearnt) is kept both ways in `identities`; a chat is found by
either name: a message by LID to a person whose number is known lands in the chat of the
number. Chats opened under both names before the pair was known are folded into the
number's when it is learnt (`merged_into` marks the LID's), so history written before
shows as one chat too, live and after a rebuild alike.
"""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain.instance import Instance
from domain.phone import USER_SERVER, is_group
from domain.timestamps import iso_ms
from projections.base import ReadModelProjection, ident
from projections.rows import Rows, Table

PREVIEW = 200  # characters of the last message kept for the chat list


class Chats(ReadModelProjection):
    """The chat list (last message, unread count) and the phone/LID pairs."""

    name = "chats"

    tables = (
        Table(
            "identities",
            {"instance_id": str, "jid": str, "phone": str, "lid": str},
            pk=("instance_id", "jid"),
        ),
        Table(
            "chats",
            {
                "instance_id": str,
                "jid": str,
                "name": str,
                "is_group": int,
                "last_message": str,  # JSON: {id, fromMe, type, content, createdAt, ...}
                "unread_count": int,
                "updated_at": str,
                "merged_into": str,  # the chat this one is now part of (a LID's, once paired)
            },
            pk=("instance_id", "jid"),
            indexes=[(("instance_id", "updated_at"), False)],
        ),
    )

    @singledispatchmethod
    def apply(self, event: Any, rows: Rows) -> None:
        """Events this projection does not model change nothing."""

    # -- messages -----------------------------------------------------------------------

    @apply.register
    def _(self, event: Instance.MessageSent, rows: Rows) -> None:
        self._message(rows, event, event.to, True, None)

    @apply.register
    def _(self, event: Instance.MessageReceived, rows: Rows) -> None:
        name = event.push_name if not is_group(event.chat) else None
        self._message(rows, event, event.chat, False, name)

    def _message(self, rows: Rows, event: Any, jid: str, from_me: bool, name: str | None) -> None:
        instance_id = ident(event.originator_id)
        key, row = find_chat(rows, instance_id, jid)
        at = iso_ms(event.timestamp)
        last = {
            "id": event.message_id,
            "fromMe": from_me,
            "type": event.message_type,
            "content": event.body[:PREVIEW],
            "createdAt": at,
        }
        if row is None:
            if is_group(key):
                group = rows.get("groups", _k(instance_id, key))
                name = group["subject"] if group is not None else None
            rows.insert(
                "chats",
                {
                    "instance_id": instance_id,
                    "jid": key,
                    "name": name,
                    "is_group": int(is_group(key)),
                    "last_message": json.dumps(last),
                    "unread_count": 0 if from_me else 1,
                    "updated_at": at,
                    "merged_into": None,
                },
            )
            return
        values: dict[str, Any] = {"last_message": json.dumps(last), "updated_at": at}
        if not from_me:
            values["unread_count"] = (row["unread_count"] or 0) + 1
        if name and not row["is_group"]:
            values["name"] = name
        rows.update("chats", _k(instance_id, key), values)

    @apply.register
    def _(self, event: Instance.ChatRead, rows: Rows) -> None:
        instance_id = ident(event.originator_id)
        key, row = find_chat(rows, instance_id, event.chat)
        if row is not None:
            rows.update("chats", _k(instance_id, key), {"unread_count": 0})

    @apply.register
    def _(self, event: Instance.MessageEdited, rows: Rows) -> None:
        self._last_changed(rows, event, {"content": event.body[:PREVIEW], "edited": True})

    @apply.register
    def _(self, event: Instance.MessageRevoked, rows: Rows) -> None:
        self._last_changed(rows, event, {"content": "", "revoked": True})

    @staticmethod
    def _last_changed(rows: Rows, event: Any, change: dict[str, Any]) -> None:
        """An edit or revocation of the message the chat list shows changes it there too."""
        instance_id = ident(event.originator_id)
        key, row = find_chat(rows, instance_id, event.chat)
        if row is None:
            return
        last = json.loads(row["last_message"] or "{}")
        if last.get("id") == event.message_id:
            rows.update(
                "chats", _k(instance_id, key), {"last_message": json.dumps({**last, **change})}
            )

    # -- groups ------------------------------------------------------------------------

    @apply.register
    def _(self, event: Instance.GroupCreated, rows: Rows) -> None:
        self._group_name(rows, event, event.group["id"], event.group["subject"])

    @apply.register
    def _(self, event: Instance.GroupJoined, rows: Rows) -> None:
        self._group_name(rows, event, event.group["id"], event.group["subject"])

    @apply.register
    def _(self, event: Instance.GroupSettingsChanged, rows: Rows) -> None:
        if "subject" in event.changes:
            self._group_name(rows, event, event.group_id, event.changes["subject"])

    @staticmethod
    def _group_name(rows: Rows, event: Any, group_id: str, subject: str) -> None:
        key = _k(ident(event.originator_id), group_id)
        if rows.get("chats", key) is not None:
            rows.update("chats", key, {"name": subject})

    # -- who is who ----------------------------------------------------------------------

    @apply.register
    def _(self, event: Instance.IdentityLearnt, rows: Rows) -> None:
        instance_id = ident(event.originator_id)
        number = f"{event.phone}@{USER_SERVER}"
        for jid in (number, event.lid):
            rows.merge(
                "identities",
                {"instance_id": instance_id, "jid": jid, "phone": event.phone, "lid": event.lid},
                keep=("phone", "lid"),
            )
        # Two chats of one person: the LID's joins the number's.
        by_number = _live(rows, instance_id, number)
        by_lid = _live(rows, instance_id, event.lid)
        if by_number is None or by_lid is None or by_number["jid"] == by_lid["jid"]:
            return
        newer = max(by_number, by_lid, key=lambda r: r["updated_at"] or "")
        rows.update(
            "chats",
            _k(instance_id, by_number["jid"]),
            {
                "name": by_number["name"] or by_lid["name"],
                "last_message": newer["last_message"],
                "updated_at": newer["updated_at"],
                "unread_count": (by_number["unread_count"] or 0) + (by_lid["unread_count"] or 0),
            },
        )
        rows.update("chats", _k(instance_id, by_lid["jid"]), {"merged_into": by_number["jid"]})


def _live(rows: Rows, instance_id: str, jid: str) -> dict[str, Any] | None:
    """The chat `jid` is in now (following merges), if there is one."""
    row = rows.get("chats", _k(instance_id, jid))
    while row is not None and row["merged_into"]:
        row = rows.get("chats", _k(instance_id, row["merged_into"]))
    return row


def find_chat(rows: Rows, instance_id: str, jid: str) -> tuple[str, dict[str, Any] | None]:
    """The chat a message to or from `jid` belongs in, and its row if it exists: the chat
    under this name, else one under the person's other name (the number's first), else
    (a new chat) the number's when it is known. The common case costs one read."""
    row = _live(rows, instance_id, jid)
    if row is not None or is_group(jid):
        return (str(row["jid"]) if row is not None else jid), row
    known = rows.get("identities", _k(instance_id, jid))
    if known is None:
        return jid, None
    names = [f"{known['phone']}@{USER_SERVER}", known["lid"]]
    for name in names:
        if name != jid:
            row = _live(rows, instance_id, name)
            if row is not None:
                return str(row["jid"]), row
    return names[0], None


def _k(instance_id: str, jid: str) -> dict[str, str]:
    return {"instance_id": instance_id, "jid": jid}
