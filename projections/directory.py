"""Users, instances and contacts: the lists the API shows and authenticates against."""

from __future__ import annotations

import json
from functools import singledispatchmethod
from typing import Any

import sqlite_utils

from domain.instance import Instance
from domain.phone import is_group, jid_number
from domain.user import User
from projections.base import ReadModelProjection, iso


class Directory(ReadModelProjection):
    """Who exists, who owns what, and whom each instance has talked to."""

    name = "directory"

    def create_tables(self, db: sqlite_utils.Database) -> None:
        db["users"].create(
            {
                "id": str, "email": str, "first_name": str, "last_name": str, "role": str,
                "active": int, "api_key_hash": str, "limits": str, "created_at": str,
                "updated_at": str,
            },
            pk="id", if_not_exists=True,
        )
        db["users"].create_index(["email"], unique=True, if_not_exists=True)
        db["users"].create_index(["api_key_hash"], if_not_exists=True)
        db["instances"].create(
            {
                "id": str, "user_id": str, "name": str, "description": str, "engine": str,
                "status": str, "has_qr": int, "phone": str, "webhook": str,
                "engine_settings": str, "created_at": str, "updated_at": str, "deleted": int,
            },
            pk="id", if_not_exists=True,
        )
        db["instances"].create_index(["user_id"], if_not_exists=True)
        db["contacts"].create(
            {"instance_id": str, "jid": str, "name": str, "number": str, "is_group": int},
            pk=("instance_id", "jid"), if_not_exists=True,
        )

    # -- users --------------------------------------------------------------------

    @singledispatchmethod
    def apply(self, event: Any, db: sqlite_utils.Database) -> None:
        """Events this projection does not model change nothing."""

    @apply.register
    def _(self, event: User.Registered, db: sqlite_utils.Database) -> None:
        at = iso(event.timestamp)
        db["users"].insert(
            {
                "id": str(event.originator_id), "email": event.email,
                "first_name": event.first_name, "last_name": event.last_name,
                "role": event.role, "active": 1, "api_key_hash": event.api_key_hash,
                "limits": "{}", "created_at": at, "updated_at": at,
            }
        )

    @apply.register
    def _(self, event: User.ApiKeyRotated, db: sqlite_utils.Database) -> None:
        self._update_user(db, event, api_key_hash=event.api_key_hash)

    @apply.register
    def _(self, event: User.ProfileUpdated, db: sqlite_utils.Database) -> None:
        self._update_user(db, event, first_name=event.first_name, last_name=event.last_name)

    @apply.register
    def _(self, event: User.RoleChanged, db: sqlite_utils.Database) -> None:
        self._update_user(db, event, role=event.role)

    @apply.register
    def _(self, event: User.LimitsChanged, db: sqlite_utils.Database) -> None:
        row = db["users"].get(str(event.originator_id))
        self._update_user(db, event, limits=json.dumps({**json.loads(row["limits"]), **event.limits}))

    @apply.register
    def _(self, event: User.Deactivated, db: sqlite_utils.Database) -> None:
        self._update_user(db, event, active=0)

    @apply.register
    def _(self, event: User.PasswordChanged, db: sqlite_utils.Database) -> None:
        self._update_user(db, event)

    @staticmethod
    def _update_user(db: sqlite_utils.Database, event: Any, **values: Any) -> None:
        db["users"].update(str(event.originator_id), {**values, "updated_at": iso(event.timestamp)})

    # -- instances ----------------------------------------------------------------

    @apply.register
    def _(self, event: Instance.Created, db: sqlite_utils.Database) -> None:
        at = iso(event.timestamp)
        db["instances"].insert(
            {
                "id": str(event.originator_id), "user_id": event.user_id, "name": event.name,
                "description": event.description, "engine": event.engine,
                "status": "connecting", "has_qr": 0, "phone": None,
                "webhook": json.dumps(_public_webhook(event.webhook)), "engine_settings": json.dumps(
                    {k: v for k, v in event.engine_settings.items() if k not in SECRET_SETTINGS}
                ),
                "created_at": at, "updated_at": at, "deleted": 0,
            }
        )

    @apply.register
    def _(self, event: Instance.Updated, db: sqlite_utils.Database) -> None:
        row = db["instances"].get(str(event.originator_id))
        values: dict[str, Any] = {
            k: event.changes[k] for k in ("name", "description") if k in event.changes
        }
        if "webhook" in event.changes:
            webhook = {**json.loads(row["webhook"]), **_public_webhook(event.changes["webhook"])}
            values["webhook"] = json.dumps(webhook)
        if "engine_settings" in event.changes:
            settings = {**json.loads(row["engine_settings"]), **event.changes["engine_settings"]}
            values["engine_settings"] = json.dumps(
                {k: v for k, v in settings.items() if k not in SECRET_SETTINGS}
            )
        self._update_instance(db, event, **values)

    @apply.register
    def _(self, event: Instance.Deleted, db: sqlite_utils.Database) -> None:
        self._update_instance(db, event, deleted=1, status="deleted", has_qr=0)

    @apply.register
    def _(self, event: Instance.ConnectionRequested, db: sqlite_utils.Database) -> None:
        self._update_instance(db, event, status="connecting")

    @apply.register
    def _(self, event: Instance.QrReceived, db: sqlite_utils.Database) -> None:
        self._update_instance(db, event, status="connecting", has_qr=1)

    @apply.register
    def _(self, event: Instance.QrExpired, db: sqlite_utils.Database) -> None:
        self._update_instance(db, event, has_qr=0)

    @apply.register
    def _(self, event: Instance.ConnectionOpened, db: sqlite_utils.Database) -> None:
        self._update_instance(db, event, status="connected", has_qr=0, phone=event.phone)

    @apply.register
    def _(self, event: Instance.ConnectionClosed, db: sqlite_utils.Database) -> None:
        status = "connecting" if event.will_reconnect else "disconnected"
        self._update_instance(db, event, status=status, has_qr=0)

    @apply.register
    def _(self, event: Instance.TemporarilyBanned, db: sqlite_utils.Database) -> None:
        self._update_instance(db, event, status="banned", has_qr=0)

    @apply.register
    def _(self, event: Instance.LoggedOut, db: sqlite_utils.Database) -> None:
        self._update_instance(db, event, status="logged_out", has_qr=0, phone=None)

    @staticmethod
    def _update_instance(db: sqlite_utils.Database, event: Any, **values: Any) -> None:
        values["updated_at"] = iso(event.timestamp)
        columns = ", ".join(f"{column} = ?" for column in values)
        db.execute(f"UPDATE instances SET {columns} WHERE id = ?", [*values.values(), str(event.originator_id)])

    # -- contacts -----------------------------------------------------------------

    @apply.register
    def _(self, event: Instance.MessageReceived, db: sqlite_utils.Database) -> None:
        self._contact(db, str(event.originator_id), event.sender, event.push_name)

    @apply.register
    def _(self, event: Instance.MessageSent, db: sqlite_utils.Database) -> None:
        self._contact(db, str(event.originator_id), event.to, None)

    @apply.register
    def _(self, event: Instance.ContactsSynced, db: sqlite_utils.Database) -> None:
        for contact in event.contacts:
            self._contact(db, str(event.originator_id), contact["jid"], contact.get("name"))

    @staticmethod
    def _contact(db: sqlite_utils.Database, instance_id: str, jid: str, name: str | None) -> None:
        # A name, once known, is kept until a newer one arrives.
        db.execute(
            "INSERT INTO contacts (instance_id, jid, name, number, is_group) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id, jid) DO UPDATE SET "
            "name=COALESCE(excluded.name, contacts.name)",
            [instance_id, jid, name, jid_number(jid), int(is_group(jid))],
        )


SECRET_SETTINGS = frozenset({"accessToken", "appSecret", "verifyToken"})


def _public_webhook(webhook: dict[str, Any]) -> dict[str, Any]:
    """Webhook settings without the secret: read models only say whether there is one."""
    public = {k: v for k, v in webhook.items() if k != "secret"}
    if "secret" in webhook:
        public["hasSecret"] = bool(webhook["secret"])
    return public
