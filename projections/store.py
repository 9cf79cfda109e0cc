"""SQLite read models (through sqlite-utils) and their tracking positions, in one file.

Rows and the position of the last event they reflect are committed in one
transaction, so a projection applies each event exactly once and resumes after a
crash from the position it last committed.

The file in service is named by a pointer file beside it (`<name>.current`), so that
`rebuild-projections` can build a complete new file and swap it in atomically while
the server runs. Every connection notices a swap at its next use and reopens.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from eventsourcing.persistence import IntegrityError


class ReadModelStore:
    """The read models in service; a connection per thread."""

    def __init__(self, path: str | Path, *, follow_pointer: bool = True) -> None:
        self.base = Path(path)
        self.pointer = self.base.with_name(self.base.name + ".current")
        self._follow = follow_pointer
        self._local = threading.local()
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tracking (name TEXT PRIMARY KEY, position INTEGER)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    # -- which file -----------------------------------------------------------------

    def current_file(self) -> Path:
        if self._follow:
            try:
                return self.base.with_name(self.pointer.read_text().strip())
            except FileNotFoundError:
                pass
        return self.base

    def _generation(self) -> tuple[int, int] | None:
        if not self._follow:
            return None
        try:
            stat = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def switch_to(self, file: Path) -> None:
        """Put `file` (beside the base file) in service, atomically."""
        staging = self.pointer.with_name(self.pointer.name + ".new")
        staging.write_text(file.name)
        os.replace(staging, self.pointer)

    # -- connections ------------------------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        generation = self._generation()
        db = getattr(self._local, "db", None)
        if db is None or self._local.generation != generation:
            if db is not None:
                db.conn.close()
            conn = sqlite3.connect(self.current_file(), isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            db = sqlite_utils.Database(conn)
            self._local.db = db
            self._local.generation = generation
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction on the file in service (re-checked once the lock is held)."""
        while True:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            if self._generation() == self._local.generation:
                break
            db.execute("ROLLBACK")  # swapped while we waited for the lock
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
        return row[0] if row else None

    @staticmethod
    def set_meta(db: sqlite_utils.Database, key: str, value: str) -> None:
        db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            [key, value],
        )

    def position(self, name: str) -> int:
        return self.tracked(self.db, name)

    @staticmethod
    def tracked(db: sqlite_utils.Database, name: str) -> int:
        row = db.execute("SELECT position FROM tracking WHERE name=?", [name]).fetchone()
        return row[0] if row else 0

    @staticmethod
    def track(db: sqlite_utils.Database, name: str, position: int) -> None:
        """Record `position` for projection `name`; refuse to go back or repeat."""
        if ReadModelStore.tracked(db, name) >= position:
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
