"""The read-model queries on MongoDB: finds on the mirrored indexes, sums in pipelines.

Each table is a collection of the same name (as `Collections` names it in service), one
document per row with the SQLite column names (see the read-model schema convention),
with the SQLite indexes mirrored. Pages match on the index of the list, e.g.
`(instance_id, remote_jid, created_at)` for a chat, and sort newest first on
`created_at` then `_id`, so that skip/limit pages never overlap (rows of the same
millisecond come in `_id` order, where SQLite takes the order they were written).
Counts are `count_documents` on the same match; sums never load rows into Python:
`$match` on an indexed prefix, then `$group`. Lookups by primary key match on `_id` alone
and check the other conditions on the one document found; a filter on a field outside
the index names the index to use (some servers would rather scan the collection).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from pymongo.collection import Collection

from projections.queries.base import DAILY, Counts, Page, Row, Window, zero_usage
from projections.usage import COUNTERS, NO_INSTANCE
from storage.mongodb.datastore import translating
from storage.mongodb.schema import ACTIVITY_KEY, COLUMNS, USAGE_KEY, Keys

_OLDEST = [("created_at", 1), ("_id", 1)]
_NEWEST = [("created_at", -1), ("_id", -1)]
_SUMS = {c: {"$sum": f"${c}"} for c in COUNTERS}


def _row(table: str, doc: dict[str, Any]) -> Row:
    row = {column: doc.get(column) for column in COLUMNS[table]}
    if "id" in row and row["id"] is None:  # single-key tables: the key is the `_id`
        row["id"] = doc["_id"]
    return row


class Collections(Protocol):
    """Where the read models are: the collection in service for a table name.

    The write side may serve a rebuilt generation under other collection names, so the
    query side asks this every time instead of naming collections itself.
    """

    def collection(self, name: str) -> Collection[dict[str, Any]]:
        """The collection in service for read-model table `name`."""
        ...


@translating
class MongoReadModels:
    """`ReadModelQueries` over MongoDB collections."""

    def __init__(self, collections: Collections) -> None:
        self._collections = collections

    def _find(self, table: str, where: dict[str, Any], sort: Any = None, **kw: Any) -> list[Row]:
        cursor = self._collections.collection(table).find(where, sort=sort, **kw)
        return [_row(table, doc) for doc in cursor]

    def _one(self, table: str, where: dict[str, Any]) -> Row | None:
        doc = self._collections.collection(table).find_one(where)
        return None if doc is None else _row(table, doc)

    def _aggregate(
        self, table: str, pipeline: list[dict[str, Any]], hint: Keys | None = None
    ) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {"hint": dict(hint)} if hint else {}  # a hint as a document
        return list(self._collections.collection(table).aggregate(pipeline, **extra))

    # -- users --------------------------------------------------------------------

    def user(self, user_id: str) -> Row | None:
        return self._one("users", {"_id": user_id})

    def active_user(self, user_id: str) -> Row | None:
        row = self.user(user_id)
        return row if row is not None and row["active"] == 1 else None

    def user_by_email(self, email: str) -> Row | None:
        return self._one("users", {"email": email})

    def user_by_api_key_hash(self, key_hash: str) -> Row | None:
        return self._one("users", {"api_key_hash": key_hash})

    def users(self) -> list[Row]:
        return self._find("users", {}, _OLDEST)

    def active_users(self) -> list[Row]:
        return self._find("users", {"active": 1}, _OLDEST)

    def user_counts(self) -> Counts:
        found = self._aggregate(
            "users",
            [
                {"$group": {"_id": None, "total": {"$sum": 1}, "active": {"$sum": "$active"}}},
            ],
        )
        return Counts(found[0]["total"], found[0]["active"]) if found else Counts(0, 0)

    # -- instances ----------------------------------------------------------------

    def instances_of(self, user_id: str) -> list[Row]:
        # A user's deleted instances are few: left out here rather than by the index.
        rows = self._find("instances", {"user_id": user_id}, _OLDEST)
        return [_decoded(row) for row in rows if row["deleted"] == 0]

    def own_instance(self, instance_id: str, user_id: str) -> Row | None:
        row = self._one("instances", {"_id": instance_id})
        if row is None or row["deleted"] != 0 or row["user_id"] != user_id:
            return None
        return _decoded(row)

    def instance_engine(self, instance_id: str) -> str | None:
        doc = self._collections.collection("instances").find_one(
            {"_id": instance_id}, {"engine": 1, "deleted": 1}
        )
        return None if doc is None or doc["deleted"] != 0 else doc["engine"]

    def live_instances(self) -> list[Row]:
        cursor = self._collections.collection("instances").find(
            {"deleted": 0}, {"engine": 1}, sort=[("_id", 1)]
        )
        return [{"id": doc["_id"], "engine": doc["engine"]} for doc in cursor]

    def instance_counts(self) -> Counts:
        connected = {"$cond": [{"$eq": ["$status", "connected"]}, 1, 0]}
        found = self._aggregate(
            "instances",
            [
                {"$match": {"deleted": 0}},
                {"$group": {"_id": None, "total": {"$sum": 1}, "active": {"$sum": connected}}},
            ],
        )
        return Counts(found[0]["total"], found[0]["active"]) if found else Counts(0, 0)

    def instances_by_status(self) -> dict[str, int]:
        found = self._aggregate(
            "instances",
            [
                {"$match": {"deleted": 0}},
                {"$group": {"_id": "$status", "n": {"$sum": 1}}},
            ],
        )
        return {doc["_id"]: doc["n"] for doc in found}

    # -- contacts, messages, activity, deliveries ---------------------------------

    def contacts(self, instance_id: str) -> list[Row]:
        return self._find("contacts", {"instance_id": instance_id}, [("number", 1), ("jid", 1)])

    def messages(self, instance_id: str, chat_jids: Sequence[str], window: Window) -> Page:
        names = list(dict.fromkeys(chat_jids))
        chat: Any = names[0] if len(names) == 1 else {"$in": names}
        return self._page("messages", {"instance_id": instance_id, "remote_jid": chat}, window)

    def message(self, instance_id: str, message_id: str) -> Row | None:
        found = self._find(
            "messages",
            {"instance_id": instance_id, "message_id": message_id},
            [("from_me", -1), ("created_at", -1), ("_id", -1)],
            limit=1,
        )
        return found[0] if found else None

    def identities(self, instance_id: str, jids: Sequence[str]) -> dict[str, Row]:
        keys = [{"instance_id": instance_id, "jid": j} for j in dict.fromkeys(jids)][:500]
        if not keys:
            return {}
        return {row["jid"]: row for row in self._find("identities", {"_id": {"$in": keys}})}

    def chats(self, instance_id: str, window: Window) -> Page:
        where = {"instance_id": instance_id, "merged_into": None}
        total = self._collections.collection("chats").count_documents(where)
        rows = self._find(
            "chats",
            where,
            [("updated_at", -1), ("_id", -1)],
            skip=window.skip,
            limit=window.limit,
        )
        return Page(rows, total)

    def groups(self, instance_id: str) -> list[Row]:
        return self._find(
            "groups", {"instance_id": instance_id, "left": 0}, [("subject", 1), ("jid", 1)]
        )

    def group(self, instance_id: str, group_jid: str) -> Row | None:
        found = self._find("groups", {"_id": {"instance_id": instance_id, "jid": group_jid}})
        return found[0] if found else None

    def contact(self, instance_id: str, jid: str) -> Row | None:
        found = self._find("contacts", {"_id": {"instance_id": instance_id, "jid": jid}})
        return found[0] if found else None

    def message_statuses(self, instance_id: str, message_ids: Sequence[str]) -> dict[str, str]:
        if not message_ids:
            return {}
        cursor = self._collections.collection("messages").find(
            {"instance_id": instance_id, "message_id": {"$in": list(message_ids)}},
            {"message_id": 1, "status": 1},
        )
        return {doc["message_id"]: doc["status"] for doc in cursor}

    def activity(self, instance_id: str, actions: Sequence[str], window: Window) -> Page:
        where: dict[str, Any] = {"instance_id": instance_id}
        if actions:
            where["action"] = {"$in": list(actions)}
            return self._page("activity", where, window, hint=ACTIVITY_KEY)
        return self._page("activity", where, window)

    def deliveries(self, instance_id: str, status: str | None, window: Window) -> Page:
        where: dict[str, Any] = {"instance_id": instance_id}
        if status is not None:
            where["status"] = status
        return self._page("deliveries", where, window)

    def webhook_outcomes(self, instance_id: str, status: str | None, window: Window) -> Page:
        where: dict[str, Any] = {"instance_id": instance_id}
        if status is not None:
            where["status"] = status
        return self._page("webhook_outcomes", where, window)

    def unresolved_webhooks(self, instance_ids: Sequence[str]) -> dict[str, int]:
        if not instance_ids:
            return {}
        found = self._aggregate(
            "webhook_outcomes",
            [
                {"$match": {"instance_id": {"$in": list(instance_ids)}, "status": "failed"}},
                {"$group": {"_id": "$instance_id", "n": {"$sum": 1}}},
            ],
        )
        return {doc["_id"]: doc["n"] for doc in found}

    def _page(self, table: str, where: dict[str, Any], window: Window, **hint: Any) -> Page:
        created: dict[str, str] = {}
        if window.start:
            created["$gte"] = window.start
        if window.end:
            created["$lte"] = window.end
        if created:
            where = {**where, "created_at": created}
        total = self._collections.collection(table).count_documents(where, **hint)
        rows = self._find(table, where, _NEWEST, skip=window.skip, limit=window.limit, **hint)
        return Page(rows, total)

    # -- usage --------------------------------------------------------------------

    def _sums(
        self, where: dict[str, Any], since: str | None, hint: Keys | None = None
    ) -> dict[str, int]:
        found = self._aggregate(
            "usage",
            [
                {"$match": _since(where, since)},
                {"$group": {"_id": None, **_SUMS}},
            ],
            hint,
        )
        return {c: found[0][c] for c in COUNTERS} if found else zero_usage()

    def usage_of_user(self, user_id: str, since: str | None) -> dict[str, int]:
        return self._sums({"user_id": user_id}, since, USAGE_KEY)

    def usage_of_instance(self, instance_id: str, since: str | None) -> dict[str, int]:
        return self._sums({"instance_id": instance_id}, since)

    def usage_of_system(self) -> dict[str, int]:
        return self._sums({}, None)

    def usage_by_instance(self, user_id: str, since: str | None) -> dict[str, dict[str, int]]:
        found = self._aggregate(
            "usage",
            [
                {
                    "$match": _since(
                        {"user_id": user_id, "instance_id": {"$ne": NO_INSTANCE}}, since
                    )
                },
                {"$group": {"_id": "$instance_id", **_SUMS}},
            ],
            USAGE_KEY,
        )
        return {doc["_id"]: {c: doc[c] for c in COUNTERS} for doc in found}

    def daily_usage(self, instance_id: str, since: str | None) -> list[Row]:
        found = self._aggregate(
            "usage",
            [
                {"$match": _since({"instance_id": instance_id}, since)},
                {"$group": {"_id": "$day", **{c: {"$sum": f"${c}"} for c in DAILY}}},
                {"$sort": {"_id": 1}},
            ],
        )
        return [{"day": doc["_id"], **{c: doc[c] for c in DAILY}} for doc in found]

    def messages_sent_on(self, user_id: str, day: str) -> int:
        found = self._aggregate(
            "usage",
            [
                {"$match": {"user_id": user_id, "day": day}},
                {"$group": {"_id": None, "sent": {"$sum": "$messages_sent"}}},
            ],
            USAGE_KEY,
        )
        return found[0]["sent"] if found else 0


def _decoded(row: Row) -> Row:
    row["webhook"] = json.loads(row["webhook"])
    row["engine_settings"] = json.loads(row["engine_settings"])
    return row


def _since(where: dict[str, Any], since: str | None) -> dict[str, Any]:
    return {**where, "day": {"$gte": since}} if since else where
