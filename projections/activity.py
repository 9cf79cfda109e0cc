"""The activity log: one entry per lifecycle event of an instance."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

import sqlite_utils

from domain.instance import Instance
from domain.user import User
from domain.webhook import WebhookLog
from projections.base import ReadModelProjection, iso, row_id


class Activity(ReadModelProjection):
    """What happened to each instance, for people: connections, QR codes, settings."""

    name = "activity"

    def create_tables(self, db: sqlite_utils.Database) -> None:
        db["activity"].create(
            {"id": str, "instance_id": str, "action": str, "details": str, "created_at": str},
            pk="id", if_not_exists=True,
        )
        db["activity"].create_index(["instance_id", "created_at"], if_not_exists=True)

    @singledispatchmethod
    def apply(self, event: Any, db: sqlite_utils.Database) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: Instance.Created, db: sqlite_utils.Database) -> None:
        self._log(db, event, "instance_created", {"name": event.name, "engine": event.engine})

    @apply.register
    def _(self, event: Instance.Updated, db: sqlite_utils.Database) -> None:
        changed = sorted(
            [k for k in event.changes if k not in ("webhook", "engine_settings")]
            + [f"webhook.{k}" for k in event.changes.get("webhook", {})]
            + [f"settings.{k}" for k in event.changes.get("engine_settings", {})]
        )
        self._log(db, event, "instance_updated", {"changed": changed})

    @apply.register
    def _(self, event: Instance.Deleted, db: sqlite_utils.Database) -> None:
        self._log(db, event, "instance_deleted", {})

    @apply.register
    def _(self, event: Instance.ConnectionRequested, db: sqlite_utils.Database) -> None:
        action = "reconnect_requested" if event.reason == "reconnect" else "connection_requested"
        self._log(db, event, action, {"reason": event.reason})

    @apply.register
    def _(self, event: Instance.QrReceived, db: sqlite_utils.Database) -> None:
        self._log(db, event, "qr_received", {})

    @apply.register
    def _(self, event: Instance.QrExpired, db: sqlite_utils.Database) -> None:
        self._log(db, event, "qr_expired", {})

    @apply.register
    def _(self, event: Instance.ConnectionOpened, db: sqlite_utils.Database) -> None:
        self._log(db, event, "connection_opened", {"phone": event.phone})

    @apply.register
    def _(self, event: Instance.ConnectionClosed, db: sqlite_utils.Database) -> None:
        self._log(db, event, "connection_closed",
                  {"reason": event.reason, "willReconnect": event.will_reconnect})

    @apply.register
    def _(self, event: Instance.TemporarilyBanned, db: sqlite_utils.Database) -> None:
        self._log(db, event, "temporary_ban", {"reason": event.reason, "expiresAt": event.expires_at})

    @apply.register
    def _(self, event: Instance.LoggedOut, db: sqlite_utils.Database) -> None:
        self._log(db, event, "logged_out", {"reason": event.reason})

    @apply.register
    def _(self, event: User.QuotaExceeded, db: sqlite_utils.Database) -> None:
        if event.instance_id:
            self._log(db, event, "quota_exceeded", {"quota": event.quota, "limit": event.limit},
                      instance_id=event.instance_id)

    @apply.register
    def _(self, event: WebhookLog.WebhookFailed, db: sqlite_utils.Database) -> None:
        self._log(db, event, "webhook_failed", {
            "event": event.event_type, "position": event.position, "attempts": event.attempts,
            "error": event.error, "deliveryId": event.delivery_id, "replay": event.replay,
        }, instance_id=event.instance_id)

    @staticmethod
    def _log(
        db: sqlite_utils.Database, event: Any, action: str, details: dict[str, Any],
        instance_id: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO activity (id, instance_id, action, details, created_at) VALUES (?, ?, ?, ?, ?)",
            [row_id(event), instance_id or str(event.originator_id), action, json.dumps(details),
             iso(event.timestamp)],
        )
