"""What the MongoDB read-model queries expect of the collections: columns and indexes."""

from __future__ import annotations

from typing import Any

# The columns of each table (the projections' create_tables), so a row read back has
# every column even where a document leaves a null field out.
COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "email", "first_name", "last_name", "role", "active", "api_key_hash",
              "limits", "created_at", "updated_at"),
    "instances": ("id", "user_id", "name", "description", "engine", "status", "has_qr", "phone",
                  "webhook", "engine_settings", "created_at", "updated_at", "deleted"),
    "contacts": ("instance_id", "jid", "name", "number", "is_group"),
    "messages": ("id", "instance_id", "remote_jid", "from_me", "message_type", "content",
                 "message_id", "has_media", "media", "status", "created_at"),
    "activity": ("id", "instance_id", "action", "details", "created_at"),
    "deliveries": ("id", "instance_id", "position", "event", "delivery_id", "status",
                   "attempts", "status_code", "error", "replay", "created_at"),
}
Keys = list[tuple[str, int]]

# The indexes these queries rely on: the SQLite indexes mirrored, composite primary keys
# included, on the top-level fields (the `_id` subdocument's index serves none of the
# queries). The store creates them with each generation of collections; `unique` as in
# SQLite. A compound index must not carry a field after one that is ranged on (SecantusDB
# 0.7.0b3, the test server, mis-bounds such a range).
USAGE_KEY: Keys = [("user_id", 1), ("instance_id", 1), ("day", 1)]
ACTIVITY_KEY: Keys = [("instance_id", 1), ("created_at", 1)]
INDEXES: dict[str, list[tuple[Keys, bool]]] = {
    "users": [([("email", 1)], True), ([("api_key_hash", 1)], False)],
    "instances": [([("user_id", 1)], False)],
    "contacts": [([("instance_id", 1), ("jid", 1)], True)],
    "messages": [
        ([("instance_id", 1), ("remote_jid", 1), ("created_at", 1)], False),
        ([("instance_id", 1), ("message_id", 1)], False),
    ],
    "activity": [(ACTIVITY_KEY, False)],
    "deliveries": [([("instance_id", 1), ("status", 1), ("created_at", 1)], False)],
    "usage": [(USAGE_KEY, True), ([("instance_id", 1), ("day", 1)], False), ([("day", 1)], False)],
}


def create_indexes(collection: Any, table: str) -> None:
    """Create on `collection` (a pymongo Collection) the indexes the queries use for `table`."""
    for keys, unique in INDEXES.get(table, []):
        collection.create_index(keys, unique=unique)
