"""The groups each instance is in, with their participants and roles, as its events say."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain.instance import Instance
from domain.timestamps import iso_ms, iso_seconds
from projections.base import ReadModelProjection, ident
from projections.rows import Rows, Table


class Groups(ReadModelProjection):
    """One row per group an instance is or was in (`left` once it is not)."""

    name = "groups"

    tables = (
        Table(
            "groups",
            {
                "instance_id": str,
                "jid": str,
                "subject": str,
                "description": str,
                "owner": str,
                "announce": int,
                "locked": int,
                "created_at": str,
                "participants": str,  # JSON: [{id, phone, lid, role}]
                "left": int,
                "updated_at": str,
            },
            pk=("instance_id", "jid"),
        ),
    )

    @singledispatchmethod
    def apply(self, event: Any, rows: Rows) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: Instance.GroupCreated, rows: Rows) -> None:
        self._whole(rows, event, event.group)

    @apply.register
    def _(self, event: Instance.GroupJoined, rows: Rows) -> None:
        self._whole(rows, event, event.group)

    @staticmethod
    def _whole(rows: Rows, event: Any, group: dict[str, Any]) -> None:
        key = {"instance_id": ident(event.originator_id), "jid": group["id"]}
        values = {
            "subject": group["subject"],
            "description": group.get("description") or "",
            "owner": group.get("owner"),
            "announce": int(bool(group.get("announce"))),
            "locked": int(bool(group.get("locked"))),
            "created_at": iso_seconds(group.get("created_at")),
            "participants": json.dumps(group.get("participants", [])),
            "left": 0,
            "updated_at": iso_ms(event.timestamp),
        }
        if rows.get("groups", key) is None:
            rows.insert("groups", {**key, **values})
        else:
            rows.update("groups", key, values)

    @apply.register
    def _(self, event: Instance.GroupParticipantsChanged, rows: Rows) -> None:
        key = {"instance_id": ident(event.originator_id), "jid": event.group_id}
        row = rows.get("groups", key)
        if row is None:
            return
        members: list[dict[str, Any]] = json.loads(row["participants"])
        for changed in event.participants:
            found = next((m for m in members if _same(m, changed)), None)
            if event.action == "add" and found is None:
                members.append({**changed, "role": "member"})
            elif event.action == "remove" and found is not None:
                members.remove(found)
            elif event.action in ("promote", "demote") and found is not None:
                found["role"] = "admin" if event.action == "promote" else "member"
        rows.update(
            "groups",
            key,
            {"participants": json.dumps(members), "updated_at": iso_ms(event.timestamp)},
        )

    @apply.register
    def _(self, event: Instance.GroupSettingsChanged, rows: Rows) -> None:
        key = {"instance_id": ident(event.originator_id), "jid": event.group_id}
        if rows.get("groups", key) is None:
            return
        values: dict[str, Any] = {"updated_at": iso_ms(event.timestamp)}
        for name in ("subject", "description"):
            if name in event.changes:
                values[name] = event.changes[name]
        for name in ("announce", "locked"):
            if name in event.changes:
                values[name] = int(bool(event.changes[name]))
        rows.update("groups", key, values)

    @apply.register
    def _(self, event: Instance.GroupLeft, rows: Rows) -> None:
        key = {"instance_id": ident(event.originator_id), "jid": event.group_id}
        if rows.get("groups", key) is not None:
            rows.update("groups", key, {"left": 1, "updated_at": iso_ms(event.timestamp)})


def _same(member: dict[str, Any], changed: dict[str, Any]) -> bool:
    """One person, whichever of their names each side uses."""
    if member["id"] == changed["id"]:
        return True
    return any(
        member.get(k) is not None and member.get(k) == changed.get(k) for k in ("phone", "lid")
    )
