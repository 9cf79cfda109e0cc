"""The same read-model rows written straight into SQLite tables and MongoDB collections.

Rows use the read-model columns and stored value types (0/1 flags, ISO times, JSON
text); documents follow the shared schema convention: the primary key as `_id`
(a subdocument for composite keys, with its fields also at the top level).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pymongo.database import Database

from projections import catalog
from projections.usage import COUNTERS
from storage.mongodb.read_models import create_indexes
from storage.sqlite.read_models import ReadModelStore

Rows = dict[str, list[dict[str, Any]]]

SPECS = {t.name: t for t in catalog.TABLES}
KEYS = {"contacts": ("instance_id", "jid"), "usage": ("user_id", "instance_id", "day")}


class Generation:
    """A collection accessor (`projections.queries.Collections`) over one database whose
    collections carry a rebuild's generation suffix."""

    def __init__(self, db: Database, suffix: str = "") -> None:
        self.db = db
        self.suffix = suffix

    def collection(self, name: str) -> Any:
        return self.db[name + self.suffix]


def into_sqlite(path: Path, rows: Rows) -> ReadModelStore:
    """A read-model file made from the projections' own table specs, holding `rows`."""
    store = ReadModelStore(path)
    store.ensure(catalog.TABLES)
    with store.transaction() as db:
        for table, table_rows in rows.items():
            if table_rows:
                db[table].insert_all(table_rows)
    return store


def into_mongo(db: Database, rows: Rows, suffix: str = "") -> None:
    """`rows` as documents in collections named `<table><suffix>`, with the mirrored indexes."""
    for table, table_rows in rows.items():
        collection = db[table + suffix]
        create_indexes(collection, SPECS[table])
        if table_rows:
            collection.insert_many([document(table, row) for row in table_rows])


def document(table: str, row: dict[str, Any]) -> dict[str, Any]:
    doc = dict(row)
    if table == "usage":  # counters a $inc never touched are absent, not 0
        doc = {k: v for k, v in doc.items() if k not in COUNTERS or v}
    keys = KEYS.get(table)
    doc["_id"] = {k: row[k] for k in keys} if keys else row["id"]
    return doc


# -- the rows -----------------------------------------------------------------------


def user(
    id: str,
    email: str,
    created: str,
    *,
    active: int = 1,
    role: str = "user",
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "email": email,
        "first_name": id.title(),
        "last_name": "Test",
        "role": role,
        "active": active,
        "api_key_hash": f"hash-{id}",
        "limits": json.dumps(limits or {}),
        "token_generation": 0,
        "created_at": created,
        "updated_at": created,
    }


def instance(
    id: str,
    user_id: str,
    created: str,
    *,
    status: str = "connecting",
    engine: str = "sandbox",
    deleted: int = 0,
) -> dict[str, Any]:
    return {
        "id": id,
        "user_id": user_id,
        "name": f"name of {id}",
        "description": "",
        "engine": engine,
        "status": status,
        "has_qr": 0,
        "last_error": None if status == "connected" else "connection_lost",
        "retry_at": None if status == "connected" else 1_800_000_000.5,
        "phone": "4915100000" if status == "connected" else None,
        "webhook": json.dumps(
            {"url": f"http://hooks.test/{id}", "enabled": True, "hasSecret": True}
        ),
        "engine_settings": json.dumps({"phoneNumberId": id}),
        "created_at": created,
        "updated_at": created,
        "deleted": deleted,
        "connection": None,
    }


def message(
    instance_id: str,
    version: int,
    chat: str,
    at: str,
    *,
    from_me: int = 1,
    media: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": f"{instance_id}-{version}",
        "instance_id": instance_id,
        "remote_jid": chat,
        "from_me": from_me,
        "message_type": "image" if media else "text",
        "content": f"text {version}",
        "message_id": f"wamid-{instance_id}-{version}",
        "has_media": int(media is not None),
        "media": json.dumps(media) if media else None,
        "status": "sent",
        "created_at": at,
        "data": None,
        "error": None,
        **dict.fromkeys(
            (
                "sender",
                "phone",
                "lid",
                "quoted_message_id",
                "reactions",
                "edited",
                "revoked",
                "votes",
                "receipts",
                "recipients",
                "media_path",
            )
        ),
    }


def activity(instance_id: str, version: int, action: str, at: str) -> dict[str, Any]:
    return {
        "id": f"{instance_id}-{version}",
        "instance_id": instance_id,
        "action": action,
        "details": json.dumps({"n": version}),
        "created_at": at,
    }


def delivery(instance_id: str, version: int, status: str, at: str) -> dict[str, Any]:
    return {
        "id": f"log-{instance_id}-{version}",
        "instance_id": instance_id,
        "position": version * 10,
        "event": "message.received",
        "delivery_id": f"d-{version}",
        "status": status,
        "attempts": 1 if status == "delivered" else 3,
        "status_code": 200 if status == "delivered" else 500,
        "error": "" if status == "delivered" else "HTTP 500",
        "replay": 0,
        "created_at": at,
    }


def usage(user_id: str, instance_id: str, day: str, **counts: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "instance_id": instance_id,
        "day": day,
        **dict.fromkeys(COUNTERS, 0),
        **counts,
    }


def contact(
    instance_id: str, jid: str, name: str | None, number: str, is_group: int = 0
) -> dict[str, Any]:
    return {
        "instance_id": instance_id,
        "jid": jid,
        "name": name,
        "number": number,
        "is_group": is_group,
    }


CHAT = "4915111111111@s.whatsapp.net"
OTHER_CHAT = "4915122222222@s.whatsapp.net"


def at(second: int, day: str = "2026-02-01") -> str:
    return f"{day}T10:00:{second:02d}.000Z"


def story() -> Rows:
    """Alice has two live instances and a deleted one; Bob (deactivated) has one."""
    return {
        "users": [
            user("admin", "admin@example.com", "2026-01-01T00:00:00.000Z", role="admin"),
            user(
                "alice",
                "alice@example.com",
                "2026-01-02T00:00:00.000Z",
                limits={"maxMessagesPerDay": 5},
            ),
            user("bob", "bob@example.com", "2026-01-03T00:00:00.000Z", active=0),
        ],
        "instances": [
            instance("a1", "alice", "2026-01-05T00:00:00.000Z", status="connected"),
            instance("a2", "alice", "2026-01-04T00:00:00.000Z", engine="cloud"),
            instance("a3", "alice", "2026-01-06T00:00:00.000Z", status="deleted", deleted=1),
            instance("b1", "bob", "2026-01-07T00:00:00.000Z", status="connected"),
        ],
        "contacts": [
            contact("a1", "222@s.whatsapp.net", "Bea", "222"),
            contact("a1", "group-1@g.us", None, "333", is_group=1),
            contact("a1", "111@s.whatsapp.net", "Abe", "111"),
            contact("b1", "111@s.whatsapp.net", "Bob's Abe", "111"),
        ],
        "messages": [
            *[message("a1", v, CHAT, at(v), from_me=v % 2) for v in (1, 2, 4, 5)],
            message("a1", 3, CHAT, at(3), media={"mimetype": "image/png", "size": 100}),
            message("a1", 6, OTHER_CHAT, at(6)),
            message("b1", 1, CHAT, at(7)),
        ],
        "activity": [
            activity("a1", 1, "instance_created", at(1)),
            activity("a1", 2, "connection_requested", at(2)),
            activity("a1", 3, "qr_received", at(3)),
            activity("a1", 4, "connection_opened", at(4)),
            activity("a2", 1, "instance_created", at(5)),
            activity("a2", 2, "connection_requested", at(5)),  # the same millisecond
        ],
        "deliveries": [
            delivery("a1", 1, "delivered", at(1)),
            delivery("a1", 2, "failed", at(2)),
            delivery("a1", 3, "delivered", at(3)),
            delivery("b1", 1, "failed", at(4)),
        ],
        "usage": [
            usage(
                "alice",
                "a1",
                "2026-03-01",
                messages_sent=2,
                messages_received=1,
                media_sent=1,
                total_media_size=100,
                api_calls=3,
                webhook_sent=1,
            ),
            usage(
                "alice",
                "a1",
                "2026-03-02",
                messages_sent=1,
                messages_received=4,
                media_received=2,
                total_media_size=50,
                webhook_failed=1,
            ),
            usage("alice", "a2", "2026-03-02", messages_sent=5),
            usage("alice", "", "2026-03-02", api_calls=7),  # calls made without an instance
            usage("admin", "a1", "2026-03-02", api_calls=2),
            usage("bob", "b1", "2026-02-20", messages_sent=9, messages_received=9),
        ],
    }
