"""Read-model providers for the tests: make stores, and read what they hold independently.

Every projection test takes the parametrised `provider` fixture (conftest.py) and runs
once on SQLite and once on MongoDB. Rows are read through a connection of the test's
own, as another reader would see them, in one shape for both providers: dicts of
column -> value (MongoDB's `_id` left out; tracking as name/position, meta as key/value).
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from projections.rows import ReadModels
from storage.mongodb.read_models import MongoReadModelStore
from storage.sqlite.read_models import ReadModelStore


class Provider(ABC):
    name: str

    @abstractmethod
    def store(self) -> ReadModels:
        """A store object over the read models in service (a new one at each call)."""

    @abstractmethod
    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]: ...

    @abstractmethod
    def tables(self) -> list[str]: ...

    @abstractmethod
    def leftovers(self) -> list[str]:
        """What a rebuild left beside the read models in service (should be nothing)."""

    @abstractmethod
    def serving(self) -> str:
        """Which read models are in service (a file, or a generation)."""

    def count(self, table: str) -> int:
        return len(self.rows(table))

    def tracked(self, name: str) -> int:
        found = self.rows("tracking", name=name)
        return found[0]["position"] if found else 0

    def dump(self, meta: bool = True) -> dict[str, list[str]]:
        """Every table, rows in a canonical order (tracking included)."""
        return {
            t: sorted(json.dumps(r, sort_keys=True) for r in self.rows(t))
            for t in sorted(self.tables())
            if meta or t != "meta"
        }

    def close(self) -> None:
        """Release what the provider holds (nothing, unless a subclass says otherwise)."""
        return None


class SQLiteProvider(Provider):
    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.path = root / "read.db"

    def store(self) -> ReadModelStore:
        return ReadModelStore(self.path)

    def _file(self) -> Path:
        pointer = self.path.with_name(self.path.name + ".current")
        return self.path.with_name(pointer.read_text().strip()) if pointer.exists() else self.path

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        db = sqlite3.connect(self._file())
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(sql, params).fetchall()]
        finally:
            db.close()

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        condition = " AND ".join(f"{k} = ?" for k in where) or "1"
        return self._query(f"SELECT * FROM {table} WHERE {condition}", tuple(where.values()))

    def tables(self) -> list[str]:
        return [r["name"] for r in self._query("SELECT name FROM sqlite_master WHERE type='table'")]

    def leftovers(self) -> list[str]:
        return [p.name for p in self.path.parent.glob("*.building*")]

    def serving(self) -> str:
        return self._file().name


class MongoProvider(Provider):
    name = "mongodb"
    KEYS = {"tracking": "name", "meta": "key"}

    def __init__(self, url: str, database: str, *, drop: bool = False) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(url)
        self.database = database
        self._drop = drop

    def store(self) -> MongoReadModelStore:
        return MongoReadModelStore(self.client, self.database)

    def _reader(self) -> MongoReadModelStore:
        return MongoReadModelStore(self.client, self.database)

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        key = self.KEYS.get(table)
        if key is not None and key in where:
            where = {"_id": where.pop(key), **where}
        found = []
        for document in self._reader().collection(table).find(where):
            _id = document.pop("_id")
            if key is not None:
                document = {key: _id, **document}
            found.append(document)
        return found

    def tables(self) -> list[str]:
        generation = self._reader().generation()
        return [
            n.removesuffix(f"__{generation}") if generation else n
            for n in self._reader().collections_of(generation)
        ]

    def leftovers(self) -> list[str]:
        reader = self._reader()
        current = reader.generation()
        return [n for g in reader.generations() - {current} for n in reader.collections_of(g)]

    def serving(self) -> str:
        return self._reader().generation()

    def close(self) -> None:
        if self._drop:
            self.client.drop_database(self.database)
        self.client.close()
