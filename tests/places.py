"""Where a test keeps its data, on one storage provider: what the `storage` fixture gives.

Every test that takes `storage` (or a server: `server`, `fresh_server`) runs once per
provider, with ids ending in `[sqlite]` or `[mongodb]` (tests/conftest.py), unless it or its
module is marked `sqlite_only` with the reason. A `Storage` is a place of the test's own:
SQLite files under its directory, or a MongoDB database of its own (with its `<name>_read`
companion) on the test run's one server (tests/mongo.py), dropped afterwards.

It opens the product's own storage there (`open()`, `event_store()`, `read_models()`),
gives the environment a server or the CLI needs to use it (`env()`), and reads the read
models as another reader would, through a connection of the test's own, in one shape on
both providers (`rows()`, `dump()`, ...): dicts of column -> value, MongoDB's `_id` left
out, tracking as name/position and meta as key/value.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import mongo

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

    from app.config import Settings
    from app.eventstore import EventStore
    from projections.rows import Building, ReadModels
    from storage.provider import StorageProvider

PROVIDERS = ("sqlite", "mongodb")


@contextmanager
def place(request: pytest.FixtureRequest, provider: str, root: Path) -> Iterator[Storage]:
    """A place on `provider` under `root` (on MongoDB, a database of its own on the test
    run's server), closed and dropped at the end. The `storage` fixture is one per test;
    module-scoped servers make theirs with this."""
    url = request.getfixturevalue("mongodb_url") if provider == "mongodb" else None
    storage = Storage(provider, root, url)
    try:
        yield storage
    finally:
        storage.close()


class Storage:
    """One test's place on one provider (see the module)."""

    def __init__(self, name: str, root: Path, mongodb_url: str | None = None) -> None:
        assert name in PROVIDERS, name
        assert (name == "mongodb") == (mongodb_url is not None)
        self.name = name
        self.root = root
        root.joinpath("data").mkdir(parents=True, exist_ok=True)
        self.mongodb_url = mongodb_url
        self.database = mongo.new_database_name("t") if mongodb_url else None
        self._provider: StorageProvider | None = None
        self._stores: list[Any] = []
        self._client: MongoClient[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"Storage({self.name}, {self.database or self.root})"

    # -- the product's storage here -------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The settings' environment variables for this place (a server, the CLI)."""
        env = {"SQLITE_DATABASE_URL": f"file:{self.root / 'data' / 'whatsapp-api.db'}"}
        if self.database is not None:
            assert self.mongodb_url is not None
            env["DATABASE_PROVIDER"] = "mongodb"
            env["DATABASE_URL"] = mongo.with_database(self.mongodb_url, self.database)
        return env

    def settings(self) -> Settings:
        from app.config import Settings

        return Settings.from_env(self.env())

    def open(self) -> StorageProvider:
        """The product's storage provider for this place (one, kept until `close`)."""
        if self._provider is None:
            from app.storage import open_storage

            # SecantusDB, the test server, is 2-27 times slower than mongod, and the machine
            # is shared: a longer wait for the server (and for conflicting appenders, six
            # times as long) than production's 10 s keeps a slow moment from failing a test.
            self._provider = open_storage(self.settings(), timeout=30)
        return self._provider

    def event_store(self, *, create: bool = True) -> EventStore:
        """A new event store object on this place (closed with the place, if not before)."""
        from app.eventstore import open_store

        store = open_store(self.open(), create=create)
        self._stores.append(store)
        return store

    def read_models(self) -> ReadModels:
        """A new read-model store object over the read models in service here."""
        store = self.open().read_models()
        self._stores.append(store)
        return store

    def close(self) -> None:
        """Close what was opened here and drop the MongoDB databases."""
        for store in reversed(self._stores):
            store.close()
        self._stores.clear()
        if self._provider is not None:
            self._provider.close()
            self._provider = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.database is not None and self.mongodb_url is not None:
            mongo.drop_databases(self.mongodb_url, self.database)

    # -- the read models, read as another reader would -------------------------------------

    @property
    def read_models_file(self) -> Path:
        """The SQLite read-model file's base name (a rebuild serves another, named by the
        pointer file beside it)."""
        return self.settings().read_models_path

    def read_models_database(self) -> Database[dict[str, Any]]:
        """The MongoDB read-model database, through a client of the test's own."""
        assert self.mongodb_url is not None and self.database is not None
        if self._client is None:
            from pymongo import MongoClient

            self._client = MongoClient(self.mongodb_url, uuidRepresentation="standard")
        return self._client[self.database + "_read"]

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        if self.name == "sqlite":
            condition = " AND ".join(f"{k} = ?" for k in where) or "1"
            return self._query(f"SELECT * FROM {table} WHERE {condition}", tuple(where.values()))
        key = {"tracking": "name", "meta": "key"}.get(table)
        if key is not None and key in where:
            where = {"_id": where.pop(key), **where}
        found = []
        for document in self.collection(table).find(where):
            _id = document.pop("_id")
            if key is not None:
                document = {key: _id, **document}
            found.append(document)
        return found

    def count(self, table: str) -> int:
        return len(self.rows(table))

    def tracked(self, name: str) -> int:
        found = self.rows("tracking", name=name)
        return int(found[0]["position"]) if found else 0

    def tables(self) -> list[str]:
        if self.name == "sqlite":
            found = self._query("SELECT name FROM sqlite_master WHERE type='table'")
            return [r["name"] for r in found]
        generation = self.serving()
        end = f"__{generation}" if generation else ""
        names = self.read_models_database().list_collection_names()
        if generation:
            return [n.removesuffix(end) for n in names if n.endswith(end)]
        return [n for n in names if "__" not in n and n != "read_models"]

    def dump(self, meta: bool = True) -> dict[str, list[str]]:
        """Every table, rows in a canonical order (tracking included)."""
        return {
            t: sorted(json.dumps(r, sort_keys=True) for r in self.rows(t))
            for t in sorted(self.tables())
            if meta or t != "meta"
        }

    def serving(self) -> str:
        """Which read models are in service (a file's name, or a generation)."""
        if self.name == "sqlite":
            return self.serving_file().name
        found = self.read_models_database()["read_models"].find_one({"_id": "current"})
        return str(found["generation"]) if found else ""

    def leftovers(self) -> list[str]:
        """What a rebuild left beside the read models in service (should be nothing)."""
        if self.name == "sqlite":
            return [p.name for p in self.read_models_file.parent.glob("*.building*")]
        current = self.serving()
        return [
            n
            for n in self.read_models_database().list_collection_names()
            if "__" in n and not n.endswith(f"__{current}")
        ]

    def abandon(self, building: Building) -> None:
        """Leave `building` as a killed rebuild does: its files or collections stay, what
        its process held in the kernel (SQLite's rebuild lock) goes."""
        from storage.sqlite.read_models import SQLiteBuilding

        if isinstance(building, SQLiteBuilding):
            building.store.close()
            building._lock.close()  # released by the kernel when a process dies

    def serving_file(self) -> Path:
        """The SQLite read-model file in service."""
        base = self.read_models_file
        pointer = base.with_name(base.name + ".current")
        return base.with_name(pointer.read_text().strip()) if pointer.exists() else base

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.serving_file())
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(sql, params).fetchall()]
        finally:
            db.close()

    def collection(self, table: str) -> Any:
        """The MongoDB collection in service for a read-model table (the test's own client)."""
        generation = self.serving()
        return self.read_models_database()[table + (f"__{generation}" if generation else "")]
