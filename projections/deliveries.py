"""Webhook deliveries: what was sent where, how many attempts, and what failed."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from domain.timestamps import iso_ms
from domain.webhook import WebhookLog
from projections.base import ReadModelProjection, row_id
from projections.rows import Rows, Table


class Deliveries(ReadModelProjection):
    """One row per delivery outcome (replays included, marked as such), and one per
    delivery (an event sent to the webhook: every attempt and replay of it share its
    delivery id) saying how it ended last: `failed` there means not yet resolved."""

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
        Table(
            "webhook_outcomes",
            {
                "instance_id": str,
                "delivery_id": str,
                "position": int,
                "event": str,
                "status": str,  # of the latest outcome
                "attempts": int,  # over every outcome, replays included
                "failures": int,  # outcomes that were failures
                "recovered": int,  # 1: delivered after failing (by a replay or a retry)
                "replay": int,  # the latest outcome came from a replay
                "status_code": int,
                "error": str,
                "first_at": str,
                "created_at": str,  # when the latest outcome was recorded
            },
            pk=("instance_id", "delivery_id"),
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
        at = iso_ms(event.timestamp)
        key = {"instance_id": event.instance_id, "delivery_id": event.delivery_id}
        before = rows.get("webhook_outcomes", key)
        failures = (before["failures"] if before else 0) + (status == "failed")
        latest = {
            "position": event.position,
            "event": event.event_type,
            "status": status,
            "attempts": (before["attempts"] if before else 0) + event.attempts,
            "failures": failures,
            "recovered": int(status == "delivered" and failures > 0),
            "replay": int(event.replay),
            "status_code": code,
            "error": error,
            "created_at": at,
        }
        if before is None:
            rows.insert("webhook_outcomes", {**key, **latest, "first_at": at})
        else:
            rows.update("webhook_outcomes", key, latest)
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
                "created_at": at,
            },
        )
