"""The event store on each provider (a real SQLite file; MongoDB on the test server):
saving, group commit, subscriptions, snapshots."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError, Notification

import storage.sqlite.events as sqlite_recorder
from app.eventstore import SNAPSHOT_INTERVAL, EventStore, GroupCommitter, open_store
from app.storage import open_storage
from domain.instance import Instance
from domain.usage import UsageLedger
from domain.user import User
from domain.webhook import WebhookLog
from tests.places import Storage

ROOT = Path(__file__).resolve().parents[1]
WAIT = 5.0  # upper bound for anything that should take milliseconds


def new_instance(name: str = "Shop") -> Instance:
    return Instance(
        user_id="user-1",
        name=name,
        description="",
        engine="sandbox",
        webhook={"url": "http://hooks.test/x"},
        engine_settings={},
    )


def connected_instance(name: str = "Shop") -> Instance:
    instance = new_instance(name)
    instance.receive_qr("qr")
    instance.open_connection("15550001111", name)
    return instance


def send(instance: Instance, n: int, key: str | None = None) -> None:
    instance.record_sent(
        message_id=f"MSG{n:08d}",
        to="15550002222@s.whatsapp.net",
        message_type="text",
        body=f"message {n}",
        media=None,
        sent_at=1_700_000_000 + n,
        idempotency_key=key,
    )


def state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class Collector:
    """Iterates a subscription on a thread of its own; the test reads with timeouts."""

    def __init__(self, subscription: Any) -> None:
        self.subscription = subscription
        self.received: queue.Queue[Notification] = queue.Queue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for notification in self.subscription:
                self.received.put(notification)
        except BaseException as error:
            self.error = error

    def next(self, timeout: float = WAIT) -> Notification:
        return self.received.get(timeout=timeout)

    def take(self, n: int, timeout: float = WAIT) -> list[Notification]:
        deadline = time.monotonic() + timeout
        return [self.next(max(0.0, deadline - time.monotonic())) for _ in range(n)]

    def stop(self) -> None:
        self.subscription.stop()
        self._thread.join(timeout=WAIT)
        assert not self._thread.is_alive(), "the subscription did not stop"


@pytest.fixture()
def store(storage: Storage) -> EventStore:
    return storage.event_store()


@pytest.fixture()
def committer(store: EventStore) -> Iterator[GroupCommitter]:
    committer = GroupCommitter(store)
    yield committer
    committer.close()


@pytest.fixture()
def collectors() -> Iterator[list[Collector]]:
    """Every Collector a test makes is stopped at its end, even when it fails."""
    made: list[Collector] = []
    yield made
    for collector in made:
        collector.stop()


def subscribe(store: EventStore, collectors: list[Collector], gt: int | None) -> Collector:
    collector = Collector(store.recorder.subscribe(gt=gt))
    collectors.append(collector)
    return collector


# -- saving ------------------------------------------------------------------------------


def test_saved_aggregates_reload_with_the_same_state(store: EventStore) -> None:
    instance = connected_instance()
    send(instance, 1, key="k1")
    instance.update({"name": "Renamed"})
    user = User(
        email="alice@example.com",
        password_hash="h",
        first_name="A",
        last_name="L",
        role="user",
        api_key_hash="kh",
        api_key_sealed="ks",
    )
    recordings = store.save(instance, user)

    positions = [r.notification.id for r in recordings]
    assert len(positions) == 5 + 1
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert store.recorder.max_notification_id() == positions[-1]

    loaded = store.repository.get(instance.id)
    assert isinstance(loaded, Instance)
    assert state(loaded) == state(instance)
    assert loaded.sent_for_key("k1") == "MSG00000001"
    assert state(store.repository.get(user.id)) == state(user)
    # Saving again collects nothing new.
    assert store.save(instance) == []


def test_a_second_registration_of_an_email_collides(store: EventStore) -> None:
    def register(email: str) -> User:
        return User(
            email=email,
            password_hash="h",
            first_name="A",
            last_name="L",
            role="user",
            api_key_hash="kh",
            api_key_sealed="ks",
        )

    store.save(register("alice@example.com"))
    with pytest.raises(IntegrityError):
        store.save(register("ALICE@example.com"))
    assert store.recorder.max_notification_id() == 1


# -- group commit --------------------------------------------------------------------------


def test_group_commit_returns_increasing_positions(
    store: EventStore, committer: GroupCommitter
) -> None:
    instance = connected_instance()
    first = committer.commit(instance.collect_events())
    assert len(first) == 3 and first == sorted(first)
    send(instance, 1)
    send(instance, 2)
    second = committer.commit(instance.collect_events())
    assert len(second) == 2 and second == sorted(second)
    assert second[0] > first[-1]
    assert committer.commit([]) == []
    assert store.recorder.max_notification_id() == second[-1]
    assert store.repository.get(instance.id).version == 5


def test_concurrent_commits_all_succeed_with_unique_increasing_positions(
    store: EventStore, committer: GroupCommitter
) -> None:
    threads, rounds = 8, 25
    barrier = threading.Barrier(threads)
    calls: list[int] = []
    save = store.save

    def counting_save(*events: Any) -> Any:
        calls.append(len(events))
        return save(*events)

    store.save = counting_save  # type: ignore[method-assign]

    def worker(t: int) -> tuple[UUID, list[int]]:
        instance = connected_instance(f"I{t}")
        barrier.wait(timeout=WAIT)
        positions = committer.commit(instance.collect_events())
        for n in range(rounds):
            send(instance, n, key=f"t{t}-{n}")
            if n % 5 == 0:
                instance.record_status(f"MSG{n:08d}", "read", "x@s.whatsapp.net", True)
            positions += committer.commit(instance.collect_events())
        return instance.id, positions

    with ThreadPoolExecutor(threads) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(worker, t) for t in range(threads)]]

    all_positions = [p for _, positions in results for p in positions]
    assert len(all_positions) == len(set(all_positions)), "a position was handed out twice"
    for _, positions in results:
        assert positions == sorted(positions), "one caller's positions went backwards"
    expected_events = threads * (3 + rounds + rounds // 5)
    assert len(all_positions) == expected_events
    assert sum(calls) == expected_events

    # Every position is a stored event, and every stored event was handed to a caller.
    stored = [n.id for n in store.recorder.select_notifications(None, 100_000)]
    assert sorted(all_positions) == stored
    for instance_id, _ in results:
        loaded = store.repository.get(instance_id)
        assert loaded.version == 3 + rounds + rounds // 5
        assert len(loaded.idempotency) == rounds


class GatedSave:
    """Holds the committer's first save until released, so that later submissions queue up
    and go into the next transaction together."""

    def __init__(self, store: EventStore) -> None:
        self.save = store.save
        self.inside = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []

    def __call__(self, *events: Any) -> Any:
        self.calls.append(len(events))
        if len(self.calls) == 1:
            self.inside.set()
            assert self.release.wait(WAIT)
        return self.save(*events)


def test_a_conflict_fails_only_its_own_caller_in_a_shared_batch(
    store: EventStore, committer: GroupCommitter
) -> None:
    contested = connected_instance("contested")
    bystander = connected_instance("bystander")
    store.save(contested)
    gate = GatedSave(store)
    store.save = gate  # type: ignore[method-assign]

    blocker = committer.submit(new_instance("blocker").collect_events())
    assert gate.inside.wait(WAIT)

    copy_a = store.repository.get(contested.id)
    copy_b = store.repository.get(contested.id)
    send(copy_a, 1)
    send(copy_b, 2)  # the same version as copy_a's event
    first = committer.submit(copy_a.collect_events())
    second = committer.submit(copy_b.collect_events())
    other = committer.submit(bystander.collect_events())
    gate.release.set()

    assert len(blocker.result(timeout=WAIT)) == 1
    first_positions = first.result(timeout=WAIT)
    with pytest.raises(IntegrityError):
        second.result(timeout=WAIT)
    other_positions = other.result(timeout=WAIT)

    # The three callers really shared one transaction before it was split up.
    assert gate.calls[:2] == [1, 1 + 1 + 3]
    assert len(first_positions) == 1 and len(other_positions) == 3
    loaded = store.repository.get(contested.id)
    assert loaded.version == 4
    events = list(store.events.get(contested.id, gt=3))
    assert [e.message_id for e in events] == ["MSG00000001"]
    assert state(store.repository.get(bystander.id)) == state(bystander)


def test_a_conflict_alone_raises_to_its_caller(
    store: EventStore, committer: GroupCommitter
) -> None:
    instance = connected_instance()
    committer.commit(instance.collect_events())
    stale = store.repository.get(instance.id)
    send(instance, 1)
    committer.commit(instance.collect_events())
    send(stale, 2)
    with pytest.raises(IntegrityError):
        committer.commit(stale.collect_events())
    # The committer carries on after a failure.
    send(instance, 3)
    assert len(committer.commit(instance.collect_events())) == 1


# -- subscriptions ---------------------------------------------------------------------


def test_a_subscription_sees_events_saved_after_it_from_this_process(
    store: EventStore, collectors: list[Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = connected_instance("before")
    store.save(before)
    last = store.recorder.max_notification_id()
    # No polling: only the in-process bell can wake the subscription in time.
    monkeypatch.setattr(sqlite_recorder, "POLL_INTERVAL", 60.0)
    collector = subscribe(store, collectors, gt=last)

    after = connected_instance("after")
    started = time.monotonic()
    store.save(after)
    got = collector.take(3, timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert [n.originator_id for n in got] == [after.id] * 3
    assert [n.originator_version for n in got] == [1, 2, 3]
    assert all(n.id > last for n in got)
    assert got[0].topic.endswith("Instance.Created")

    send(after, 1)
    store.save(after)
    assert collector.next(timeout=2.0).originator_version == 4


def test_a_subscription_from_the_start_sees_everything_in_order(
    store: EventStore, collectors: list[Collector]
) -> None:
    instances = [connected_instance(f"I{i}") for i in range(3)]
    positions = [r.notification.id for r in store.save(*instances)]
    collector = subscribe(store, collectors, gt=None)
    assert [n.id for n in collector.take(len(positions))] == positions


def test_a_subscription_sees_events_saved_by_another_process(
    storage: Storage, store: EventStore, collectors: list[Collector]
) -> None:
    store.save(new_instance("local"))
    last = store.recorder.max_notification_id()
    collector = subscribe(store, collectors, gt=last)

    script = (
        "import json, sys\n"
        "from app.config import Settings\n"
        "from app.eventstore import open_store\n"
        "from app.storage import open_storage\n"
        "from domain.instance import Instance\n"
        "store = open_store(open_storage(Settings.from_env(json.loads(sys.argv[1]))))\n"
        "i = Instance(user_id='u', name='remote', description='', engine='sandbox',"
        " webhook={}, engine_settings={})\n"
        "i.receive_qr('qr')\n"
        "store.save(i)\n"
        "store.close()\n"
        "print(i.id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(storage.env())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    remote_id = UUID(result.stdout.strip())

    got = collector.take(2, timeout=2.0)
    assert [n.originator_id for n in got] == [remote_id, remote_id]
    assert got[0].id > last and got[1].id > got[0].id
    assert isinstance(store.repository.get(remote_id), Instance)


def test_a_stopped_subscription_ends_its_iteration(
    store: EventStore,
) -> None:
    collector = Collector(store.recorder.subscribe(gt=None))
    collector.stop()  # asserts the iterating thread ended
    assert collector.error is None
    with store.recorder.subscribe(gt=0) as subscription:
        store.save(new_instance())
        assert next(subscription).originator_version == 1


def test_restart_keeps_events_and_positions(storage: Storage, collectors: list[Collector]) -> None:
    store = storage.event_store()
    try:
        instance = connected_instance()
        positions = [r.notification.id for r in store.save(instance)]
        send(instance, 1, key="k1")
        positions += [r.notification.id for r in store.save(instance)]
        expected = state(instance)
    finally:
        store.close()

    again = open_storage(storage.settings())  # a new client too, as after a restart
    reopened = open_store(again)
    try:
        last = reopened.recorder.max_notification_id()
        assert last == positions[-1]
        notes = reopened.recorder.select_notifications(start=1, limit=100)
        assert [n.id for n in notes] == positions
        assert state(reopened.repository.get(instance.id)) == expected

        collector = subscribe(reopened, collectors, gt=last)
        fresh = new_instance("fresh")
        new_positions = [r.notification.id for r in reopened.save(fresh)]
        assert new_positions[0] > last
        got = collector.next(timeout=2.0)
        # The first thing the subscription yields is the new event, not a replay.
        assert (got.id, got.originator_id) == (new_positions[0], fresh.id)
    finally:
        for collector in collectors:
            collector.stop()
        collectors.clear()
        reopened.close()
        again.close()


# -- snapshots -------------------------------------------------------------------------


def snapshot_rows(store: EventStore, instance_id: UUID) -> list[tuple[Any, ...]]:
    assert store.snapshots is not None
    return [(s.originator_version,) for s in store.snapshots.recorder.select_events(instance_id)]


def test_saving_past_the_interval_takes_a_snapshot(store: EventStore) -> None:
    instance = connected_instance()
    for n in range(SNAPSHOT_INTERVAL + 10):
        send(instance, n, key=f"k{n}")
    store.save(instance)
    assert instance.version > SNAPSHOT_INTERVAL

    assert snapshot_rows(store, instance.id) == [(SNAPSHOT_INTERVAL,)]
    snapshot = store.snapshots.get(instance.id, desc=True, limit=1)
    assert [s.originator_version for s in snapshot] == [SNAPSHOT_INTERVAL]

    loaded = store.repository.get(instance.id)
    assert state(loaded) == state(instance)
    assert list(loaded.idempotency) == list(instance.idempotency)
    # Loading an older version ignores the later snapshot's state.
    assert store.repository.get(instance.id, version=3).idempotency == {}


def aggregates_of_every_kind(events_each: int) -> list[Any]:
    """One aggregate of each kind, with `events_each` events pending (the creation's too)."""
    user = User(
        email="snap@example.com",
        password_hash="x",
        first_name="S",
        last_name="",
        role="user",
        api_key_hash="h",
        api_key_sealed="s",
    )
    instance = connected_instance()
    ledger = UsageLedger()
    log = WebhookLog(str(instance.id))
    while len(user.pending_events) < events_each:
        user.update_profile(f"S{len(user.pending_events)}", "")
    while len(instance.pending_events) < events_each:
        send(instance, len(instance.pending_events), key=f"k{len(instance.pending_events)}")
    while len(ledger.pending_events) < events_each:
        ledger.record([{"userId": "u", "instanceId": None, "day": "2026-01-01", "apiCalls": 1}])
    while len(log.pending_events) < events_each:
        n = len(log.pending_events)
        log.delivered(str(instance.id), n, "message_sent", f"d{n}", 1, 200, False)
    return [user, instance, ledger, log]


def test_every_aggregate_the_committer_saves_is_snapshotted_every_interval(
    store: EventStore, committer: GroupCommitter
) -> None:
    aggregates = aggregates_of_every_kind(2 * SNAPSHOT_INTERVAL + 5)
    for aggregate in aggregates:
        pending = aggregate.collect_events()
        # In several commits, as the product makes them (an interval may fall inside one).
        for start in range(0, len(pending), 7):
            committer.commit(pending[start : start + 7])
    every = [(SNAPSHOT_INTERVAL,), (2 * SNAPSHOT_INTERVAL,)]
    for aggregate in aggregates:
        assert wait_until(lambda a=aggregate: snapshot_rows(store, a.id) == every), type(aggregate)
        # Loaded from its last snapshot and the few events after it, in the same state.
        loaded = store.repository.get(aggregate.id)
        assert loaded.version == aggregate.version
        assert state(loaded) == state(aggregate)
