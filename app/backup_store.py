"""The provider's part of a backup: the event store and the webhook cursors, as files.

SQLite: each database is copied with SQLite's online backup API, in one step: one read
transaction, so the copy is the database as of one moment while writers carry on (WAL).
Copied page by page instead, a backup restarts whenever another connection writes, which
under a steady send load is always.

MongoDB: each collection is dumped as BSON documents (the format mongodump writes), read
in this order: cursors, snapshots, then the position counter, then every event up to it.
The counter moves in the same transaction as the events that take its positions, so
every event up to the value read is committed and visible; a snapshot read before that is
of events up to it too; and a cursor read before it never points past it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.config import Settings

SQLITE_MAGIC = b"SQLite format 3\x00"

Step = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class DumpResult:
    """The event store in a backup: its last position, its events, its cursors."""

    position: int
    events: int
    cursors: int


class StoreBackup(Protocol):
    provider: Any  # "sqlite" or "mongodb"

    def dump(self, into: Path, step: Step) -> DumpResult:
        """Write the cursors, then the event store, as files under `into`."""

    def occupied(self) -> list[str]:
        """What this provider holds already (empty: a restore may write)."""

    def clear(self) -> None:
        """Delete the event store, the cursors and the read models."""

    def load(self, source: Path, dumped: DumpResult, step: Step) -> None:
        """Write what `dump` wrote back into an empty store."""


def store_backup(settings: Settings) -> StoreBackup:
    if settings.database_provider == "mongodb":
        return MongoStoreBackup(settings)
    return SQLiteStoreBackup(settings)


# -- SQLite ---------------------------------------------------------------------------


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database, through SQLite's backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(
            sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        ) as live,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        live.execute("PRAGMA busy_timeout = 30000")
        live.backup(copy)  # pages=-1: the whole database in one step
        copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file


def copy_file_or_database(source: Path, target: Path) -> None:
    """SQLite databases through the backup API (they may be in use), other files as bytes."""
    with source.open("rb") as file:
        head = file.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        copy_database(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


class SQLiteStoreBackup:
    """The event store file and the cursors file beside it."""

    provider = "sqlite"
    EVENTS = "events.db"
    CURSORS = "webhook-cursors.db"

    def __init__(self, settings: Settings) -> None:
        self.events_path = settings.sqlite_path
        self.cursors_path = settings.data_dir / "webhooks.db"
        self.read_models_path = settings.read_models_path

    def dump(self, into: Path, step: Step) -> DumpResult:
        if not self.events_path.exists():
            raise FileNotFoundError(f"no event store at {self.events_path}")
        cursors = 0
        if self.cursors_path.exists():  # first: never ahead of the events copied next
            copy_database(self.cursors_path, into / self.CURSORS)
            cursors = _count(into / self.CURSORS, "SELECT count(*) FROM cursors")
        step("event store", 0, 1)
        copy_database(self.events_path, into / self.EVENTS)
        step("event store", 1, 1)
        with contextlib.closing(sqlite3.connect(into / self.EVENTS)) as copy:
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise RuntimeError(f"the copy of {self.events_path} is damaged")
            position, events = copy.execute(
                "SELECT coalesce(max(rowid), 0), count(*) FROM stored_events"
            ).fetchone()
        return DumpResult(position, events, cursors)

    def occupied(self) -> list[str]:
        return [f"{p} exists" for p in (self.events_path, self.cursors_path) if p.exists()]

    def clear(self) -> None:
        for database in (self.events_path, self.cursors_path):
            for name in (database.name, f"{database.name}-wal", f"{database.name}-shm"):
                (database.parent / name).unlink(missing_ok=True)
        # Read models (the file in service, rebuilt ones, the pointer): all rebuilt anyway.
        for path in self.read_models_path.parent.glob(f"{self.read_models_path.stem}*"):
            if path.is_file():
                path.unlink()

    def load(self, source: Path, dumped: DumpResult, step: Step) -> None:
        self.events_path.parent.mkdir(parents=True, exist_ok=True)
        _move(source / self.EVENTS, self.events_path)
        if (source / self.CURSORS).exists():
            _move(source / self.CURSORS, self.cursors_path)
        step("event store", dumped.events, dumped.events)


def _count(path: Path, query: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute(query).fetchone()[0])


def _move(source: Path, target: Path) -> None:
    source.replace(target)  # the same filesystem: staging is inside the data directory


# -- MongoDB --------------------------------------------------------------------------

BATCH = 1000


class MongoStoreBackup:
    """The event store's collections (events, snapshots, the position counter, cursors)."""

    provider = "mongodb"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextlib.contextmanager
    def _store(self, create: bool) -> Iterator[Any]:
        from app.eventstore import open_store

        store = open_store(self.settings, create=create)
        try:
            yield store
        finally:
            store.close()

    @staticmethod
    def _names(store: Any) -> tuple[str, str]:
        snapshots = store.snapshots.recorder.events_collection_name if store.snapshots else ""
        return store.recorder.events_collection_name, snapshots

    def dump(self, into: Path, step: Step) -> DumpResult:
        from bson.codec_options import CodecOptions
        from bson.raw_bson import RawBSONDocument

        from app.mongodb import POSITIONS

        into.mkdir(parents=True, exist_ok=True)
        raw = CodecOptions(document_class=RawBSONDocument)
        with self._store(create=False) as store:
            db = store.recorder.datastore.db.with_options(codec_options=raw)
            events, snapshots = self._names(store)
            cursors = _dump(db["webhook_cursors"].find(), into / "webhook_cursors.bson")
            if snapshots:
                _dump(db[snapshots].find(), into / "snapshots.bson")
            counter = store.recorder.positions.find_one({"_id": events})
            position = int(counter["last"]) if counter else 0
            written = 0

            def noted(documents: Iterator[Any]) -> Iterator[Any]:
                nonlocal written
                for document in documents:
                    written += 1
                    if written % BATCH == 0:
                        step("event store", written, position)
                    yield document

            count = _dump(
                noted(db[events].find({"_id": {"$lte": position}}, sort=[("_id", 1)])),
                into / "events.bson",
            )
            step("event store", count, position)
            _dump(iter([{"_id": events, "last": position}]), into / f"{POSITIONS}.bson")
        return DumpResult(position, count, cursors)

    def occupied(self) -> list[str]:
        with self._store(create=False) as store:
            db = store.recorder.datastore.db
            events, _ = self._names(store)
            return [
                f"the MongoDB collection {db.name}.{name} holds documents"
                for name in (events, "webhook_cursors")
                if db[name].find_one({}, projection={"_id": 1}) is not None
            ]

    def clear(self) -> None:
        from app.mongodb import POSITIONS

        with self._store(create=False) as store:
            db = store.recorder.datastore.db
            for name in (*self._names(store), POSITIONS, "webhook_cursors"):
                if name:
                    db.drop_collection(name)
            db.client.drop_database(f"{db.name}_read")  # the read models (app.storage)

    def load(self, source: Path, dumped: DumpResult, step: Step) -> None:
        from bson import decode_file_iter
        from bson.codec_options import CodecOptions
        from bson.raw_bson import RawBSONDocument

        from app.mongodb import POSITIONS

        raw = CodecOptions(document_class=RawBSONDocument)
        with self._store(create=True) as store:  # creates the collections and indexes
            db = store.recorder.datastore.db
            events, snapshots = self._names(store)
            targets = [("events.bson", events), ("webhook_cursors.bson", "webhook_cursors")]
            if snapshots:
                targets.append(("snapshots.bson", snapshots))
            for file_name, collection in targets:
                path = source / file_name
                if not path.exists():
                    continue
                loaded = 0
                with path.open("rb") as file:
                    for batch in _batches(decode_file_iter(file, codec_options=raw)):
                        db[collection].insert_many(batch, ordered=True)
                        loaded += len(batch)
                        if collection == events:
                            step("event store", loaded, dumped.events)
            db[POSITIONS].update_one(
                {"_id": events}, {"$max": {"last": dumped.position}}, upsert=True
            )


def _dump(documents: Iterator[Any], path: Path) -> int:
    """Documents as concatenated BSON (what mongodump writes); how many."""
    import bson

    count = 0
    with path.open("wb") as out:
        for document in documents:
            out.write(document.raw if hasattr(document, "raw") else bson.encode(document))
            count += 1
    return count


def _batches(documents: Iterator[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for document in documents:
        batch.append(document)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
