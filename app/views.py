"""How stored things are shown in API answers (camelCase, seed shapes, no secrets)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from app.answers import (
    ConnectionStatus,
    InstanceView,
    LogoutAnswer,
    UserLimits,
    UserView,
    WebhookSettingsView,
)
from domain.timestamps import iso_epoch

_limits = msgspec.json.Decoder(UserLimits)


def webhook_settings(webhook: dict[str, Any]) -> WebhookSettingsView:
    return WebhookSettingsView(
        notifyReceived=webhook.get("notifyReceived", True),
        notifySent=webhook.get("notifySent", True),
        notifyDelivery=webhook.get("notifyDelivery", False),
        notifyRead=webhook.get("notifyRead", False),
        notifyMessageUpdates=webhook.get("notifyMessageUpdates", False),
        notifyGroups=webhook.get("notifyGroups", False),
        notifyPresence=webhook.get("notifyPresence", False),
        maxRetries=webhook.get("maxRetries"),
        retryInterval=webhook.get("retryInterval"),
        hasSecret=bool(webhook.get("hasSecret")),
    )


def connection_status(row: dict[str, Any]) -> ConnectionStatus:
    return status_view(
        row["status"], bool(row["has_qr"]), row.get("last_error"), row.get("retry_at")
    )


def status_view(
    status: str, has_qr: bool, last_error: str | None, retry_at: float | None
) -> ConnectionStatus:
    """`{ready, status, hasQr}`, plus `lastError` and `retryAt` when not connected."""
    view = ConnectionStatus(ready=status == "connected", status=status, hasQr=has_qr)
    if status != "connected":
        view.lastError = last_error
        view.retryAt = iso_epoch(retry_at) if retry_at is not None else None
    return view


def instance(
    row: dict[str, Any], *, detailed: bool = True, node: str | UnsetType | None = UNSET
) -> InstanceView:
    """An instance. On several nodes `node` is the node that runs it (None while it moves);
    on one node (UNSET) there is no `node` field."""
    webhook = row["webhook"]
    view = InstanceView(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        userId=row["user_id"],
        engine=row["engine"],
        status=row["status"],
        phone=row["phone"],
        webhookUrl=webhook.get("url"),
        webhookEnabled=bool(webhook.get("enabled")),
        createdAt=row["created_at"],
        updatedAt=row["updated_at"],
        connectionStatus=connection_status(row),
        node=node,
    )
    if detailed:
        view.webhookSettings = webhook_settings(webhook)
        if row.get("engine_settings"):
            view.engineSettings = row["engine_settings"]
        if row.get("connection"):
            view.connectionDetails = json.loads(row["connection"])
    return view


def user(row: dict[str, Any]) -> UserView:
    return UserView(
        id=row["id"],
        email=row["email"],
        firstName=row["first_name"],
        lastName=row["last_name"],
        role=row["role"],
        active=bool(row["active"]),
        limits=_limits.decode(row.get("limits") or "{}"),
        createdAt=row["created_at"],
        updatedAt=row["updated_at"],
    )


def logged_out(message: str | None, unlinked: bool | None) -> LogoutAnswer:
    """A logout's answer; when WhatsApp could not be told, say so and what to do."""
    return LogoutAnswer(
        success=True,
        message=UNSET if message is None else message,
        unlinked=UNSET if unlinked is None else unlinked,
        warning=(
            "WhatsApp could not be reached to unlink this device; remove it from the "
            "phone (WhatsApp > Linked devices)"
            if unlinked is False
            else UNSET
        ),
    )
