"""Usage statistics: per instance, per user and per UTC day."""

from __future__ import annotations

import functools
from functools import singledispatchmethod
from typing import Any

from domain.instance import Instance
from domain.usage import UsageLedger
from domain.webhook import WebhookLog
from projections.base import ReadModelProjection, ident
from projections.rows import Rows, Table

COUNTERS = (
    "messages_sent",
    "messages_received",
    "media_sent",
    "media_received",
    "total_media_size",
    "api_calls",
    "webhook_sent",
    "webhook_failed",
)
NO_INSTANCE = ""


class Usage(ReadModelProjection):
    """Counters by (user, instance, day); runs after Directory, whose instances it reads."""

    name = "usage"

    tables = (
        Table(
            "usage",
            {"user_id": str, "instance_id": str, "day": str, **dict.fromkeys(COUNTERS, int)},
            pk=("user_id", "instance_id", "day"),
            counters=frozenset(COUNTERS),
            indexes=[(("instance_id", "day"), False), (("day",), False)],
        ),
    )

    @singledispatchmethod
    def apply(self, event: Any, rows: Rows) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: Instance.MessageSent, rows: Rows) -> None:
        # What the account sent from its phone is history, not use of this service.
        if event.origin == "api":
            self._message(rows, event, "sent", event.media)

    @apply.register
    def _(self, event: Instance.MessageReceived, rows: Rows) -> None:
        self._message(rows, event, "received", event.media)

    @apply.register
    def _(self, event: UsageLedger.UsageRecorded, rows: Rows) -> None:
        for call in event.calls:
            bump(
                rows,
                call["userId"],
                call.get("instanceId") or NO_INSTANCE,
                call["day"],
                api_calls=call["apiCalls"],
            )

    @apply.register
    def _(self, event: WebhookLog.WebhookDelivered, rows: Rows) -> None:
        bump(
            rows,
            self._owner(rows, event.instance_id),
            event.instance_id,
            event.timestamp.date().isoformat(),
            webhook_sent=1,
        )

    @apply.register
    def _(self, event: WebhookLog.WebhookFailed, rows: Rows) -> None:
        bump(
            rows,
            self._owner(rows, event.instance_id),
            event.instance_id,
            event.timestamp.date().isoformat(),
            webhook_failed=1,
        )

    def _message(
        self, rows: Rows, event: Any, direction: str, media: dict[str, Any] | None
    ) -> None:
        instance_id = ident(event.originator_id)
        counts = {f"messages_{direction}": 1}
        if media is not None:
            counts[f"media_{direction}"] = 1
            counts["total_media_size"] = int(media.get("size") or 0)
        owner = self._owners.get(instance_id) or self._owner(rows, instance_id)
        rows.add(
            "usage",
            {
                "user_id": owner,
                "instance_id": instance_id,
                "day": event.timestamp.date().isoformat(),
            },
            counts,
        )

    @functools.cached_property
    def _owners(self) -> dict[str, str]:
        """Each instance's owner, which never changes: looked up once (rebuilds read many
        messages)."""
        return {}

    def _owner(self, rows: Rows, instance_id: str) -> str:
        found = self._owners.get(instance_id)
        if not found:
            row = rows.get("instances", instance_id)
            found = row["user_id"] if row else ""
            if found:
                self._owners[instance_id] = found
        return found


def bump(rows: Rows, user_id: str, instance_id: str, day: str, **counts: int) -> None:
    """Add `counts` to one day's row, creating it when needed."""
    rows.add("usage", {"user_id": user_id, "instance_id": instance_id, "day": day}, counts)
