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
from domain.messages import changed_by_author
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

    _chats: ChatRows | None = None

    def chats(self, rows: Rows) -> ChatRows:
        """The chats table as this transaction has changed it so far."""
        if self._chats is None or self._chats.rows is not rows:
            self._chats = ChatRows(rows)
        return self._chats

    def finish(self, rows: Rows) -> None:
        if self._chats is not None and self._chats.rows is rows:
            self._chats.write()
        self._chats = None

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
        chats = self.chats(rows)
        key, row = find_chat(chats, instance_id, jid)
        at = iso_ms(event.timestamp)
        last = {
            "id": event.message_id,
            "fromMe": from_me,
            "type": event.message_type,
            "content": event.body[:PREVIEW],
            "createdAt": at,
        }
        if not from_me and is_group(jid):  # its author, whose edits alone change it
            last.update(sender=event.sender, phone=event.phone, lid=event.lid)
        if row is None:
            if is_group(key):
                group = rows.get("groups", _k(instance_id, key))
                name = group["subject"] if group is not None else None
            chats.insert(
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
        chats.update(instance_id, key, values)

    @apply.register
    def _(self, event: Instance.ChatRead, rows: Rows) -> None:
        instance_id = ident(event.originator_id)
        chats = self.chats(rows)
        key, row = find_chat(chats, instance_id, event.chat)
        if row is not None:
            chats.update(instance_id, key, {"unread_count": 0})

    @apply.register
    def _(self, event: Instance.MessageEdited, rows: Rows) -> None:
        self._last_changed(rows, event, {"content": event.body[:PREVIEW], "edited": True})

    @apply.register
    def _(self, event: Instance.MessageRevoked, rows: Rows) -> None:
        self._last_changed(rows, event, {"content": "", "revoked": True}, admins=True)

    def _last_changed(
        self, rows: Rows, event: Any, change: dict[str, Any], admins: bool = False
    ) -> None:
        """An edit or revocation of the message the chat list shows changes it there too,
        if its author made it (`admins`: in a group, anyone in it may: an admin may)."""
        instance_id = ident(event.originator_id)
        chats = self.chats(rows)
        key, row = find_chat(chats, instance_id, event.chat)
        if row is None:
            return
        last = json.loads(row["last_message"] or "{}")
        if last.get("id") != event.message_id:
            return
        if not is_group(key):  # the chat of the person the change came from
            allowed = bool(last.get("fromMe")) == event.from_me
        else:
            author = (last.get("sender"), last.get("phone"), last.get("lid"))
            by = (event.sender, event.phone, event.lid)
            allowed = admins or changed_by_author(
                bool(last.get("fromMe")), author, event.from_me, by
            )
        if allowed:
            chats.update(instance_id, key, {"last_message": json.dumps({**last, **change})})

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

    def _group_name(self, rows: Rows, event: Any, group_id: str, subject: str) -> None:
        instance_id = ident(event.originator_id)
        chats = self.chats(rows)
        if chats.get(instance_id, group_id) is not None:
            chats.update(instance_id, group_id, {"name": subject})

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
        chats = self.chats(rows)
        by_number = _live(chats, instance_id, number)
        by_lid = _live(chats, instance_id, event.lid)
        if by_number is None or by_lid is None or by_number["jid"] == by_lid["jid"]:
            return
        newer = max(by_number, by_lid, key=lambda r: r["updated_at"] or "")
        chats.update(
            instance_id,
            by_number["jid"],
            {
                "name": by_number["name"] or by_lid["name"],
                "last_message": newer["last_message"],
                "updated_at": newer["updated_at"],
                "unread_count": (by_number["unread_count"] or 0) + (by_lid["unread_count"] or 0),
            },
        )
        chats.update(instance_id, by_lid["jid"], {"merged_into": by_number["jid"]})


class ChatRows:
    """The chats table as one transaction changes it: each row read once, and the changes
    written when the transaction's events are all applied (`write`), one per chat. Every
    message changes its chat's row; reading it back from the table each time would send
    the table's buffered writes first, one statement per message instead of one per batch.
    Only this projection writes the table."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self._known: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._new: set[tuple[str, str]] = set()
        self._changed: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, instance_id: str, jid: str) -> dict[str, Any] | None:
        key = (instance_id, jid)
        if key not in self._known:
            self._known[key] = self.rows.get("chats", _k(instance_id, jid))
        return self._known[key]

    def insert(self, row: dict[str, Any]) -> None:
        key = (row["instance_id"], row["jid"])
        self._known[key] = dict(row)
        self._new.add(key)

    def update(self, instance_id: str, jid: str, values: dict[str, Any]) -> None:
        key = (instance_id, jid)
        row = self.get(instance_id, jid)
        if row is None:
            return  # as an UPDATE of no row
        row.update(values)
        if key not in self._new:
            self._changed.setdefault(key, {}).update(values)

    def write(self) -> None:
        for key in self._new:
            self.rows.insert("chats", dict(self._known[key] or {}))
        for (instance_id, jid), values in self._changed.items():
            self.rows.update("chats", _k(instance_id, jid), values)
        self._new.clear()
        self._changed.clear()


def _live(chats: ChatRows, instance_id: str, jid: str) -> dict[str, Any] | None:
    """The chat `jid` is in now (following merges), if there is one."""
    row = chats.get(instance_id, jid)
    while row is not None and row["merged_into"]:
        row = chats.get(instance_id, row["merged_into"])
    return row


def find_chat(chats: ChatRows, instance_id: str, jid: str) -> tuple[str, dict[str, Any] | None]:
    """The chat a message to or from `jid` belongs in, and its row if it exists: the chat
    under this name, else one under the person's other name (the number's first), else
    (a new chat) the number's when it is known. The common case costs one read."""
    row = _live(chats, instance_id, jid)
    if row is not None or is_group(jid):
        return (str(row["jid"]) if row is not None else jid), row
    known = chats.rows.get("identities", _k(instance_id, jid))
    if known is None:
        return jid, None
    names = [f"{known['phone']}@{USER_SERVER}", known["lid"]]
    for name in names:
        if name != jid:
            row = _live(chats, instance_id, name)
            if row is not None:
                return str(row["jid"]), row
    return names[0], None


def _k(instance_id: str, jid: str) -> dict[str, str]:
    return {"instance_id": instance_id, "jid": jid}
