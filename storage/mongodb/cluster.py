"""Members, leases and the fence on MongoDB (collections `cluster_nodes`, `cluster_leases`
beside the event store's).

How fencing works. Every append is one transaction that first `$inc`s the position counter
document (see the recorder). With a fence installed, the same transaction then reads the
leases of the instances it appends for and refuses the batch (LeaseLost) unless this node
holds each at the epoch it believes it holds. Taking a lease writes the counter document
too, in the transaction that gives the lease its new epoch. So an append and a takeover that
overlap write the same document, and MongoDB lets only one of them commit (the other
retries from a new snapshot, where it sees the other's effect): an append either commits
before the takeover, while its lease was valid, or sees the new epoch and is refused. A
node that was frozen in the middle of an append (SIGSTOP) cannot commit it after another
node took its instances: its transaction holds the counter, so the takeover waits until
the server aborts it (transactionLifetimeLimitSeconds), and when the frozen node wakes,
its commit fails, its retry reads the new epoch and stores nothing.

Renewals only move `expires`, which appends do not read for a decision, so renewing never
conflicts with appending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from pymongo import ASCENDING, ReturnDocument
from pymongo.client_session import ClientSession

from storage.cluster import ClusterStore, FencePolicy, Lease, LeaseLost, NodeRecord
from storage.mongodb.datastore import MongoDatastore, translated_errors
from storage.mongodb.events import MongoApplicationRecorder

log = logging.getLogger(__name__)

NODES = "cluster_nodes"
LEASES = "cluster_leases"


class MongoFence:
    """What the recorder calls inside each append's transaction (see the module)."""

    def __init__(
        self,
        datastore: MongoDatastore,
        node_id: str,
        policy: FencePolicy,
        on_lost: Callable[[list[str]], None],
    ) -> None:
        self.leases = datastore.db[LEASES]
        self.node_id = node_id
        self.policy = policy
        self.on_lost = on_lost

    def __call__(
        self, session: ClientSession, stored_events: Sequence[StoredEvent]
    ) -> list[dict[str, Any] | None]:
        """Check the leases the events need; return what to stamp on each (who appended
        it under which epoch), or raise LeaseLost."""
        required: dict[str, int] = {}
        stamps: list[dict[str, Any] | None] = []
        lost: list[str] = []
        for stored in stored_events:
            try:
                need = self.policy(stored.originator_id, stored.topic)
            except LeaseLost as error:
                lost += error.keys
                continue
            if need is None:
                stamps.append(None)
                continue
            required[need[0]] = need[1]
            stamps.append({"node": self.node_id, "epoch": need[1]})
        if required and not lost:
            found = {
                d["_id"]: d
                for d in self.leases.find(
                    {"_id": {"$in": list(required)}}, {"owner": 1, "epoch": 1}, session=session
                )
            }
            lost = [
                key
                for key, epoch in required.items()
                if (d := found.get(key)) is None
                or d.get("owner") != self.node_id
                or d.get("epoch") != epoch
            ]
        if lost:
            self.on_lost(sorted(set(lost)))
            raise LeaseLost(lost)
        return stamps


class MongoClusterStore(ClusterStore):
    """The cluster's records in the event store's database."""

    def __init__(self, recorder: MongoApplicationRecorder) -> None:
        self.recorder = recorder
        self.datastore: MongoDatastore = recorder.datastore
        db = self.datastore.db
        self.nodes_collection = db[NODES]
        self.leases_collection = db[LEASES]
        with translated_errors():
            self.leases_collection.create_index([("owner", ASCENDING)], name="owner")

    # -- members -----------------------------------------------------------------------

    def register(self, node: NodeRecord) -> None:
        with translated_errors():
            self.nodes_collection.replace_one(
                {"_id": node.node_id},
                {
                    "url": node.url,
                    "signature": node.signature,
                    "started": node.started,
                    "heartbeat": node.heartbeat,
                    "expires": node.expires,
                    "draining": node.draining,
                },
                upsert=True,
            )

    def heartbeat(self, node_id: str, now: float, expires: float, draining: bool) -> bool:
        with translated_errors():
            result = self.nodes_collection.update_one(
                {"_id": node_id},
                {"$set": {"heartbeat": now, "expires": expires, "draining": draining}},
            )
        return result.matched_count == 1

    def nodes(self) -> list[NodeRecord]:
        with translated_errors():
            documents = list(self.nodes_collection.find({}))
        return [
            NodeRecord(
                node_id=str(d["_id"]),
                url=str(d.get("url", "")),
                signature=str(d.get("signature", "")),
                started=float(d.get("started", 0)),
                heartbeat=float(d.get("heartbeat", 0)),
                expires=float(d.get("expires", 0)),
                draining=bool(d.get("draining", False)),
            )
            for d in documents
        ]

    def leave(self, node_id: str) -> None:
        with translated_errors():
            self.nodes_collection.delete_one({"_id": node_id})

    # -- leases ------------------------------------------------------------------------

    def leases(self) -> list[Lease]:
        with translated_errors():
            return [_lease(d) for d in self.leases_collection.find({})]

    def acquire(self, key: str, node_id: str, now: float, expires: float) -> Lease | None:
        counter = self.recorder.positions
        counter_id = self.recorder.events_collection_name

        def take(session: ClientSession) -> dict[str, Any] | None:
            document = self.leases_collection.find_one_and_update(
                {
                    "_id": key,
                    # Free, expired, or this node's own from before a restart (its appends,
                    # if any are still open, must not commit under the new epoch either).
                    "$or": [{"owner": None}, {"expires": {"$lte": now}}, {"owner": node_id}],
                },
                {"$set": {"owner": node_id, "expires": expires}, "$inc": {"epoch": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            # The fence: overlapping appends conflict with this write (module docstring).
            counter.update_one({"_id": counter_id}, {"$set": {"fenced": now}}, session=session)
            return document

        try:
            document = self.datastore.transaction(take)
        except IntegrityError:  # the upsert met a lease that another node holds
            return None
        return None if document is None else _lease(document)

    def renew(self, node_id: str, keys: Iterable[str], expires: float) -> set[str]:
        wanted = set(keys)
        if not wanted:
            return set()
        with translated_errors():
            renewed = self.leases_collection.update_many(
                {"_id": {"$in": list(wanted)}, "owner": node_id}, {"$set": {"expires": expires}}
            )
            if renewed.matched_count == len(wanted):
                return wanted  # the usual case: one round trip
            return {
                str(d["_id"])
                for d in self.leases_collection.find(
                    {"_id": {"$in": list(wanted)}, "owner": node_id}, {"_id": 1}
                )
            }

    def release(self, key: str, node_id: str, epoch: int) -> None:
        with translated_errors():
            self.leases_collection.update_one(
                {"_id": key, "owner": node_id, "epoch": epoch},
                {"$set": {"owner": None, "expires": 0.0}},
            )

    def forget(self, key: str) -> None:
        with translated_errors():
            self.leases_collection.delete_one({"_id": key, "owner": None})

    def fence(
        self, node_id: str, policy: FencePolicy, on_lost: Callable[[list[str]], None]
    ) -> None:
        self.recorder.fencing = MongoFence(self.datastore, node_id, policy, on_lost)

    def server_time(self) -> float:
        with translated_errors():
            local = self.datastore.client.admin.command("hello")["localTime"]
        if local.tzinfo is None:
            local = local.replace(tzinfo=UTC)
        return float(local.timestamp())


def _lease(document: dict[str, Any]) -> Lease:
    owner = document.get("owner")
    return Lease(
        key=str(document["_id"]),
        owner=None if owner is None else str(owner),
        epoch=int(document.get("epoch", 0)),
        expires=float(document.get("expires", 0)),
    )
