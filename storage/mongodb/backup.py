"""The MongoDB provider's part of a backup: the event store's collections, as BSON files
(what mongodump writes), read through pymongo in an order that makes them consistent
while a server appends:

1. the webhook cursors: read first, none can point past the events read afterwards;
2. the snapshots: each is saved after the events it sums up were committed;
3. the position counter: it moves in the same transaction as the events that take its
   positions, so every event up to the value read is committed and visible;
4. every event up to that value, in position order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from storage.mongodb.cursors import COLLECTION as CURSORS
from storage.mongodb.datastore import MongoDatastore, translated_errors
from storage.mongodb.events import POSITIONS, MongoAggregateRecorder, MongoApplicationRecorder
from storage.provider import BackedUp, Step

BATCH = 1000
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)


def backup(
    datastore: MongoDatastore, events: str, snapshots: str, into: Path, step: Step
) -> BackedUp:
    into.mkdir(parents=True, exist_ok=True)
    db = datastore.db
    raw = db.with_options(codec_options=RAW)
    with translated_errors():
        cursors = _dump(raw[CURSORS].find(), into / f"{CURSORS}.bson")
        _dump(raw[snapshots].find(), into / f"{snapshots}.bson")
        counter = db[POSITIONS].find_one({"_id": events})
        position = int(counter["last"]) if counter else 0
        count = 0

        def noted(documents: Iterator[Any]) -> Iterator[Any]:
            nonlocal count
            for document in documents:
                count += 1
                if count % BATCH == 0:
                    step("event store", count, position)
                yield document

        found = raw[events].find({"_id": {"$lte": position}}, sort=[("_id", 1)])
        _dump(noted(found), into / f"{events}.bson")
        step("event store", count, position)
    return BackedUp(position, count, cursors)


def held(datastore: MongoDatastore, events: str) -> list[str]:
    db = datastore.db
    with translated_errors():
        return [
            f"the MongoDB collection {db.name}.{name} holds documents"
            for name in (events, CURSORS)
            if db[name].find_one({}, projection={"_id": 1}) is not None
        ]


def erase(datastore: MongoDatastore, events: str, snapshots: str, read_models: str) -> None:
    db = datastore.db
    with translated_errors():
        for name in (events, snapshots, POSITIONS, CURSORS):
            db.drop_collection(name)
        db.client.drop_database(read_models)


def restore(
    datastore: MongoDatastore,
    events: str,
    snapshots: str,
    source: Path,
    backed_up: BackedUp,
    step: Step,
) -> None:
    # The collections and indexes, as an event store opened for the first time makes them.
    MongoApplicationRecorder(datastore, events).create_table()
    MongoAggregateRecorder(datastore, snapshots).create_table()
    db = datastore.db
    with translated_errors():
        for collection in (events, snapshots, CURSORS):
            path = source / f"{collection}.bson"
            loaded = 0
            with path.open("rb") as file:
                for batch in _batches(bson.decode_file_iter(file, codec_options=RAW)):
                    db[collection].insert_many(batch, ordered=True)
                    loaded += len(batch)
                    if collection == events:
                        step("event store", loaded, backed_up.events)
        db[POSITIONS].update_one(
            {"_id": events}, {"$max": {"last": backed_up.position}}, upsert=True
        )


def _dump(documents: Iterator[Any], path: Path) -> int:
    """Documents as concatenated BSON; how many."""
    count = 0
    with path.open("wb") as out:
        for document in documents:
            out.write(
                document.raw if isinstance(document, RawBSONDocument) else bson.encode(document)
            )
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
