"""Webhook delivery cursors in a small SQLite file of their own, beside the event store."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from storage.provider import WebhookCursors
from storage.sqlite.errors import translated, translated_errors


class SQLiteCursors(WebhookCursors):
    """How far each instance's webhook delivery got.

    WAL with synchronous=NORMAL: a commit is in the WAL file when `set` returns, so it
    survives the process being killed; only an OS crash or power loss can lose the last
    moves, and a cursor only lets delivery skip events it had nothing to send for. Not
    syncing each move keeps an fsync off every wake of every instance's deliverer.
    """

    def __init__(self, path: Path) -> None:
        with translated_errors():
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS cursors (instance_id TEXT PRIMARY KEY, position INTEGER)"
            )
        self._lock = threading.Lock()

    @translated
    def get(self, instance_id: str) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT position FROM cursors WHERE instance_id=?", [instance_id]
            ).fetchone()
        return int(row[0]) if row else 0

    @translated
    def set(self, instance_id: str, position: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO cursors VALUES (?, ?) ON CONFLICT (instance_id) "
                "DO UPDATE SET position=MAX(position, excluded.position)",
                [instance_id, position],
            )

    def close(self) -> None:
        self._conn.close()
