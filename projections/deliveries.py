"""Webhook deliveries: what was sent where, how many attempts, and what failed."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from domain.timestamps import iso_ms
from domain.webhook import WebhookLog
from projections.base import ReadModelProjection, row_id
from projections.rows import Rows, Table


class Deliveries(ReadModelProjection):
    """One row per delivery outcome (replays included, marked as such)."""

    name = "deliveries"

    tables = (
        Table(
            "deliveries",
            {
                "id": str,
                "instance_id": str,
                "position": int,
                "event": str,
                "delivery_id": str,
                "status": str,
                "attempts": int,
                "status_code": int,
                "error": str,
                "replay": int,
                "created_at": str,
            },
            pk=("id",),
            indexes=[(("instance_id", "status", "created_at"), False)],
        ),
    )

    @singledispatchmethod
    def apply(self, event: Any, rows: Rows) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: WebhookLog.WebhookDelivered, rows: Rows) -> None:
        self._row(rows, event, "delivered", event.status_code, "")

    @apply.register
    def _(self, event: WebhookLog.WebhookFailed, rows: Rows) -> None:
        self._row(rows, event, "failed", event.status_code, event.error)

    @staticmethod
    def _row(rows: Rows, event: Any, status: str, code: int | None, error: str) -> None:
        rows.insert(
            "deliveries",
            {
                "id": row_id(event),
                "instance_id": event.instance_id,
                "position": event.position,
                "event": event.event_type,
                "delivery_id": event.delivery_id,
                "status": status,
                "attempts": event.attempts,
                "status_code": code,
                "error": error,
                "replay": int(event.replay),
                "created_at": iso_ms(event.timestamp),
            },
        )
