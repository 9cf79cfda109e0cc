"""Usage statistics: per instance, per user and per UTC day."""

from __future__ import annotations

import functools
from functools import singledispatchmethod
from typing import Any

import sqlite_utils

from domain.instance import Instance
from domain.usage import UsageLedger
from domain.webhook import WebhookLog
from projections.base import ReadModelProjection

COUNTERS = (
    "messages_sent", "messages_received", "media_sent", "media_received",
    "total_media_size", "api_calls", "webhook_sent", "webhook_failed",
)
NO_INSTANCE = ""


class Usage(ReadModelProjection):
    """Counters by (user, instance, day); runs after Directory, whose instances it reads."""

    name = "usage"

    def create_tables(self, db: sqlite_utils.Database) -> None:
        db["usage"].create(
            {"user_id": str, "instance_id": str, "day": str, **dict.fromkeys(COUNTERS, int)},
            pk=("user_id", "instance_id", "day"), not_null=set(COUNTERS), defaults=dict.fromkeys(COUNTERS, 0),
            if_not_exists=True,
        )
        db["usage"].create_index(["instance_id", "day"], if_not_exists=True)
        db["usage"].create_index(["day"], if_not_exists=True)

    @singledispatchmethod
    def apply(self, event: Any, db: sqlite_utils.Database) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: Instance.MessageSent, db: sqlite_utils.Database) -> None:
        self._message(db, event, "sent", event.media)

    @apply.register
    def _(self, event: Instance.MessageReceived, db: sqlite_utils.Database) -> None:
        self._message(db, event, "received", event.media)

    @apply.register
    def _(self, event: UsageLedger.UsageRecorded, db: sqlite_utils.Database) -> None:
        for call in event.calls:
            bump(db, call["userId"], call.get("instanceId") or NO_INSTANCE, call["day"],
                 api_calls=call["apiCalls"])

    @apply.register
    def _(self, event: WebhookLog.WebhookDelivered, db: sqlite_utils.Database) -> None:
        bump(db, self._owner(db, event.instance_id), event.instance_id,
             event.timestamp.date().isoformat(), webhook_sent=1)

    @apply.register
    def _(self, event: WebhookLog.WebhookFailed, db: sqlite_utils.Database) -> None:
        bump(db, self._owner(db, event.instance_id), event.instance_id,
             event.timestamp.date().isoformat(), webhook_failed=1)

    def _message(
        self, db: sqlite_utils.Database, event: Any, direction: str, media: dict[str, Any] | None
    ) -> None:
        instance_id = str(event.originator_id)
        counts = {f"messages_{direction}": 1}
        if media is not None:
            counts[f"media_{direction}"] = 1
            counts["total_media_size"] = int(media.get("size") or 0)
        bump(db, self._owner(db, instance_id), instance_id, event.timestamp.date().isoformat(), **counts)

    def _owner(self, db: sqlite_utils.Database, instance_id: str) -> str:
        # An instance's owner never changes: look it up once (rebuilds read many messages).
        owners: dict[str, str] = self.__dict__.setdefault("_owners", {})
        found = owners.get(instance_id)
        if not found:
            found = owner(db, instance_id)
            if found:
                owners[instance_id] = found
        return found


def owner(db: sqlite_utils.Database, instance_id: str) -> str:
    row = db.execute("SELECT user_id FROM instances WHERE id=?", [instance_id]).fetchone()
    return row[0] if row else ""


def bump(db: sqlite_utils.Database, user_id: str, instance_id: str, day: str, **counts: int) -> None:
    """Add `counts` to one day's row, creating it when needed."""
    db.execute(_bump_sql(tuple(counts)), [user_id, instance_id, day, *counts.values()])


@functools.cache
def _bump_sql(columns: tuple[str, ...]) -> str:
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in columns)
    return (
        f"INSERT INTO usage (user_id, instance_id, day, {', '.join(columns)}) "
        f"VALUES (?, ?, ?, {', '.join('?' * len(columns))}) "
        f"ON CONFLICT (user_id, instance_id, day) DO UPDATE SET {updates}"
    )
