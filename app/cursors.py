"""Webhook delivery cursors in each provider's storage (the interface is actors.webhooks.Cursors)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.write_concern import WriteConcern


class SQLiteCursors:
    """Cursors in a small SQLite file of their own, beside the event store.

    WAL with synchronous=NORMAL: a commit is in the WAL file when `set` returns, so it
    survives the process being killed; only an OS crash or power loss can lose the last
    moves, and a cursor only lets delivery skip events it had nothing to send for. Not
    syncing each move keeps an fsync off every wake of every instance's deliverer.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS cursors (instance_id TEXT PRIMARY KEY, position INTEGER)"
        )
        self._lock = threading.Lock()

    def get(self, instance_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT position FROM cursors WHERE instance_id=?", [instance_id]
            ).fetchone()
        return row[0] if row else 0

    def set(self, instance_id: str, position: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO cursors VALUES (?, ?) ON CONFLICT (instance_id) "
                "DO UPDATE SET position=MAX(position, excluded.position)",
                [instance_id, position],
            )

    def close(self) -> None:
        self._conn.close()


class MongoCursors:
    """Cursors in the `webhook_cursors` collection of the event store's database."""

    def __init__(self, url: str, database: str, timeout: float = 10.0) -> None:
        self._client: MongoClient[dict[str, Any]] = MongoClient(
            url, serverSelectionTimeoutMS=int(timeout * 1000), appname="whatsapp-api"
        )
        self._cursors = self._client.get_database(database, write_concern=WriteConcern("majority"))[
            "webhook_cursors"
        ]

    def get(self, instance_id: str) -> int:
        document = self._cursors.find_one({"_id": instance_id})
        return int(document["position"]) if document else 0

    def set(self, instance_id: str, position: int) -> None:
        # $max: a slower writer never moves a cursor back.
        self._cursors.update_one(
            {"_id": instance_id}, {"$max": {"position": position}}, upsert=True
        )

    def close(self) -> None:
        self._client.close()
