"""Copying files that may be live SQLite databases (engines' session stores, for instance):
through SQLite's online backup API, which copies a database as of one moment while its
owner keeps writing; anything else byte for byte."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database that may be in use, as one self-contained
    file. In one step (one read transaction; writers carry on under WAL): copied page by
    page, a backup starts again whenever another connection writes, which under a steady
    load is always."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(
            sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        ) as live,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        live.execute("PRAGMA busy_timeout = 30000")
        live.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")


def copy_live_file(source: Path, target: Path) -> None:
    """`source` to `target`: a SQLite database through the backup API, other files as bytes."""
    with source.open("rb") as file:
        head = file.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        copy_database(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
