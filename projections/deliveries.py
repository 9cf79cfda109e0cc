"""Webhook deliveries: what was sent where, how many attempts, and what failed."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

import sqlite_utils

from domain.webhook import WebhookLog
from projections.base import ReadModelProjection, iso, row_id


class Deliveries(ReadModelProjection):
    """One row per delivery outcome (replays included, marked as such)."""

    name = "deliveries"

    def create_tables(self, db: sqlite_utils.Database) -> None:
        db["deliveries"].create(
            {
                "id": str, "instance_id": str, "position": int, "event": str,
                "delivery_id": str, "status": str, "attempts": int, "status_code": int,
                "error": str, "replay": int, "created_at": str,
            },
            pk="id", if_not_exists=True,
        )
        db["deliveries"].create_index(["instance_id", "status", "created_at"], if_not_exists=True)

    @singledispatchmethod
    def apply(self, event: Any, db: sqlite_utils.Database) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: WebhookLog.WebhookDelivered, db: sqlite_utils.Database) -> None:
        self._row(db, event, "delivered", event.status_code, "")

    @apply.register
    def _(self, event: WebhookLog.WebhookFailed, db: sqlite_utils.Database) -> None:
        self._row(db, event, "failed", event.status_code, event.error)

    @staticmethod
    def _row(
        db: sqlite_utils.Database, event: Any, status: str, code: int | None, error: str
    ) -> None:
        db.execute(
            "INSERT INTO deliveries (id, instance_id, position, event, delivery_id, status, "
            "attempts, status_code, error, replay, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row_id(event), event.instance_id, event.position, event.event_type, event.delivery_id,
             status, event.attempts, code, error, int(event.replay), iso(event.timestamp)],
        )
