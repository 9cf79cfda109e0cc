"""Users, instances and contacts: the lists the API shows and authenticates against."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

from domain.instance import Instance
from domain.phone import is_group, jid_number
from domain.timestamps import iso_ms
from domain.urls import redact_url
from domain.user import User
from projections.base import ReadModelProjection, ident
from projections.rows import Rows, Table


class Directory(ReadModelProjection):
    """Who exists, who owns what, and whom each instance has talked to."""

    name = "directory"

    tables = (
        Table(
            "users",
            {
                "id": str,
                "email": str,
                "first_name": str,
                "last_name": str,
                "role": str,
                "active": int,
                "api_key_hash": str,
                "limits": str,
                "token_generation": int,
                "created_at": str,
                "updated_at": str,
            },
            pk=("id",),
            indexes=[(("email",), True), (("api_key_hash",), False)],
        ),
        Table(
            "instances",
            {
                "id": str,
                "user_id": str,
                "name": str,
                "description": str,
                "engine": str,
                "status": str,
                "has_qr": int,
                "last_error": str,
                "retry_at": float,
                "phone": str,
                "webhook": str,
                "engine_settings": str,
                "created_at": str,
                "updated_at": str,
                "deleted": int,
                "connection": str,  # JSON: what the engine said of the account on connecting
            },
            pk=("id",),
            indexes=[(("user_id",), False)],
        ),
        Table(
            "contacts",
            {"instance_id": str, "jid": str, "name": str, "number": str, "is_group": int},
            pk=("instance_id", "jid"),
        ),
    )

    # -- users --------------------------------------------------------------------

    @singledispatchmethod
    def apply(self, event: Any, rows: Rows) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: User.Registered, rows: Rows) -> None:
        at = iso_ms(event.timestamp)
        rows.insert(
            "users",
            {
                "id": ident(event.originator_id),
                "email": event.email,
                "first_name": event.first_name,
                "last_name": event.last_name,
                "role": event.role,
                "active": 1,
                "api_key_hash": event.api_key_hash,
                "limits": "{}",
                "token_generation": 0,
                "created_at": at,
                "updated_at": at,
            },
        )

    @apply.register
    def _(self, event: User.ApiKeyRotated, rows: Rows) -> None:
        self._update_user(rows, event, api_key_hash=event.api_key_hash)

    @apply.register
    def _(self, event: User.ProfileUpdated, rows: Rows) -> None:
        self._update_user(rows, event, first_name=event.first_name, last_name=event.last_name)

    @apply.register
    def _(self, event: User.RoleChanged, rows: Rows) -> None:
        self._update_user(rows, event, role=event.role)

    @apply.register
    def _(self, event: User.LimitsChanged, rows: Rows) -> None:
        row = rows.get("users", ident(event.originator_id))
        if row is not None:
            limits = {**json.loads(row["limits"]), **event.limits}
            self._update_user(rows, event, limits=json.dumps(limits))

    @apply.register
    def _(self, event: User.Deactivated, rows: Rows) -> None:
        self._update_user(rows, event, active=0)

    @apply.register
    def _(self, event: User.Reactivated, rows: Rows) -> None:
        self._update_user(rows, event, active=1)

    @apply.register
    def _(self, event: User.PasswordChanged, rows: Rows) -> None:
        row = rows.get("users", ident(event.originator_id))
        if row is not None:  # tokens issued before this change are refused from now on
            self._update_user(rows, event, token_generation=(row["token_generation"] or 0) + 1)

    @staticmethod
    def _update_user(rows: Rows, event: Any, **values: Any) -> None:
        rows.update(
            "users", ident(event.originator_id), {**values, "updated_at": iso_ms(event.timestamp)}
        )

    # -- instances ----------------------------------------------------------------

    @apply.register
    def _(self, event: Instance.Created, rows: Rows) -> None:
        at = iso_ms(event.timestamp)
        rows.insert(
            "instances",
            {
                "id": ident(event.originator_id),
                "user_id": event.user_id,
                "name": event.name,
                "description": event.description,
                "engine": event.engine,
                "status": "connecting",
                "has_qr": 0,
                "last_error": None,
                "retry_at": None,
                "phone": None,
                "webhook": json.dumps(_public_webhook(event.webhook)),
                "engine_settings": json.dumps(_public_settings(event.engine_settings)),
                "created_at": at,
                "updated_at": at,
                "deleted": 0,
                "connection": None,
            },
        )

    @apply.register
    def _(self, event: Instance.Updated, rows: Rows) -> None:
        row = rows.get("instances", ident(event.originator_id))
        if row is None:
            return
        values: dict[str, Any] = {
            k: event.changes[k] for k in ("name", "description") if k in event.changes
        }
        if "webhook" in event.changes:
            webhook = {**json.loads(row["webhook"]), **_public_webhook(event.changes["webhook"])}
            values["webhook"] = json.dumps(webhook)
        if "engine_settings" in event.changes:
            settings = {
                **json.loads(row["engine_settings"]),
                **_public_settings(event.changes["engine_settings"]),
            }
            values["engine_settings"] = json.dumps(settings)
        self._update_instance(rows, event, **values)

    @apply.register
    def _(self, event: Instance.Deleted, rows: Rows) -> None:
        self._update_instance(rows, event, deleted=1, status="deleted", has_qr=0)

    @apply.register
    def _(self, event: Instance.ConnectionRequested, rows: Rows) -> None:
        self._update_instance(rows, event, status="connecting", retry_at=None)

    @apply.register
    def _(self, event: Instance.QrReceived, rows: Rows) -> None:
        self._update_instance(rows, event, status="qr", has_qr=1, retry_at=None)

    @apply.register
    def _(self, event: Instance.QrExpired, rows: Rows) -> None:
        row = rows.get("instances", ident(event.originator_id))
        if row is not None and row["status"] == "qr":
            self._update_instance(
                rows, event, status="disconnected", has_qr=0, last_error="qr_expired"
            )
        else:
            self._update_instance(rows, event, has_qr=0)

    @apply.register
    def _(self, event: Instance.ConnectionOpened, rows: Rows) -> None:
        self._update_instance(
            rows,
            event,
            status="connected",
            has_qr=0,
            phone=event.phone,
            last_error=None,
            retry_at=None,
            connection=json.dumps(event.details) if event.details else None,
        )

    @apply.register
    def _(self, event: Instance.ConnectionClosed, rows: Rows) -> None:
        self._update_instance(
            rows,
            event,
            status="reconnecting" if event.will_reconnect else "disconnected",
            has_qr=0,
            last_error=event.reason,
            retry_at=event.retry_at if event.will_reconnect else None,
        )

    @apply.register
    def _(self, event: Instance.TemporarilyBanned, rows: Rows) -> None:
        self._update_instance(
            rows,
            event,
            status="banned",
            has_qr=0,
            last_error=f"banned: {event.reason}",
            retry_at=float(event.expires_at),
        )

    @apply.register
    def _(self, event: Instance.ClientOutdated, rows: Rows) -> None:
        self._update_instance(
            rows,
            event,
            status="outdated",
            has_qr=0,
            last_error=f"client_outdated: WhatsApp refuses {event.client_version}",
            retry_at=None,
        )

    @apply.register
    def _(self, event: Instance.LoggedOut, rows: Rows) -> None:
        self._update_instance(
            rows,
            event,
            status="logged_out",
            has_qr=0,
            phone=None,
            last_error=event.reason,
            retry_at=None,
        )

    @apply.register
    def _(self, event: Instance.Disabled, rows: Rows) -> None:
        self._update_instance(rows, event, status="disabled", has_qr=0)

    @apply.register
    def _(self, event: Instance.Enabled, rows: Rows) -> None:
        self._update_instance(rows, event, status=event.status)

    @staticmethod
    def _update_instance(rows: Rows, event: Any, **values: Any) -> None:
        values["updated_at"] = iso_ms(event.timestamp)
        rows.update("instances", ident(event.originator_id), values)

    # -- contacts -----------------------------------------------------------------

    @apply.register
    def _(self, event: Instance.MessageReceived, rows: Rows) -> None:
        # The sender wrote it (a group's participant, in a group): the push name is theirs.
        self._contact(rows, ident(event.originator_id), event.sender, event.push_name)

    @apply.register
    def _(self, event: Instance.MessageSent, rows: Rows) -> None:
        self._contact(rows, ident(event.originator_id), event.to, None)

    @apply.register
    def _(self, event: Instance.ContactsSynced, rows: Rows) -> None:
        for contact in event.contacts:
            self._contact(rows, ident(event.originator_id), contact["jid"], contact.get("name"))

    @staticmethod
    def _contact(rows: Rows, instance_id: str, jid: str, name: str | None) -> None:
        # A name, once known, is kept until a newer one arrives.
        rows.merge(
            "contacts",
            {
                "instance_id": instance_id,
                "jid": jid,
                "name": name,
                "number": jid_number(jid),
                "is_group": int(is_group(jid)),
            },
            keep=("name",),
        )


SECRET_SETTINGS = frozenset({"accessToken", "appSecret", "verifyToken"})


def _public_webhook(webhook: dict[str, Any]) -> dict[str, Any]:
    """Webhook settings without the secret (read models only say whether there is one) and
    with the URL's credentials hidden."""
    public = {k: v for k, v in webhook.items() if k != "secret"}
    if "secret" in webhook:
        public["hasSecret"] = bool(webhook["secret"])
    if "url" in public:
        public["url"] = redact_url(public["url"])
    return public


def _public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Engine settings without secrets, a proxy's credentials hidden."""
    public = {k: v for k, v in settings.items() if k not in SECRET_SETTINGS}
    if "proxy" in public:
        public["proxy"] = redact_url(public["proxy"])
    return public
