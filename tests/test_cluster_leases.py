"""Leases and the fence on MongoDB (SecantusDB): an owner that lost its lease stores nothing
more, checked in the same transaction as the append, even when it was frozen in the middle
of one while another node took its instance over."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from storage.cluster import LEADER, LeaseLost
from storage.mongodb.cluster import MongoClusterStore
from storage.mongodb.datastore import MongoDatastore
from storage.mongodb.events import MongoApplicationRecorder
from tests import mongo

pytestmark = pytest.mark.drill_cases("security cases")

TOPIC = "domain.instance:Instance.MessageSent"
TTL = 5.0


@pytest.fixture()
def recorder(mongodb_url: str, mongodb_database: str) -> Iterator[MongoApplicationRecorder]:
    datastore = MongoDatastore(mongodb_url, mongodb_database)
    recorder = MongoApplicationRecorder(datastore, "whatsapp_events")
    recorder.create_table()
    yield recorder
    datastore.close()


class Node:
    """One node's view of the store: its own recorder (as its own process would have) and
    the leases it believes it holds, which its fence policy answers from."""

    def __init__(self, url: str, database: str, node_id: str) -> None:
        self.datastore = MongoDatastore(url, database)
        self.recorder = MongoApplicationRecorder(self.datastore, "whatsapp_events")
        self.store = MongoClusterStore(self.recorder)
        self.id = node_id
        self.held: dict[str, int] = {}
        self.lost: list[str] = []
        self.pause: threading.Event | None = None  # set: the next append waits in its txn
        self.paused = threading.Event()
        self.store.fence(node_id, self.policy, self.lost.extend)

    def policy(self, originator_id: UUID, topic: str) -> tuple[str, int] | None:
        if self.pause is not None:  # frozen after the counter write, before the lease read
            self.paused.set()
            self.pause.wait(30)
            self.pause = None
        key = str(originator_id)
        if key not in self.held:
            raise LeaseLost([key])
        return key, self.held[key]

    def take(self, instance: UUID, now: float) -> bool:
        lease = self.store.acquire(str(instance), self.id, now, now + TTL)
        if lease is None:
            return False
        self.held[lease.key] = lease.epoch
        return True

    def append(self, instance: UUID, version: int) -> list[int]:
        stored = StoredEvent(instance, version, TOPIC, b"{}")
        return list(self.recorder.insert_events([stored]) or [])

    def close(self) -> None:
        self.datastore.close()


@pytest.fixture()
def nodes(
    mongodb_url: str, mongodb_database: str, recorder: MongoApplicationRecorder
) -> Iterator[tuple[Node, Node]]:
    a, b = Node(mongodb_url, mongodb_database, "a"), Node(mongodb_url, mongodb_database, "b")
    yield a, b
    a.close()
    b.close()


def stamps(recorder: MongoApplicationRecorder) -> list[tuple[int, str, int]]:
    return [
        (d["_id"], d["lease"]["node"], d["lease"]["epoch"])
        for d in recorder.events.find({}, {"lease": 1}).sort("_id", 1)
    ]


def test_a_lease_is_taken_once_renewed_by_its_holder_and_free_after_release(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    instance = str(uuid4())
    now = time.time()
    assert a.take(UUID(instance), now)
    assert not b.take(UUID(instance), now)  # held and not expired
    assert a.store.renew("a", [instance], now + TTL) == {instance}
    assert b.store.renew("b", [instance], now + TTL) == set()  # not b's to renew
    a.store.release(instance, "a", 1)
    assert b.take(UUID(instance), now)
    assert b.held[instance] == 2  # every acquisition is a new epoch
    assert a.store.renew("a", [instance], now + TTL) == set()  # a sees it lost


def test_an_expired_lease_goes_to_whoever_takes_it_and_the_old_holder_appends_nothing(
    nodes: tuple[Node, Node], recorder: MongoApplicationRecorder
) -> None:
    a, b = nodes
    instance = uuid4()
    now = time.time()
    assert a.take(instance, now)
    a.append(instance, 1)
    # a goes silent; once its lease has expired, b takes the instance over.
    assert b.take(instance, now + TTL + 1)
    with pytest.raises(LeaseLost):
        a.append(instance, 2)  # a still believes it holds epoch 1
    assert a.lost == [str(instance)]
    b.append(instance, 2)
    assert stamps(recorder) == [(1, "a", 1), (2, "b", 2)]


def test_an_append_under_an_older_epoch_of_the_same_node_is_refused(
    nodes: tuple[Node, Node], recorder: MongoApplicationRecorder
) -> None:
    """The owner alone is not enough: a node that lost an instance and took it back (or was
    restarted under the same NODE_ID) may still run an actor from before, and what that
    actor appends under the old epoch must not be stored beside the new one's."""
    a, _ = nodes
    instance = uuid4()
    now = time.time()
    assert a.take(instance, now)
    stale = a.held[str(instance)]
    a.append(instance, 1)
    assert a.take(instance, now + TTL + 1)  # taken again by the same node: a new epoch
    current = a.held[str(instance)]
    assert current == stale + 1
    a.held[str(instance)] = stale  # the actor from before
    with pytest.raises(LeaseLost):
        a.append(instance, 2)
    a.held[str(instance)] = current
    a.append(instance, 2)
    assert stamps(recorder) == [(1, "a", stale), (2, "a", current)]


def test_a_node_never_appends_for_an_instance_it_holds_no_lease_of(
    nodes: tuple[Node, Node], recorder: MongoApplicationRecorder
) -> None:
    a, b = nodes
    instance = uuid4()
    assert b.take(instance, time.time())
    a.held[str(instance)] = 1  # a claims b's epoch without holding the lease
    with pytest.raises(LeaseLost):
        a.append(instance, 1)
    assert stamps(recorder) == []


def test_an_append_frozen_mid_transaction_commits_before_the_takeover_or_not_at_all(
    nodes: tuple[Node, Node], recorder: MongoApplicationRecorder
) -> None:
    """a is frozen inside its append's transaction (it has read nothing of the lease yet,
    but holds the counter) while b takes the instance over. The takeover writes the
    counter too, so it cannot commit while a's transaction is open: a's append lands
    before b's epoch begins, and a's next append is refused. Without that write, b would
    take the lease while a is frozen, and a's append would commit under b's epoch."""
    a, b = nodes
    instance = uuid4()
    now = time.time()
    assert a.take(instance, now)
    order: list[str] = []
    a.pause = threading.Event()
    release_a = a.pause

    def append() -> None:
        a.append(instance, 1)
        order.append("a appended")

    def take_over() -> None:
        assert b.take(instance, now + TTL + 1)
        order.append("b took over")

    appending = threading.Thread(target=append)
    appending.start()
    assert a.paused.wait(30)
    taking = threading.Thread(target=take_over)
    taking.start()
    taking.join(timeout=2)  # a correct fence keeps it waiting for a's transaction
    release_a.set()
    appending.join(timeout=60)
    taking.join(timeout=60)
    assert order == ["a appended", "b took over"]
    with pytest.raises(LeaseLost):
        a.append(instance, 2)
    b.append(instance, 2)
    assert stamps(recorder) == [(1, "a", 1), (2, "b", 2)]


def test_the_leader_lease_has_one_holder_at_a_time(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    now = time.time()
    first = a.store.acquire(LEADER, "a", now, now + TTL)
    assert first is not None and first.owner == "a"
    assert b.store.acquire(LEADER, "b", now, now + TTL) is None
    later = b.store.acquire(LEADER, "b", now + TTL + 1, now + 2 * TTL)
    assert later is not None and later.owner == "b" and later.epoch == first.epoch + 1


def test_nodes_flushing_api_call_counts_at_once_all_get_stored(
    mongodb_url: str, mongodb_database: str
) -> None:
    """Every node counts its own API calls into the one usage ledger; flushes that meet
    (they run on the same cron) load the ledger again and record after each other."""
    from app.eventstore import EventStore, GroupCommitter
    from app.usage import ApiCallCounter
    from storage.mongodb.events import environment

    env = environment(mongo.with_database(mongodb_url, mongodb_database))
    nodes = []
    for _ in range(3):  # as three processes would: a store and a committer each
        store = EventStore(env=env)
        nodes.append((store, GroupCommitter(store)))
    # No read models here: nothing counts as projected, so every stored count stays pending.
    counters = [ApiCallCounter(store, committer, lambda: 0) for store, committer in nodes]
    try:
        for _ in range(3):  # three rounds of counting and flushing at once
            for n, counter in enumerate(counters):
                for _call in range(n + 1):
                    counter.count(f"user-{n}", None)
            flushes = [threading.Thread(target=c.flush) for c in counters]
            for thread in flushes:
                thread.start()
            for thread in flushes:
                thread.join(timeout=60)
        store = nodes[0][0]
        recorded = [
            call["apiCalls"]
            for n in store.recorder.select_notifications(start=1, limit=1000)
            if n.topic.endswith("UsageRecorded")
            for call in store.mapper.to_domain_event(n).calls
        ]
        assert sum(recorded) == 3 * (1 + 2 + 3)
    finally:
        for store, committer in nodes:
            committer.close()
            store.close()


def test_a_node_cut_off_from_mongodb_stops_its_engines_before_its_leases_expire() -> None:
    """Self-fencing: a node whose renewals fail (here its database goes away: a SecantusDB
    of this test's own, stopped) stops every engine once its last renewal is older than
    LEASE_TTL - LEASE_FENCE_MARGIN, before any other node may take its instances."""
    from app.cluster.node import ClusterNode, NodeHooks
    from app.cluster.signing import Signer
    from app.config import Cluster

    config = Cluster("http://127.0.0.1:9", "cut-off", "s" * 40, lease_ttl=3.0, fence_margin=1.5)
    instance_id = str(uuid4())
    started = threading.Event()
    stopped: list[tuple[str, float]] = []
    with mongo.secantus() as url:
        datastore = MongoDatastore(url, "fencing", timeout=1.0)
        recorder = MongoApplicationRecorder(datastore, "whatsapp_events")
        recorder.create_table()
        node = ClusterNode(
            config,
            MongoClusterStore(recorder),
            Signer(config.secret),
            NodeHooks(
                instances=lambda: [instance_id],
                start=lambda key: started.set(),
                stop=lambda key, drain: stopped.append((key, time.time())),
                leader=lambda on: None,
            ),
        )
        node.join()
        node.start()
        assert started.wait(30)
        renewals = node.counts.renewals
        deadline = time.monotonic() + 10
        while node.counts.renewals < renewals + 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # two renewals seen: the lease's expiry is fresh
        expiry = datastore.db["cluster_leases"].find_one({"_id": instance_id})["expires"]
        assert node.holds(instance_id) and not node.fenced
    # The database is gone: the lease stored there expires at `expiry` (or one renewal later).
    try:
        deadline = time.monotonic() + 3 * config.lease_ttl
        while not stopped and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stopped and stopped[0][0] == instance_id
        assert stopped[0][1] < expiry  # stopped before any other node could take it
        assert node.fenced and not node.holds(instance_id) and not node.leader
    finally:
        node.stop()  # it cannot say goodbye: its attempts time out and are logged
        datastore.close()
