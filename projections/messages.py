"""Chat message history: both directions, with the status kept current by receipts."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

import sqlite_utils

from domain.instance import Instance
from projections.base import ReadModelProjection, iso, row_id

# A receipt never moves a message backwards (a late "delivered" after "read").
STATUS_RANK = {"pending": 0, "sent": 1, "received": 1, "delivered": 2, "read": 3, "played": 4}


class Messages(ReadModelProjection):
    """One row per message an instance sent or received."""

    name = "messages"

    def create_tables(self, db: sqlite_utils.Database) -> None:
        db["messages"].create(
            {
                "id": str, "instance_id": str, "remote_jid": str, "from_me": int,
                "message_type": str, "content": str, "message_id": str, "has_media": int,
                "media": str, "status": str, "created_at": str,
            },
            pk="id", if_not_exists=True,
        )
        db["messages"].create_index(
            ["instance_id", "remote_jid", "created_at"], if_not_exists=True
        )
        db["messages"].create_index(["instance_id", "message_id"], if_not_exists=True)

    @singledispatchmethod
    def apply(self, event: Any, db: sqlite_utils.Database) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: Instance.MessageSent, db: sqlite_utils.Database) -> None:
        self._insert(db, event, event.to, True, event.message_type, event.body, event.message_id,
                     event.media, "sent")

    @apply.register
    def _(self, event: Instance.MessageReceived, db: sqlite_utils.Database) -> None:
        self._insert(db, event, event.sender, False, event.message_type, event.body,
                     event.message_id, event.media, "received")

    @apply.register
    def _(self, event: Instance.MessageStatusChanged, db: sqlite_utils.Database) -> None:
        rank = STATUS_RANK.get(event.status, 0)
        cases = " ".join(f"WHEN '{s}' THEN {r}" for s, r in STATUS_RANK.items())
        db.execute(
            f"UPDATE messages SET status=? WHERE instance_id=? AND message_id=? "
            f"AND (CASE status {cases} ELSE 0 END) < ?",
            [event.status, str(event.originator_id), event.message_id, rank],
        )

    @staticmethod
    def _insert(
        db: sqlite_utils.Database, event: Any, remote_jid: str, from_me: bool, kind: str,
        content: str, message_id: str, media: dict[str, Any] | None, status: str,
    ) -> None:
        public_media = (
            {k: v for k, v in media.items() if k != "path"} if media is not None else None
        )
        db.execute(
            "INSERT INTO messages (id, instance_id, remote_jid, from_me, message_type, "
            "content, message_id, has_media, media, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                row_id(event), str(event.originator_id),
                remote_jid, int(from_me), kind, content, message_id, int(media is not None),
                json.dumps(public_media) if public_media is not None else None, status,
                iso(event.timestamp),
            ],
        )

