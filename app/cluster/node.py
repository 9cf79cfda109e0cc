"""This node's place among several: membership, instance leases, the leader lease, fencing.

A loop thread keeps the node's record alive (a heartbeat every LEASE_TTL/3 that also renews
its leases), looks at who else is live, and moves instances so that each is run by the node
rendezvous hashing gives it among the live nodes: it gives up what is no longer its own
(stopping the actor first, so that its last events are stored under its lease) and takes
what is, once the previous holder gave it up or let it expire. The first node to find the
leader lease free takes it and runs the singletons (projection writers, scheduled jobs).

A watchdog thread stops every engine of this node once its last successful renewal is
older than LEASE_TTL minus LEASE_FENCE_MARGIN (self-fencing): a node cut off from the
database, or frozen, stops before the others may take its instances, and whatever it still
tries to append is refused by the fence in the store (storage/cluster.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from app.cluster import rendezvous
from app.cluster.forward import Owner, Routing
from app.cluster.signing import Signer
from app.config import Cluster
from domain.instance import Instance
from domain.webhook import WebhookLog, webhook_log_id
from storage.cluster import LEADER, ClusterStore, Lease, LeaseLost, NodeRecord

log = logging.getLogger(__name__)

INSTANCE_TOPICS = get_topic(Instance) + "."
CREATED_TOPIC = get_topic(Instance.Created)
DELETED_TOPIC = INSTANCE_TOPICS + "Deleted"
WEBHOOK_LOG_TOPICS = get_topic(WebhookLog) + "."
#: How often the loop looks at the cluster (at most; LEASE_TTL/6 when that is shorter).
TICK = 0.5
WATCHDOG_TICK = 0.05
#: For how long after moving here an instance that is still connecting answers commands
#: `503 instance_moving` (with Retry-After) instead of `409 instance_not_connected`.
SETTLE = 30.0
RENEWAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"))


@dataclass
class NodeHooks:
    """What the node does to the rest of the server (handed down by app/server.py)."""

    instances: Callable[[], Iterable[str]]  # every instance that should run somewhere
    start: Callable[[str], None]  # run an instance here (its lease is held)
    stop: Callable[[str, bool], None]  # stop it here (True: let its last commits finish)
    leader: Callable[[bool], None]  # this node now runs, or no longer runs, the singletons


@dataclass
class NodeCounts:
    """What the node did, for /metrics and /health."""

    acquired: int = 0
    takeovers: int = 0  # leases taken after their holder let them expire
    released: int = 0
    lost: int = 0  # leases found taken by another node
    renewals: int = 0
    renewal_failures: int = 0
    self_fenced: int = 0
    renewal_seconds: float = 0.0  # the last renewal's duration
    renewal_sum: float = 0.0  # of all renewals' durations
    # How many renewals took at most each bound (seconds), cumulative as Prometheus has it.
    renewal_buckets: dict[float, int] = field(
        default_factory=lambda: dict.fromkeys(RENEWAL_BUCKETS, 0)
    )

    def renewed(self, seconds: float) -> None:
        self.renewals += 1
        self.renewal_seconds = seconds
        self.renewal_sum += seconds
        for bound in self.renewal_buckets:
            if seconds <= bound:
                self.renewal_buckets[bound] += 1


@dataclass(frozen=True)
class View:
    """The cluster as the last look saw it."""

    nodes: dict[str, NodeRecord]  # live nodes whose records are genuine
    members: list[str]  # those of them that take instances (not draining)
    leases: dict[str, Lease]


class ClusterNode(Routing):
    """This node in the cluster (see the module docstring)."""

    def __init__(
        self,
        config: Cluster,
        store: ClusterStore,
        signer: Signer,
        hooks: NodeHooks,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.id = config.node_id
        self.store = store
        self.signer = signer
        self.hooks = hooks
        self.clock = clock
        self.counts = NodeCounts()
        self.started = clock()
        self.view = View({}, [], {})
        self.draining = False
        self._held: dict[str, int] = {}  # instance id -> epoch
        self._log_owner: dict[str, str] = {}  # webhook log id -> instance id
        self._leader_epoch: int | None = None
        self._fenced = False  # stopped everything; waits for a renewal before taking more
        self._lost: set[str] = set()  # refused by the fence; stopped by the loop
        self._lock = threading.RLock()
        self._moving = threading.Lock()  # one thread at a time takes or hands over leases
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drained = threading.Event()
        self._instances_changed = threading.Event()
        self._instances: set[str] = set()  # every instance that should run, as last read
        self._assigned: tuple[Any, dict[str, str]] | None = None
        self._taken_at: dict[str, float] = {}  # instance id -> when it moved here
        self._last_renewed = time.monotonic()
        self._tick = min(TICK, config.lease_ttl / 6)
        self._loop = threading.Thread(target=self._run, name="cluster", daemon=True)
        # Renewals have a thread of their own: moving instances (starting and stopping
        # actors) can take longer than a lease, and must not hold the renewals up.
        self._renewer = threading.Thread(
            target=self._renew_always, name="cluster-renew", daemon=True
        )
        self._watchdog = threading.Thread(target=self._watch, name="cluster-watchdog", daemon=True)

    # -- what others ask ------------------------------------------------------------

    @property
    def leader(self) -> bool:
        return self._leader_epoch is not None

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    @property
    def fenced(self) -> bool:
        """Whether this node stopped its engines for lack of renewals (until one works)."""
        return self._fenced

    def settling(self, instance_id: str | None) -> bool:
        """Whether an instance moved here moments ago (its engine may still connect)."""
        taken = self._taken_at.get(instance_id or "")
        return taken is not None and time.monotonic() - taken < SETTLE

    def holds(self, instance_id: str) -> bool:
        return instance_id in self._held

    def owner_of(self, instance_id: str) -> Owner | None:
        if instance_id in self._held:
            return None
        lease = self.view.leases.get(instance_id)
        if lease is None or lease.owner is None or lease.owner == self.id:
            return None
        node = self.view.nodes.get(lease.owner)
        return None if node is None else Owner(node.node_id, node.url)

    def node_of(self, instance_id: str) -> str | None:
        """The node that runs an instance, as far as this one knows."""
        if instance_id in self._held:
            return self.id
        lease = self.view.leases.get(instance_id)
        if lease is None or lease.owner not in self.view.nodes:
            return None
        return lease.owner

    def leader_id(self) -> str | None:
        if self.leader:
            return self.id
        lease = self.view.leases.get(LEADER)
        return lease.owner if lease is not None and lease.owner in self.view.nodes else None

    def claim(self, instance_id: str) -> None:
        """A new instance: run it at once if it is this node's, else wake the others' look
        (the node it belongs to takes it when it sees it)."""
        with self._moving:
            if (
                not self.draining
                and instance_id not in self._held
                and self._assignment(self._instances | {instance_id}).get(instance_id) == self.id
            ):
                self._take(instance_id, None, self.clock())
        self.instances_changed()

    def instances_changed(self) -> None:
        """An instance was created or deleted: look again now."""
        self._instances_changed.set()
        self._wake.set()

    def observe(self, topics: Iterable[str]) -> None:
        """For the projections' observers: wake on instance creations and deletions."""
        for topic in topics:
            if topic in (CREATED_TOPIC, DELETED_TOPIC):
                self.instances_changed()
                return

    # -- the fence policy (called in the group commit's thread) ------------------------

    def fence_policy(self, originator_id: UUID | str, topic: str) -> tuple[str, int] | None:
        """The lease an event needs: an instance's events (but its creation) and its
        webhook log's need the instance's; the others need none."""
        if topic.startswith(INSTANCE_TOPICS):
            if topic == CREATED_TOPIC:
                return None
            key = str(originator_id)
        elif topic.startswith(WEBHOOK_LOG_TOPICS):
            found = self._log_owner.get(str(originator_id))
            if found is None:
                raise LeaseLost([str(originator_id)])
            key = found
        else:
            return None
        epoch = self._held.get(key)
        if epoch is None:
            raise LeaseLost([key])
        return key, epoch

    def fence_refused(self, keys: list[str]) -> None:
        """(Group commit thread.) The store refused appends of these leases: forget them
        now, and let the loop stop their actors (this thread must not wait for them)."""
        with self._lock:
            for key in keys:
                if self._held.pop(key, None) is not None:
                    self._lost.add(key)
                    self.counts.lost += 1
                    log.warning("lease of %s was taken by another node: stopping it here", key)
        self._wake.set()

    # -- lifecycle ----------------------------------------------------------------------

    def join(self) -> None:
        """Register this node, look around once and take the leader lease if it is free
        (the caller then knows whether this node runs the singletons)."""
        self._register()
        self._last_renewed = time.monotonic()
        self.store.fence(self.id, self.fence_policy, self.fence_refused)
        self._look()
        self._take_leadership()
        log.info(
            "joined the cluster as %s (%s): %d live node(s), leader %s",
            self.id,
            self.config.node_url,
            len(self.view.nodes),
            self.leader_id() or "none yet",
        )

    def look_and_lead(self) -> None:
        """Look around, and take the leader lease if it is free (at start-up)."""
        self._look()
        with self._moving:
            self._take_leadership()

    def _register(self) -> None:
        now = self.clock()
        self.store.register(
            NodeRecord(
                node_id=self.id,
                url=self.config.node_url,
                signature=self.signer.sign_node(self.id, self.config.node_url),
                started=self.started,
                heartbeat=now,
                expires=now + self.config.lease_ttl,
                draining=self.draining,
            )
        )

    def start(self) -> None:
        self._renewer.start()
        self._loop.start()
        self._watchdog.start()

    def drain(self) -> None:
        """Stop taking instances and hand every one over (SIGTERM): the others see this
        node draining and take what it releases, one instance at a time."""
        with self._lock:
            first, self.draining = not self.draining, True
        if not first:  # a drain runs already (SIGTERM's): wait for it
            self._drained.wait(timeout=120)
            return
        try:
            self._hand_everything_over()
        finally:
            self._drained.set()

    def _hand_everything_over(self) -> None:
        log.info("handing %d instance(s) over to the other nodes", len(self._held))
        try:
            self.store.heartbeat(
                self.id, self.clock(), self.clock() + self.config.lease_ttl, draining=True
            )
        except Exception as error:  # the others will see our leases expire instead
            log.warning("could not say this node is leaving: %s", error)
        with self._moving:
            for instance_id in list(self._held):
                self._hand_over(instance_id, forget=False)
            self._give_up_leadership()

    def stop(self) -> None:
        """Leave the cluster (after drain, at shutdown)."""
        self.drain()
        self._stopping.set()
        self._wake.set()
        for thread in (self._loop, self._renewer, self._watchdog):
            if thread.is_alive():
                thread.join(timeout=10)
        try:
            self.store.leave(self.id)
        except Exception as error:
            log.warning("could not remove this node's record: %s", error)

    # -- the loop ------------------------------------------------------------------------

    def _renew_always(self) -> None:
        interval = self.config.renew_interval
        due = time.monotonic() + interval
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            due += interval  # a fixed rate: a slow renewal does not push the next one back
            self._renew()
            due = max(due, time.monotonic())

    def _run(self) -> None:
        instances: set[str] | None = None
        instances_at = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                self._stop_lost()
                self._look()
                if (
                    instances is None
                    or self._instances_changed.is_set()
                    or now - instances_at > self.config.renew_interval
                ):
                    self._instances_changed.clear()
                    instances = self._instances = set(self.hooks.instances())
                    instances_at = now
                with self._moving:
                    self._balance(instances)
            except Exception:
                log.exception("cluster: could not rebalance; trying again")
            self._wake.wait(self._tick)
            self._wake.clear()

    def _renew(self) -> None:
        self._check_silence()  # first: after a freeze this thread may run before the watchdog
        started = time.monotonic()
        now = self.clock()
        expires = now + self.config.lease_ttl
        with self._lock:
            keys = list(self._held)
            leader = self._leader_epoch
        if leader is not None:
            keys.append(LEADER)
        try:
            if not self.store.heartbeat(self.id, now, expires, self.draining):
                self._register()  # our record is gone (removed by hand?): register again
            still = self.store.renew(self.id, keys, expires)
        except Exception as error:
            self.counts.renewal_failures += 1
            log.warning("cluster: lease renewal failed: %s", error)
            return
        self.counts.renewed(time.monotonic() - started)
        with self._lock:
            self._last_renewed = started
            if self._fenced:
                self._fenced = False
                log.info("cluster: lease renewals work again; taking instances again")
            lost = [k for k in keys if k != LEADER and k not in still and k in self._held]
            for key in lost:
                if self._held.pop(key, None) is not None:
                    self._lost.add(key)
                    self.counts.lost += 1
                    log.warning("lease of %s was taken by another node: stopping it here", key)
        if leader is not None and LEADER not in still:
            log.warning("cluster: the leader lease was taken by another node")
            self._leader_epoch = None
            self.hooks.leader(False)
        if lost:
            self._wake.set()  # the loop stops them

    def _stop_lost(self) -> None:
        with self._lock:
            lost, self._lost = self._lost, set()
        for instance_id in lost:
            self._stop_here(instance_id, drain=False)

    def _look(self) -> None:
        nodes = self.store.nodes()
        leases = self.store.leases()
        now = self.clock()
        live: dict[str, NodeRecord] = {}
        for node in nodes:
            if not node.live(now):
                continue
            if not self.signer.node_is_genuine(node.node_id, node.url, node.signature):
                log.warning("cluster: ignoring node %s: its record is not signed", node.node_id)
                continue
            live[node.node_id] = node
        members = sorted(n.node_id for n in live.values() if not n.draining)
        self.view = View(live, members, {lease.key: lease for lease in leases})

    def _balance(self, instances: set[str]) -> None:
        view = self.view
        with self._lock:
            fenced = self._fenced
        if fenced or self.draining or self.id not in view.members:
            return  # stopped, leaving (drain hands over), or not live as the others see it
        desired = {i for i, node in self._assignment(instances).items() if node == self.id}
        for instance_id in list(self._held):
            if instance_id not in desired:
                self._hand_over(instance_id, forget=instance_id not in instances)
        now = self.clock()
        for instance_id in sorted(desired - set(self._held)):
            lease = view.leases.get(instance_id)
            if lease is not None and lease.owner not in (None, self.id) and lease.expires > now:
                continue  # its holder has not given it up yet
            self._take(instance_id, lease, now)
        self._take_leadership()

    def _assignment(self, instances: set[str]) -> dict[str, str]:
        """Which node each instance belongs to (kept until instances or members change)."""
        members = tuple(self.view.members)
        key = (frozenset(instances), members)
        if self._assigned is None or self._assigned[0] != key:
            self._assigned = (key, rendezvous.assign(instances, members))
        return self._assigned[1]

    def _take(self, instance_id: str, before: Lease | None, now: float) -> None:
        got = self.store.acquire(instance_id, self.id, now, now + self.config.lease_ttl)
        if got is None:
            return
        previous = before.owner if before is not None else None
        takeover = previous not in (None, self.id)
        with self._lock:
            refused = self._fenced or self.draining
            if not refused:
                self._held[instance_id] = got.epoch
                self._log_owner[str(webhook_log_id(instance_id))] = instance_id
                if before is not None:  # moved here (not a new instance)
                    self._taken_at[instance_id] = time.monotonic()
        if refused:  # the watchdog or a drain came in between
            self.store.release(instance_id, self.id, got.epoch)
            return
        self.counts.acquired += 1
        if takeover:
            self.counts.takeovers += 1
            log.warning("took over instance %s from %s (its lease expired)", instance_id, previous)
        else:
            log.info("instance %s runs here now (epoch %d)", instance_id, got.epoch)
        try:
            self.hooks.start(instance_id)
        except Exception:
            log.exception("instance %s did not start here", instance_id)

    def _hand_over(self, instance_id: str, forget: bool) -> None:
        """Stop an instance here (its last commits finish under its lease), then release
        its lease for the node that owns it now."""
        self._stop_here(instance_id, drain=True)
        with self._lock:
            epoch = self._held.pop(instance_id, None)
        if epoch is None:
            return
        try:
            self.store.release(instance_id, self.id, epoch)
            if forget:
                self.store.forget(instance_id)
        except Exception as error:  # it expires instead
            log.warning("could not release the lease of %s: %s", instance_id, error)
        self.counts.released += 1
        log.info("instance %s handed over", instance_id)

    def _stop_here(self, instance_id: str, drain: bool) -> None:
        try:
            self.hooks.stop(instance_id, drain)
        except Exception:
            log.exception("instance %s did not stop cleanly", instance_id)

    def _take_leadership(self) -> None:
        if self.leader:
            return
        lease = self.view.leases.get(LEADER)
        now = self.clock()
        if lease is not None and lease.owner not in (None, self.id) and lease.expires > now:
            return
        got = self.store.acquire(LEADER, self.id, now, now + self.config.lease_ttl)
        if got is None:
            return
        self._leader_epoch = got.epoch
        log.info("this node leads now: it runs the projection writers and scheduled jobs")
        self.hooks.leader(True)

    def _give_up_leadership(self) -> None:
        epoch, self._leader_epoch = self._leader_epoch, None
        if epoch is None:
            return
        self.hooks.leader(False)
        try:
            self.store.release(LEADER, self.id, epoch)
        except Exception as error:
            log.warning("could not release the leader lease: %s", error)

    # -- self-fencing --------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.wait(WATCHDOG_TICK):
            self._check_silence()

    def _check_silence(self) -> None:
        """Fence this node if its last successful renewal is too old to trust its leases."""
        with self._lock:
            holding = bool(self._held) or self._leader_epoch is not None
            silent = time.monotonic() - self._last_renewed
        if holding and silent > self.config.lease_ttl - self.config.fence_margin:
            self._fence_self(silent)

    def _fence_self(self, silent: float) -> None:
        with self._lock:
            stopping = list(self._held)
            self._held.clear()
            self._fenced = True
            leader, self._leader_epoch = self._leader_epoch, None
        self.counts.self_fenced += 1
        log.error(
            "cluster: no lease renewal for %.1f s (LEASE_TTL %gs, margin %gs): stopping the "
            "engines of %d instance(s) before the other nodes take them",
            silent,
            self.config.lease_ttl,
            self.config.fence_margin,
            len(stopping),
        )
        if leader is not None:
            self.hooks.leader(False)
        for instance_id in stopping:
            self._stop_here(instance_id, drain=False)
