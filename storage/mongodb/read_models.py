"""MongoDB read models (through pymongo) and their tracking positions.

One collection per table, named as the table, one document per row with the same
fields and value types as the SQLite columns; `_id` is the primary key (a subdocument
for composite keys, whose fields are also kept at the top level). Each batch of writes
is one multi-document transaction together with the `tracking` document.

Generations: a rebuild fills collections named `<table>__<generation>` and then
switches the pointer document (`read_models` collection, `_id: "current"`) in one
transaction. Every live transaction first writes that pointer document, so a live
batch and the switch can never both commit against the old generation: one of them
meets a write conflict and is retried. Readers find the collections in service
through `collection(name)`, never by spelling the suffix themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from eventsourcing.persistence import IntegrityError
from pymongo import ASCENDING, InsertOne, MongoClient, ReturnDocument, UpdateMany, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from projections.rows import Building, ReadModels, Rows, Table
from storage.mongodb.datastore import translated, translated_errors

T = TypeVar("T")

POINTER = "read_models"
CURRENT = "current"
SEPARATOR = "__"
COPY_BATCH = 1000


def suffix(generation: str) -> str:
    return f"{SEPARATOR}{generation}" if generation else ""


class MongoReadModelStore(ReadModels):
    """The read models in service in one MongoDB database (a replica set: transactions),
    through the process's one client.

    With `generation` given, the store is pinned to that generation and writes without
    transactions: it is a rebuild's work in progress, which nobody reads and which an
    interrupted rebuild drops.
    """

    def __init__(
        self,
        client: MongoClient[dict[str, Any]],
        database: str,
        *,
        generation: str | None = None,
    ) -> None:
        self.client = client
        self.database: Database[dict[str, Any]] = client.get_database(
            database,
            write_concern=WriteConcern("majority"),
            read_concern=ReadConcern("majority"),
        )
        self.pinned = generation
        self.tables: dict[str, Table] = {}
        if generation is None:
            # Made before any transaction needs it (a first upsert inside racing
            # transactions can fail).
            with translated_errors():
                self.database[POINTER].update_one(
                    {"_id": CURRENT},
                    {"$setOnInsert": {"generation": "", "writes": 0}},
                    upsert=True,
                )

    # -- which collections --------------------------------------------------------------

    def generation(self, session: ClientSession | None = None) -> str:
        if self.pinned is not None:
            return self.pinned
        found = self.database[POINTER].find_one({"_id": CURRENT}, session=session)
        return found["generation"] if found else ""

    def collection(self, name: str) -> Collection[dict[str, Any]]:
        """The collection in service for table `name` (how the query side finds it)."""
        return self.database[name + suffix(self.generation())]

    def _hold(self, session: ClientSession) -> str:
        """Write the pointer document in this transaction and return the generation."""
        found = self.database[POINTER].find_one_and_update(
            {"_id": CURRENT},
            {"$inc": {"writes": 1}},
            session=session,
            return_document=ReturnDocument.AFTER,
        )
        return found["generation"] if found else ""

    # -- the provider-neutral interface ---------------------------------------------------

    @translated
    def ensure(self, tables: Iterable[Table]) -> None:
        end = suffix(self.generation())
        existing = set(self.database.list_collection_names())
        for table in tables:
            self.tables[table.name] = table
            name = table.name + end
            if name not in existing:
                self.database.create_collection(name)
            create_indexes(self.database[name], table)

    @translated
    def atomically(self, work: Callable[[Rows], T]) -> T:
        def unit(session: ClientSession, generation: str) -> T:
            rows = MongoRows(self.database, generation, self.tables, session)
            result = work(rows)
            rows.flush()
            return result

        with self.client.start_session() as session:
            if self.pinned is not None:
                return unit(session, self.pinned)
            return session.with_transaction(lambda s: unit(s, self._hold(s)))

    @translated
    def meta(self, key: str) -> str | None:
        found = self.collection("meta").find_one({"_id": key})
        return found["value"] if found else None

    @translated
    def position(self, name: str) -> int:
        found = self.collection("tracking").find_one({"_id": name})
        return int(found["position"]) if found else 0

    @translated
    def tracked_count(self) -> int:
        return self.collection("tracking").count_documents({})

    @translated
    def building(self) -> MongoBuilding:
        return MongoBuilding(self)

    def close(self) -> None:
        """Nothing to release: the client is the storage provider's (one per process)."""

    # -- generations ----------------------------------------------------------------------

    @translated
    def collections_of(self, generation: str) -> list[str]:
        names = self.database.list_collection_names()
        if generation:
            return [n for n in names if n.endswith(suffix(generation))]
        return [n for n in names if SEPARATOR not in n and n != POINTER]

    @translated
    def generations(self) -> set[str]:
        return {
            n.rsplit(SEPARATOR, 1)[1] if SEPARATOR in n else ""
            for n in self.database.list_collection_names()
            if n != POINTER
        }


class MongoRows(Rows):
    """Writes buffered per collection, sent as one ordered `bulk_write` per collection.

    Collections are independent, so each keeps its own order; `get` flushes its
    collection first, so it sees every earlier write of the unit of work.
    """

    def __init__(
        self,
        database: Database[dict[str, Any]],
        generation: str,
        tables: Mapping[str, Table],
        session: ClientSession,
    ) -> None:
        self.database = database
        self.end = suffix(generation)
        self.tables = tables
        self.session = session
        self._pending: dict[str, list[Any]] = {}

    def _queue(self, table: str, operation: Any) -> None:
        pending = self._pending.get(table)
        if pending is None:
            pending = self._pending[table] = []
        pending.append(operation)

    def _id(self, table: str, key: Any) -> Any:
        pk = self.tables[table].pk
        return key if len(pk) == 1 else {k: key[k] for k in pk}

    def _row_id(self, table: str, row: dict[str, Any]) -> Any:
        pk = self.tables[table].pk
        return self._id(table, row[pk[0]] if len(pk) == 1 else row)

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self._queue(table, InsertOne({"_id": self._row_id(table, row), **row}))

    def update(self, table: str, key: Any, values: dict[str, Any]) -> None:
        self._queue(table, UpdateOne({"_id": self._id(table, key)}, {"$set": values}))

    def advance(
        self,
        table: str,
        where: dict[str, Any],
        column: str,
        value: str,
        rank: Mapping[str, int],
        also: dict[str, Any] | None = None,
    ) -> None:
        # As SQLite's CASE: a value that is not ranked counts as 0.
        wanted = rank.get(value, 0)
        if wanted > 0:
            condition: dict[str, Any] = {"$nin": [s for s, r in rank.items() if r >= wanted]}
        else:
            condition = {"$in": [s for s, r in rank.items() if r < wanted]}
        changes = {column: value, **(also or {})}
        self._queue(table, UpdateMany({**where, column: condition}, {"$set": changes}))

    def add(self, table: str, key: dict[str, Any], counts: dict[str, int]) -> None:
        spec = self.tables[table]
        _id = {k: key[k] for k in spec.pk}
        increments = {c: counts.get(c, 0) for c in sorted(spec.counters)}
        self._queue(
            table,
            UpdateOne(
                {"_id": _id},
                {"$inc": increments, "$setOnInsert": dict(_id)},
                upsert=True,
            ),
        )

    def merge(self, table: str, row: dict[str, Any], keep: tuple[str, ...]) -> None:
        _id = self._row_id(table, row)
        known = {k: row[k] for k in keep if row[k] is not None}
        update: dict[str, Any] = {"$setOnInsert": {k: v for k, v in row.items() if k not in known}}
        if known:
            update["$set"] = known
        self._queue(table, UpdateOne({"_id": _id}, update, upsert=True))

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        self.flush(table)
        found = self.database[table + self.end].find_one(
            {"_id": self._id(table, key)}, session=self.session
        )
        if found is None:
            return None
        found.pop("_id")
        return found

    def find(self, table: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        self.flush(table)
        found = list(self.database[table + self.end].find(where, session=self.session))
        for row in found:
            row.pop("_id")
        return found

    def position(self, name: str) -> int:
        found = self.database["tracking" + self.end].find_one({"_id": name}, session=self.session)
        return int(found["position"]) if found else 0

    def track(self, name: str, position: int) -> None:
        if self.position(name) >= position:
            raise IntegrityError(f"{name} already processed position {position}")
        self.database["tracking" + self.end].update_one(
            {"_id": name}, {"$set": {"position": position}}, upsert=True, session=self.session
        )

    def set_meta(self, key: str, value: str) -> None:
        self.database["meta" + self.end].update_one(
            {"_id": key}, {"$set": {"value": value}}, upsert=True, session=self.session
        )

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table is not None else list(self._pending):
            pending = self._pending.pop(name, None)
            if not pending:
                continue
            try:
                self.database[name + self.end].bulk_write(
                    pending, ordered=True, session=self.session
                )
            except Exception as error:
                # A duplicate key is the same mistake as SQLite's integrity error.
                details = getattr(error, "details", None) or {}
                if any(e.get("code") == 11000 for e in details.get("writeErrors", [])):
                    raise IntegrityError(str(error)) from error
                if isinstance(error, DuplicateKeyError):
                    raise IntegrityError(str(error)) from error
                raise


class MongoBuilding(Building):
    """Collections of a new generation, put in service by switching the pointer."""

    store: MongoReadModelStore  # the new read models

    def __init__(self, live: MongoReadModelStore) -> None:
        self.live = live
        current = live.generation()
        for leftover in live.generations() - {current}:  # from an interrupted rebuild
            for name in live.collections_of(leftover):
                live.database.drop_collection(name)
        self.name = f"g{time.time_ns()}"
        self.store = MongoReadModelStore(live.client, live.database.name, generation=self.name)

    def fast(self) -> None:
        """Already fast: the building generation is written without transactions."""

    @translated
    def copy(self, tables: Sequence[str], tracking_name: str) -> int:
        target = self.store.database
        end = suffix(self.name)
        with (
            self.live.client.start_session() as session,
            session.start_transaction(read_concern=ReadConcern("snapshot")),
        ):
            # One snapshot of the collections in service for every table and the position
            # (a transaction: mongod's transactionLifetimeLimitSeconds, 60 s by default,
            # bounds how much can be kept this way; a full rebuild copies nothing).
            generation = self.live.generation(session)
            source = self.live.database
            found = source["tracking" + suffix(generation)].find_one(
                {"_id": tracking_name}, session=session
            )
            for table in tables:
                batch: list[dict[str, Any]] = []
                for document in source[table + suffix(generation)].find({}, session=session):
                    batch.append(document)
                    if len(batch) >= COPY_BATCH:
                        target[table + end].insert_many(batch)
                        batch = []
                if batch:
                    target[table + end].insert_many(batch)
        return int(found["position"]) if found else 0

    @translated
    def swap_in(self, catch_up: Callable[[], None]) -> str:
        live = self.live
        previous = live.generation()

        def switch(session: ClientSession) -> None:
            live._hold(session)  # from here until commit, live batches conflict and retry
            catch_up()
            live.database[POINTER].update_one(
                {"_id": CURRENT}, {"$set": {"generation": self.name}}, session=session
            )

        with live.client.start_session() as session:
            session.with_transaction(switch)
        for name in live.collections_of(previous):
            live.database.drop_collection(name)
        return f"generation {self.name}"

    @translated
    def discard(self) -> None:
        if self.live.generation() == self.name:
            return  # already in service: nothing to undo
        for name in self.live.collections_of(self.name):
            self.live.database.drop_collection(name)


def create_indexes(collection: Any, table: Table) -> None:
    """The indexes of `table` (as on SQLite) on one of its collections.

    A composite primary key is indexed on its top-level fields too: the queries filter on
    them, and the `_id` subdocument's index serves none of them.
    """
    for columns, unique in table.indexes:
        collection.create_index(
            [(c, ASCENDING) for c in columns],
            unique=unique,
            name="idx_" + "_".join(columns),
        )
    if len(table.pk) > 1:
        collection.create_index(
            [(c, ASCENDING) for c in table.pk],
            name="idx_" + "_".join(table.pk),
        )
