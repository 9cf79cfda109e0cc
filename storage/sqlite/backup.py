"""The SQLite provider's part of a backup: the event store and the cursors, as files.

Both are copied with SQLite's online backup API (`storage.files.copy_database`), the
cursors first, so that no cursor in a backup is ahead of the events in it.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from storage.files import copy_database
from storage.provider import BackedUp, Step

EVENTS = "events.db"
CURSORS = "webhook-cursors.db"


def backup(events: Path, cursors: Path, into: Path, step: Step) -> BackedUp:
    if not events.exists():
        raise FileNotFoundError(f"no event store at {events}")
    cursor_count = 0
    if cursors.exists():  # first: never ahead of the events copied next
        copy_database(cursors, into / CURSORS)
        cursor_count = _one(into / CURSORS, "SELECT count(*) FROM cursors")
    step("event store", 0, 1)
    copy_database(events, into / EVENTS)
    step("event store", 1, 1)
    if _one(into / EVENTS, "PRAGMA quick_check") != "ok":
        raise RuntimeError(f"the copy of {events} is damaged")
    with contextlib.closing(sqlite3.connect(into / EVENTS)) as copy:
        position, count = copy.execute(
            "SELECT coalesce(max(rowid), 0), count(*) FROM stored_events"
        ).fetchone()
    return BackedUp(position, count, cursor_count)


def held(events: Path, cursors: Path) -> list[str]:
    return [f"{path} exists" for path in (events, cursors) if path.exists()]


def erase(events: Path, cursors: Path, read_models: Path) -> None:
    for database in (events, cursors):
        for name in (database.name, f"{database.name}-wal", f"{database.name}-shm"):
            (database.parent / name).unlink(missing_ok=True)
    # The read models: the file in service, rebuilt ones, the pointer; a restore rebuilds them.
    for path in read_models.parent.glob(f"{read_models.stem}*"):
        if path.is_file():
            path.unlink()


def restore(source: Path, events: Path, cursors: Path, backed_up: BackedUp, step: Step) -> None:
    events.parent.mkdir(parents=True, exist_ok=True)
    # A rename when the event store is on the data directory's filesystem (the staging
    # directory is in the data directory), a copy when SQLITE_DATABASE_URL points elsewhere.
    shutil.move(source / EVENTS, events)
    if (source / CURSORS).exists():
        cursors.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source / CURSORS, cursors)
    step("event store", backed_up.events, backed_up.events)


def _one(path: Path, query: str) -> Any:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchone()[0]
