"""SQLite read models (through sqlite-utils) and their tracking positions, in one file.

Rows and the position of the last event they reflect are committed in one
transaction, so a projection applies each event exactly once and resumes after a
crash from the position it last committed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from eventsourcing.persistence import IntegrityError


class ReadModelStore:
    """One SQLite file of read models; a connection per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position INTEGER)"
            )

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def position(self, name: str) -> int:
        row = self.db.execute("SELECT position FROM tracking WHERE name=?", [name]).fetchone()
        return row[0] if row else 0

    @staticmethod
    def track(db: sqlite_utils.Database, name: str, position: int) -> None:
        """Record `position` for projection `name`; refuse to go back or repeat."""
        row = db.execute("SELECT position FROM tracking WHERE name=?", [name]).fetchone()
        if row and row[0] >= position:
            raise IntegrityError(f"{name} already processed position {position}")
        db.execute(
            "INSERT INTO tracking (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position=excluded.position",
            [name, position],
        )

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None
