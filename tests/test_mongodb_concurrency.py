"""The MongoDB event store under concurrency: threads and processes appending, subscribers
that see every event exactly once in position order, a late commit, a dropped stream."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent

from storage.mongodb.datastore import MongoDatastore
from storage.mongodb.events import MongoApplicationRecorder
from tests import mongo
from tests.mongo_appender import append_to_shared
from tests.server import wait_until

ROOT = Path(__file__).resolve().parents[1]
WAIT = 30.0  # upper bound for anything that should take well under a second


@pytest.fixture()
def recorder(mongodb_url: str, mongodb_database: str) -> Iterator[MongoApplicationRecorder]:
    datastore = MongoDatastore(mongodb_url, mongodb_database)
    recorder = MongoApplicationRecorder(datastore, "stored_events")
    recorder.create_table()
    yield recorder
    datastore.close()


class Collector:
    """Reads a subscription in a thread until it has `expected` notifications."""

    def __init__(self, recorder: MongoApplicationRecorder, expected: int, gt: int | None = None):
        self.expected = expected
        self.seen: list[Notification] = []
        self.done = threading.Event()
        self.subscription = recorder.subscribe(gt=gt)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.subscription:
            for notification in self.subscription:
                self.seen.append(notification)
                if len(self.seen) >= self.expected:
                    break
        self.done.set()

    def wait(self) -> list[Notification]:
        finished = self.done.wait(WAIT)
        self.subscription.stop()
        assert finished, f"saw {len(self.seen)} of {self.expected} events"
        return self.seen


def event(originator_id: UUID, version: int, topic: str = "t") -> StoredEvent:
    return StoredEvent(originator_id, version, topic, f"{originator_id}/{version}".encode())


def assert_exactly_once_in_order(seen: list[Notification], total: int, first: int = 1) -> None:
    assert [n.id for n in seen] == list(range(first, first + total))
    keys = [(n.originator_id, n.originator_version) for n in seen]
    assert len(set(keys)) == total


def test_threads_appending_to_different_aggregates(recorder: MongoApplicationRecorder) -> None:
    threads, saves, batch = 6, 15, 3
    collector = Collector(recorder, threads * saves * batch)

    def writer(_: int) -> list[int]:
        aggregate = uuid4()
        positions: list[int] = []
        for save in range(saves):
            ids = recorder.insert_events(
                [event(aggregate, save * batch + v + 1) for v in range(batch)]
            )
            assert ids is not None
            positions += ids
        return positions

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(writer, range(threads)))

    # Each save got consecutive positions; together they are 1..N without gaps or repeats.
    for positions in results:
        for save in range(saves):
            chunk = positions[save * batch : (save + 1) * batch]
            assert chunk == list(range(chunk[0], chunk[0] + batch))
    everything = sorted(p for positions in results for p in positions)
    assert everything == list(range(1, threads * saves * batch + 1))
    seen = collector.wait()
    assert_exactly_once_in_order(seen, threads * saves * batch)
    # Each aggregate's events come in version order.
    for positions in results:
        ours = [n for n in seen if n.id in set(positions)]
        assert [n.originator_version for n in ours] == list(range(1, saves * batch + 1))


def test_threads_appending_to_the_same_aggregate(recorder: MongoApplicationRecorder) -> None:
    shared = uuid4()
    threads, saves = 4, 10
    collector = Collector(recorder, threads * saves)

    with ThreadPoolExecutor(threads) as pool:
        conflicts = sum(
            pool.map(
                lambda i: sum(
                    append_to_shared(recorder, shared, f"thread {i}") for _ in range(saves)
                ),
                range(threads),
            )
        )

    stored = recorder.select_events(shared)
    assert [s.originator_version for s in stored] == list(range(1, threads * saves + 1))
    seen = collector.wait()
    assert_exactly_once_in_order(seen, threads * saves)
    assert [n.originator_version for n in seen] == list(range(1, threads * saves + 1))
    assert conflicts >= 0  # how many depends on scheduling; each one was retried


def test_a_version_conflict_stores_nothing_of_that_save(recorder: MongoApplicationRecorder) -> None:
    aggregate = uuid4()
    recorder.insert_events([event(aggregate, 1)])
    with pytest.raises(IntegrityError):
        recorder.insert_events([event(aggregate, 2), event(aggregate, 1)])
    assert [s.originator_version for s in recorder.select_events(aggregate)] == [1]
    # The failed save's positions were not used up: the next save follows on.
    assert recorder.insert_events([event(aggregate, 2)]) == [2]


def test_two_processes_appending_to_their_own_and_a_shared_aggregate(
    recorder: MongoApplicationRecorder,
    mongodb_url: str,
    mongodb_database: str,
) -> None:
    count = 25
    shared = uuid4()
    owners = [uuid4(), uuid4()]
    collector = Collector(recorder, 4 * count)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.mongo_appender",
                mongodb_url,
                mongodb_database,
                str(own),
                str(shared),
                str(count),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for own in owners
    ]
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0
        assert f"appended {2 * count} events" in output

    for own in owners:
        assert [s.originator_version for s in recorder.select_events(own)] == list(
            range(1, count + 1)
        )
    shared_events = recorder.select_events(shared)
    assert [s.originator_version for s in shared_events] == list(range(1, 2 * count + 1))
    assert {s.state for s in shared_events} == {str(o).encode() for o in owners}
    seen = collector.wait()
    assert_exactly_once_in_order(seen, 4 * count)


def test_an_append_waits_for_one_that_took_a_position_and_has_not_committed(
    recorder: MongoApplicationRecorder,
) -> None:
    """The late commit: positions are taken in commit order, so gt=last never skips one."""
    first, second = uuid4(), uuid4()
    holding = threading.Event()
    release = threading.Event()
    taken: list[int] = []

    def slow_append() -> None:
        def body(session: object) -> None:
            taken[:] = recorder._insert(session, [event(first, 1)])  # type: ignore[arg-type]
            holding.set()
            release.wait(WAIT)

        recorder.datastore.transaction(body)

    slow = threading.Thread(target=slow_append)
    slow.start()
    assert holding.wait(WAIT)
    later_done = threading.Event()
    later: list[int] = []

    def fast_append() -> None:
        later[:] = recorder.insert_events([event(second, 1)]) or []
        later_done.set()

    # Count the second append's attempts: a retry is the proof that it met the open one.
    attempts: list[int] = []
    insert = recorder._insert

    def counted(session: Any, stored_events: Any, **kwargs: Any) -> list[int]:
        if stored_events[0].originator_id == second:
            attempts.append(1)
        return insert(session, stored_events, **kwargs)

    recorder._insert = counted  # type: ignore[method-assign]
    fast = threading.Thread(target=fast_append)
    fast.start()
    # While the first transaction is open, the second cannot commit: it conflicts on the
    # position counter and retries (not a fixed wait: a retry is seen), and readers see
    # neither.
    wait_until(lambda: len(attempts) >= 2, timeout=WAIT)  # the second append retried
    assert not later_done.is_set()
    assert recorder.select_notifications(start=None, limit=10) == []
    release.set()
    slow.join(WAIT)
    fast.join(WAIT)
    assert later == [taken[0] + 1]
    assert [n.originator_id for n in recorder.select_notifications(None, 10)] == [first, second]


def test_a_subscription_resumes_after_its_stream_dropped(tmp_path: Path) -> None:
    """The server goes away under a live subscription and comes back: nothing is missed."""
    if os.environ.get(mongo.TEST_URL):
        pytest.skip("restarts a SecantusDB of its own")
    port = mongo.free_port()
    storage = tmp_path / "db"
    aggregate = uuid4()
    with mongo.secantus(storage, port) as url:
        datastore = MongoDatastore(url, "resume", timeout=30)
        recorder = MongoApplicationRecorder(datastore, "stored_events")
        recorder.create_table()
        recorder.insert_events([event(aggregate, 1)])
        collector = Collector(recorder, 6)
        recorder.insert_events([event(aggregate, 2)])
        wait_until(lambda: len(collector.seen) >= 2 or collector.done.is_set(), timeout=WAIT)
    # The server is down; the subscription keeps trying to reopen its stream.
    with mongo.secantus(storage, port) as url:
        # Another process's appends: only the reopened change stream can ring for them.
        appender = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.mongo_appender",
                url,
                "resume",
                str(uuid4()),
                str(aggregate),
                "2",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert appender.returncode == 0, appender.stderr
        seen = collector.wait()
        datastore.close()
    ours = [n.originator_version for n in seen if n.originator_id == aggregate]
    assert ours == [1, 2, 3, 4]
    assert_exactly_once_in_order(seen, 6)
