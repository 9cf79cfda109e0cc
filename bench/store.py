"""Event store benchmark: the recorders of each provider against their raw driver.

For SQLite and for MongoDB, in the same run and on the same documents: appends of one
event per save, appends of batches, and reading the whole sequence, each next to the raw
driver doing the same work (sqlite3 `executemany` + commit on an identical table in WAL with
synchronous=FULL; pymongo `insert_many` with w:majority into a collection with the same
unique index). Reads are compared with one raw cursor over everything and with raw reads in
the recorder's pages (`_id`/rowid after the last one). Recorder and raw driver alternate for a few rounds on fresh events and the
best rate of each is kept. Prints each rate and the ratio recorder/raw.

MongoDB is MONGODB_TEST_URL if set (a real mongod), else a SecantusDB started here (a
test-only tool, 2-27x slower than mongod: its figures say little about production).

    .venv/bin/python bench/store.py [--events 10000] [--single 200] [--batch 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from pymongo import ASCENDING, MongoClient
from pymongo.write_concern import WriteConcern

from app.eventstore import EventStore
from storage.mongodb.events import environment as mongodb_env
from storage.sqlite.events import environment as sqlite_env
from tests import mongo

TOPIC = "domain.instance:Instance.MessageSent"
READ_PAGE = 5000


def events(n: int, per_aggregate: int) -> list[StoredEvent]:
    """n events over n/per_aggregate aggregates, with a message-sized state."""
    state = os.urandom(240)
    out: list[StoredEvent] = []
    while len(out) < n:
        aggregate = uuid4()
        out += [StoredEvent(aggregate, v, TOPIC, state) for v in range(1, per_aggregate + 1)]
    return out[:n]


def rate(count: int, work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


class Raw:
    """The driver alone: what the recorder's work costs without the recorder."""

    def append(self, batch: list[StoredEvent]) -> None:
        raise NotImplementedError

    def read_all(self) -> int:
        raise NotImplementedError

    def read_paged(self) -> int:
        """Read all in pages of READ_PAGE after the last position, as the recorder does."""
        raise NotImplementedError


class RawSQLite(Raw):
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE raw (originator_id TEXT, originator_version INTEGER, topic TEXT, "
            "state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )

    def append(self, batch: list[StoredEvent]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO raw VALUES (?, ?, ?, ?)",
            [(str(s.originator_id), s.originator_version, s.topic, s.state) for s in batch],
        )
        self.db.execute("COMMIT")

    def read_all(self) -> int:
        rows = self.db.execute("SELECT rowid, * FROM raw ORDER BY rowid").fetchall()
        return len([(r[0], UUID(r[1]), r[2], r[3], r[4]) for r in rows])

    def read_paged(self) -> int:
        last, count = 0, 0
        while rows := self.db.execute(
            "SELECT rowid, * FROM raw WHERE rowid > ? ORDER BY rowid LIMIT ?", [last, READ_PAGE]
        ).fetchall():
            count += len([(r[0], UUID(r[1]), r[2], r[3], r[4]) for r in rows])
            last = rows[-1][0]
        return count


class RawMongo(Raw):
    def __init__(self, url: str, database: str) -> None:
        self.client: MongoClient[dict[str, Any]] = MongoClient(url, uuidRepresentation="standard")
        self.raw = self.client.get_database(database, write_concern=WriteConcern("majority"))["raw"]
        self.raw.create_index(
            [("originator_id", ASCENDING), ("originator_version", ASCENDING)], unique=True
        )
        self.next = 1

    def append(self, batch: list[StoredEvent]) -> None:
        documents = [
            {
                "_id": self.next + i,
                "originator_id": s.originator_id,
                "originator_version": s.originator_version,
                "topic": s.topic,
                "state": s.state,
            }
            for i, s in enumerate(batch)
        ]
        self.next += len(batch)
        self.raw.insert_many(documents, ordered=True)

    def read_all(self) -> int:
        found = self.raw.find({}, sort=[("_id", ASCENDING)], batch_size=READ_PAGE)
        return len([(d["_id"], d["originator_id"], d["topic"], d["state"]) for d in found])

    def read_paged(self) -> int:
        last, count = 0, 0
        while page := list(
            self.raw.find(
                {"_id": {"$gt": last}},
                sort=[("_id", ASCENDING)],
                limit=READ_PAGE,
                batch_size=READ_PAGE,
                hint=[("_id", ASCENDING)],
            )
        ):
            count += len([(d["_id"], d["originator_id"], d["topic"], d["state"]) for d in page])
            last = page[-1]["_id"]
        return count


def read_all(recorder: ApplicationRecorder) -> int:
    position, count = 0, 0
    while True:
        page = recorder.select_notifications(
            start=position, limit=READ_PAGE, inclusive_of_start=False
        )
        if not page:
            return count
        count += len(page)
        position = page[-1].id


def best_of(
    rounds: int,
    count: int,
    ours: Callable[[list[StoredEvent]], None],
    theirs: Callable[[list[StoredEvent]], None],
    make: Callable[[], list[StoredEvent]],
) -> tuple[float, float]:
    """Alternate recorder and raw driver on fresh events; the best rate of each."""
    best = [0.0, 0.0]
    for _ in range(rounds):
        for side, work in enumerate((ours, theirs)):
            batch = make()
            best[side] = max(best[side], rate(count, lambda w=work, b=batch: w(b)))  # type: ignore[misc]
    return best[0], best[1]


def measure(name: str, store: EventStore, raw: Raw, args: argparse.Namespace) -> list[str]:
    recorder = store.recorder
    assert isinstance(recorder, ApplicationRecorder)
    rounds, size = args.rounds, args.batch

    def singly(target: Callable[[list[StoredEvent]], Any]) -> Callable[[list[StoredEvent]], None]:
        def run(batch: list[StoredEvent]) -> None:
            for event in batch:
                target([event])

        return run

    def batched(target: Callable[[list[StoredEvent]], Any]) -> Callable[[list[StoredEvent]], None]:
        def run(batch: list[StoredEvent]) -> None:
            for i in range(0, len(batch), size):
                target(batch[i : i + size])

        return run

    figures = {
        "append, 1 event per save": best_of(
            rounds,
            args.single,
            singly(recorder.insert_events),
            singly(raw.append),
            lambda: events(args.single, 1),
        ),
        f"append, {size} events per save": best_of(
            rounds,
            args.events,
            batched(recorder.insert_events),
            batched(raw.append),
            lambda: events(args.events, size),
        ),
    }
    total = rounds * (args.single + args.events)
    got: list[int] = []
    figures[f"read all {total:,} events"] = best_of(
        rounds,
        total,
        lambda _: got.append(read_all(recorder)),
        lambda _: got.append(raw.read_all()),
        list,
    )
    figures[f"read all, raw in pages of {READ_PAGE}"] = best_of(
        rounds,
        total,
        lambda _: got.append(read_all(recorder)),
        lambda _: got.append(raw.read_paged()),
        list,
    )
    assert set(got) == {total}, got
    lines = []
    for what, (ours, theirs) in figures.items():
        lines.append(
            f"{name:<8} {what:<32} {ours:>10,.0f} ev/s   raw driver {theirs:>10,.0f} ev/s"
            f"   ratio {ours / theirs:5.2f}"
        )
    return lines


@contextlib.contextmanager
def mongodb_server() -> Iterator[tuple[str, str]]:
    url = os.environ.get(mongo.TEST_URL)
    if url:
        yield url, "a MongoDB server at MONGODB_TEST_URL"
        return
    with mongo.secantus() as started:
        yield started, "SecantusDB 0.7.0b3 (in a child process, :memory: storage)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--events", type=int, default=10_000, help="events appended in batches per round"
    )
    parser.add_argument("--single", type=int, default=200, help="single-event saves per round")
    parser.add_argument("--batch", type=int, default=100, help="events per batched save")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (best is kept)")
    args = parser.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        store = EventStore(env=sqlite_env(str(Path(scratch) / "es.db")))
        try:
            lines += measure("sqlite", store, RawSQLite(Path(scratch) / "raw.db"), args)
        finally:
            store.close()
    for line in lines:
        print(line, flush=True)
    with mongodb_server() as (url, server):
        database = mongo.new_database_name("bench")
        store = EventStore(env=mongodb_env(mongo.with_database(url, database)))
        try:
            mongo_lines = measure("mongodb", store, RawMongo(url, database), args)
        finally:
            store.close()
            mongo.drop_database(url, database)
    for line in mongo_lines:
        print(line, flush=True)
    print(f"mongodb measured on {server}")


if __name__ == "__main__":
    main()
