"""The read-model queries on SQLite: SQL over the file in service."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import sqlite_utils

from projections.queries.base import DAILY, Counts, Page, Row, Window, zero_usage
from projections.usage import COUNTERS, NO_INSTANCE
from storage.sqlite.errors import translating

_SUMS = ", ".join(f"COALESCE(SUM({c}), 0) AS {c}" for c in COUNTERS)
_NEWEST = "created_at DESC, rowid DESC"  # rowid: the order the projections wrote them


class Database(Protocol):
    """What holds the read-model file: `ReadModelStore` (its `db` follows a rebuild's swap)."""

    @property
    def db(self) -> sqlite_utils.Database: ...


@translating
class SqliteReadModels:
    """`ReadModelQueries` over a SQLite read-model file."""

    def __init__(self, source: Database) -> None:
        self._source = source

    @property
    def _db(self) -> sqlite_utils.Database:
        return self._source.db

    def _one(self, sql: str, params: Sequence[Any]) -> Row | None:
        cursor = self._db.execute(sql, params)
        row = cursor.fetchone()
        return (
            None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))
        )

    # -- users --------------------------------------------------------------------

    def user(self, user_id: str) -> Row | None:
        return self._one("SELECT * FROM users WHERE id = ?", [user_id])

    def active_user(self, user_id: str) -> Row | None:
        return self._one("SELECT * FROM users WHERE id = ? AND active = 1", [user_id])

    def user_by_email(self, email: str) -> Row | None:
        return self._one("SELECT * FROM users WHERE email = ?", [email])

    def user_by_api_key_hash(self, key_hash: str) -> Row | None:
        return self._one("SELECT * FROM users WHERE api_key_hash = ?", [key_hash])

    def users(self) -> list[Row]:
        return list(self._db["users"].rows_where(order_by="created_at"))

    def active_users(self) -> list[Row]:
        return list(self._db["users"].rows_where("active = 1", order_by="created_at"))

    def user_counts(self) -> Counts:
        total, active = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(active), 0) FROM users"
        ).fetchone()
        return Counts(total, active)

    # -- instances ----------------------------------------------------------------

    def instances_of(self, user_id: str) -> list[Row]:
        return self._instances("user_id = ?", [user_id])

    def own_instance(self, instance_id: str, user_id: str) -> Row | None:
        found = self._instances("id = ? AND user_id = ?", [instance_id, user_id])
        return found[0] if found else None

    def _instances(self, where: str, params: list[Any]) -> list[Row]:
        rows = list(
            self._db["instances"].rows_where(
                f"{where} AND deleted = 0", params, order_by="created_at"
            )
        )
        for row in rows:
            row["webhook"] = json.loads(row["webhook"])
            row["engine_settings"] = json.loads(row["engine_settings"])
        return rows

    def instance_engine(self, instance_id: str) -> str | None:
        row = self._db.execute(
            "SELECT engine FROM instances WHERE id = ? AND deleted = 0", [instance_id]
        ).fetchone()
        return row[0] if row else None

    def live_instances(self) -> list[Row]:
        return list(self._db["instances"].rows_where("deleted = 0", select="id, engine"))

    def instance_counts(self) -> Counts:
        total, active = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'connected'), 0) FROM instances WHERE deleted = 0"
        ).fetchone()
        return Counts(total, active)

    def instances_by_status(self) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT status, COUNT(*) FROM instances WHERE deleted = 0 GROUP BY status"
            ).fetchall()
        )

    # -- contacts, messages, activity, deliveries ---------------------------------

    def contacts(self, instance_id: str) -> list[Row]:
        return list(
            self._db["contacts"].rows_where(
                "instance_id = ?", [instance_id], order_by="number, jid"
            )
        )

    def messages(self, instance_id: str, chat_jids: Sequence[str], window: Window) -> Page:
        names = list(dict.fromkeys(chat_jids))
        return self._page(
            "messages",
            ["instance_id = ?", f"remote_jid IN ({', '.join('?' * len(names))})"],
            [instance_id, *names],
            window,
        )

    def message(self, instance_id: str, message_id: str) -> Row | None:
        return self._one(
            "SELECT * FROM messages WHERE instance_id = ? AND message_id = ? "
            "ORDER BY from_me DESC, rowid DESC LIMIT 1",
            [instance_id, message_id],
        )

    def identities(self, instance_id: str, jids: Sequence[str]) -> dict[str, Row]:
        names = list(dict.fromkeys(jids))[:500]
        if not names:
            return {}
        rows = self._db.query(
            f"SELECT * FROM identities WHERE instance_id = ? "
            f"AND jid IN ({', '.join('?' * len(names))})",
            [instance_id, *names],
        )
        return {row["jid"]: row for row in rows}

    def chats(self, instance_id: str, window: Window) -> Page:
        where = "instance_id = ? AND merged_into IS NULL"
        total = self._db["chats"].count_where(where, [instance_id])
        rows = self._db["chats"].rows_where(
            where,
            [instance_id],
            order_by="updated_at DESC, rowid DESC",
            limit=window.limit,
            offset=window.skip,
        )
        return Page(list(rows), total)

    def groups(self, instance_id: str) -> list[Row]:
        return list(
            self._db["groups"].rows_where(
                "instance_id = ? AND left = 0", [instance_id], order_by="subject, jid"
            )
        )

    def group(self, instance_id: str, group_jid: str) -> Row | None:
        return self._one(
            "SELECT * FROM groups WHERE instance_id = ? AND jid = ?", [instance_id, group_jid]
        )

    def contact(self, instance_id: str, jid: str) -> Row | None:
        return self._one(
            "SELECT * FROM contacts WHERE instance_id = ? AND jid = ?", [instance_id, jid]
        )

    def message_statuses(self, instance_id: str, message_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(message_ids), 500):  # SQLite's bound parameters are few
            chunk = list(message_ids[start : start + 500])
            found.update(
                self._db.execute(
                    "SELECT message_id, status FROM messages WHERE instance_id = ? "
                    f"AND message_id IN ({', '.join('?' * len(chunk))})",
                    [instance_id, *chunk],
                ).fetchall()
            )
        return found

    def activity(self, instance_id: str, actions: Sequence[str], window: Window) -> Page:
        where, params = ["instance_id = ?"], [instance_id]
        if actions:
            where.append(f"action IN ({', '.join('?' * len(actions))})")
            params += actions
        return self._page("activity", where, params, window)

    def deliveries(self, instance_id: str, status: str | None, window: Window) -> Page:
        where, params = ["instance_id = ?"], [instance_id]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        return self._page("deliveries", where, params, window)

    def webhook_outcomes(self, instance_id: str, status: str | None, window: Window) -> Page:
        where, params = ["instance_id = ?"], [instance_id]
        if status is not None:
            where.append("status = ?")
            params.append(status)
        return self._page("webhook_outcomes", where, params, window)

    def unresolved_webhooks(self, instance_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(instance_ids), 500):  # SQLite's bound parameters are few
            chunk = list(instance_ids[start : start + 500])
            found.update(
                self._db.execute(
                    "SELECT instance_id, COUNT(*) FROM webhook_outcomes WHERE status = 'failed' "
                    f"AND instance_id IN ({', '.join('?' * len(chunk))}) GROUP BY instance_id",
                    chunk,
                ).fetchall()
            )
        return found

    def _page(self, table: str, where: list[str], params: list[Any], window: Window) -> Page:
        if window.start:
            where, params = [*where, "created_at >= ?"], [*params, window.start]
        if window.end:
            where, params = [*where, "created_at <= ?"], [*params, window.end]
        clause = " AND ".join(where)
        total = self._db[table].count_where(clause, params)
        rows = self._db[table].rows_where(
            clause, params, order_by=_NEWEST, limit=window.limit, offset=window.skip
        )
        return Page(list(rows), total)

    # -- usage --------------------------------------------------------------------

    def _sums(self, where: str, params: list[Any], since: str | None) -> dict[str, int]:
        if since:
            where, params = f"{where} AND day >= ?", [*params, since]
        row = self._one(f"SELECT {_SUMS} FROM usage WHERE {where}", params)
        return row or zero_usage()

    def usage_of_user(self, user_id: str, since: str | None) -> dict[str, int]:
        return self._sums("user_id = ?", [user_id], since)

    def usage_of_instance(self, instance_id: str, since: str | None) -> dict[str, int]:
        return self._sums("instance_id = ?", [instance_id], since)

    def usage_of_system(self) -> dict[str, int]:
        return self._sums("1 = 1", [], None)

    def usage_by_instance(self, user_id: str, since: str | None) -> dict[str, dict[str, int]]:
        where, params = "user_id = ? AND instance_id != ?", [user_id, NO_INSTANCE]
        if since:
            where, params = f"{where} AND day >= ?", [*params, since]
        rows = self._db.query(
            f"SELECT instance_id, {_SUMS} FROM usage WHERE {where} GROUP BY instance_id", params
        )
        return {row.pop("instance_id"): row for row in rows}

    def daily_usage(self, instance_id: str, since: str | None) -> list[Row]:
        where, params = "instance_id = ?", [instance_id]
        if since:
            where, params = f"{where} AND day >= ?", [*params, since]
        sums = ", ".join(f"SUM({c}) AS {c}" for c in DAILY)
        return list(
            self._db.query(
                f"SELECT day, {sums} FROM usage WHERE {where} GROUP BY day ORDER BY day", params
            )
        )

    def messages_sent_on(self, user_id: str, day: str) -> int:
        (sent,) = self._db.execute(
            "SELECT COALESCE(SUM(messages_sent), 0) FROM usage WHERE user_id = ? AND day = ?",
            [user_id, day],
        ).fetchone()
        return int(sent)
