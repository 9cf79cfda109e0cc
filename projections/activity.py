"""The activity log: one entry per lifecycle event of an instance."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain import events
from domain.instance import Instance
from domain.timestamps import iso_epoch, iso_ms
from domain.user import User
from domain.webhook import WebhookLog
from projections.base import ReadModelProjection, ident, row_id
from projections.rows import Rows, Table


class Activity(ReadModelProjection):
    """What happened to each instance, for people: connections, QR codes, settings."""

    name = "activity"

    tables = (
        Table(
            "activity",
            {"id": str, "instance_id": str, "action": str, "details": str, "created_at": str},
            pk=("id",),
            indexes=[(("instance_id", "created_at"), False)],
        ),
    )

    @singledispatchmethod
    def apply(self, event: Any, rows: Rows) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: Instance.Created, rows: Rows) -> None:
        self._log(rows, event, {"name": event.name, "engine": event.engine})

    @apply.register
    def _(self, event: Instance.Updated, rows: Rows) -> None:
        changed = sorted(
            [k for k in event.changes if k not in ("webhook", "engine_settings")]
            + [f"webhook.{k}" for k in event.changes.get("webhook", {})]
            + [f"settings.{k}" for k in event.changes.get("engine_settings", {})]
        )
        self._log(rows, event, {"changed": changed})

    @apply.register
    def _(self, event: Instance.Deleted, rows: Rows) -> None:
        self._log(rows, event, {})

    @apply.register
    def _(self, event: Instance.ConnectionRequested, rows: Rows) -> None:
        action = "reconnect_requested" if event.reason == "reconnect" else None
        self._log(rows, event, {"reason": event.reason}, action=action)

    @apply.register
    def _(self, event: Instance.QrReceived, rows: Rows) -> None:
        self._log(rows, event, {})

    @apply.register
    def _(self, event: Instance.QrExpired, rows: Rows) -> None:
        self._log(rows, event, {})

    @apply.register
    def _(self, event: Instance.ConnectionClosed, rows: Rows) -> None:
        details: dict[str, Any] = {"reason": event.reason, "willReconnect": event.will_reconnect}
        if event.retry_at is not None:
            details["retryAt"] = iso_epoch(event.retry_at)
        self._log(rows, event, details)

    @apply.register
    def _(self, event: Instance.TemporarilyBanned, rows: Rows) -> None:
        self._log(rows, event, {"reason": event.reason, "expiresAt": event.expires_at})

    @apply.register
    def _(self, event: Instance.LoggedOut, rows: Rows) -> None:
        details: dict[str, Any] = {"reason": event.reason}
        if event.unlinked is not None:
            details["unlinked"] = event.unlinked
        self._log(rows, event, details)

    @apply.register
    def _(self, event: Instance.ClientOutdated, rows: Rows) -> None:
        self._log(rows, event, {"clientVersion": event.client_version})

    @apply.register
    def _(self, event: Instance.SendOutcomeUnknown, rows: Rows) -> None:
        self._log(rows, event, {"idempotencyKey": event.idempotency_key, "reason": event.reason})

    @apply.register
    def _(self, event: Instance.Disabled, rows: Rows) -> None:
        self._log(rows, event, {"reason": event.reason})

    @apply.register
    def _(self, event: Instance.Enabled, rows: Rows) -> None:
        self._log(rows, event, {})

    @apply.register
    def _(self, event: Instance.ConnectionOpened, rows: Rows) -> None:
        details: dict[str, Any] = {"phone": event.phone}
        if event.details:
            details["account"] = event.details
        self._log(rows, event, details)

    @apply.register
    def _(self, event: Instance.NoticeReceived, rows: Rows) -> None:
        # The Cloud API's account updates (bans, restrictions) and webhook-level errors.
        action = "account_update" if event.kind == "account_update" else None
        self._log(rows, event, event.details, action=action)

    # -- groups: what changed about the groups this instance is in ------------------------

    @apply.register
    def _(self, event: Instance.GroupCreated, rows: Rows) -> None:
        group = event.group
        self._log(rows, event, {"groupId": group["id"], "subject": group["subject"]})

    @apply.register
    def _(self, event: Instance.GroupJoined, rows: Rows) -> None:
        details = {"groupId": event.group["id"], "reason": event.reason, "by": event.by}
        self._log(rows, event, details)

    @apply.register
    def _(self, event: Instance.GroupLeft, rows: Rows) -> None:
        details = {"groupId": event.group_id, "reason": event.reason, "by": event.by}
        self._log(rows, event, details)

    @apply.register
    def _(self, event: Instance.GroupParticipantsChanged, rows: Rows) -> None:
        details = {
            "groupId": event.group_id,
            "action": event.action,
            "participants": [p["id"] for p in event.participants],
            "by": event.by,
        }
        self._log(rows, event, details)

    @apply.register
    def _(self, event: Instance.GroupSettingsChanged, rows: Rows) -> None:
        details = {"groupId": event.group_id, "changed": sorted(event.changes), "by": event.by}
        self._log(rows, event, details)

    @apply.register
    def _(self, event: User.QuotaExceeded, rows: Rows) -> None:
        if event.instance_id:
            self._log(
                rows,
                event,
                {"quota": event.quota, "limit": event.limit},
                instance_id=event.instance_id,
            )

    @apply.register
    def _(self, event: WebhookLog.WebhookFailed, rows: Rows) -> None:
        self._log(
            rows,
            event,
            {
                "event": event.event_type,
                "position": event.position,
                "attempts": event.attempts,
                "error": event.error,
                "deliveryId": event.delivery_id,
                "replay": event.replay,
            },
            instance_id=event.instance_id,
        )

    @staticmethod
    def _log(
        rows: Rows,
        event: Any,
        details: dict[str, Any],
        instance_id: str | None = None,
        action: str | None = None,
    ) -> None:
        """One line of the activity log, as `domain.events` names the event's action."""
        rows.insert(
            "activity",
            {
                "id": row_id(event),
                "instance_id": instance_id or ident(event.originator_id),
                "action": action or events.BY_CLASS[type(event)].activity,
                "details": json.dumps(details),
                "created_at": iso_ms(event.timestamp),
            },
        )
