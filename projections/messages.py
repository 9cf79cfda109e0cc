"""Chat message history: both directions, with the status kept current by receipts."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain.instance import Instance
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
    """One row per message an instance sent or received."""

    name = "messages"

    tables = (
        Table(
            "messages",
            {
                "id": str,
                "instance_id": str,
                "remote_jid": str,
                "from_me": int,
                "message_type": str,
                "content": str,
                "message_id": str,
                "has_media": int,
                "media": str,
                "status": str,
                "created_at": str,
                "data": str,  # JSON: the structured content of a received message, by kind
                "error": str,  # JSON: {code, title, details} of a failed message
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
        self._insert(
            rows,
            event,
            event.to,
            True,
            event.message_type,
            event.body,
            event.message_id,
            event.media,
            "sent",
        )

    @apply.register
    def _(self, event: Instance.MessageReceived, rows: Rows) -> None:
        self._insert(
            rows,
            event,
            event.sender,
            False,
            event.message_type,
            event.body,
            event.message_id,
            event.media,
            "received",
            event.data,
        )

    @apply.register
    def _(self, event: Instance.MessageStatusChanged, rows: Rows) -> None:
        rows.advance(
            "messages",
            {"instance_id": ident(event.originator_id), "message_id": event.message_id},
            "status",
            event.status,
            STATUS_RANK,
            {"error": json.dumps(event.error)} if event.error is not None else None,
        )

    @staticmethod
    def _insert(
        rows: Rows,
        event: Any,
        remote_jid: str,
        from_me: bool,
        kind: str,
        content: str,
        message_id: str,
        media: dict[str, Any] | None,
        status: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        public_media = (
            {k: v for k, v in media.items() if k != "path"} if media is not None else None
        )
        rows.insert(
            "messages",
            {
                "id": row_id(event),
                "instance_id": ident(event.originator_id),
                "remote_jid": remote_jid,
                "from_me": int(from_me),
                "message_type": kind,
                "content": content,
                "message_id": message_id,
                "has_media": int(media is not None),
                "media": json.dumps(public_media) if public_media is not None else None,
                "status": status,
                "created_at": iso_ms(event.timestamp),
                "data": json.dumps(data) if data is not None else None,
                "error": None,
            },
        )
