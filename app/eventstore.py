"""The event store: the one source of truth, and the group-commit writer in front of it."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent, DomainEventProtocol
from eventsourcing.persistence import InfrastructureFactory, PersistenceError, Recording
from eventsourcing.utils import Environment, EnvType

from domain.instance import Instance
from domain.user import User
from storage.provider import StorageProvider
from storage.recorder import EventRecorder

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL = 50


class EventStore(Application):
    """All instances and users, as aggregates in one application sequence.

    On `storage` (the server's way), or configured by `env` alone as any eventsourcing
    application is (`storage.sqlite.events.environment(path)`, ...).
    """

    name = "WhatsApp"
    snapshotting_intervals = {Instance: SNAPSHOT_INTERVAL, User: SNAPSHOT_INTERVAL}

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        storage: StorageProvider | None = None,
        create: bool = True,
    ) -> None:
        self._storage = storage
        self._create = create
        super().__init__(env)

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        if self._storage is None:
            return super().construct_factory(env)
        return self._storage.infrastructure(env, create=self._create)

    recorder: EventRecorder  # what every storage provider's recorder is

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """As Application.save. Given only domain events (what the group committer saves),
        it puts them in the event store directly: Application.save would do the same (no
        aggregates means no cache, snapshots or notify hooks to run) after a runtime
        Protocol isinstance check per event, a quarter of the committer thread's time."""
        if kwargs or not all(isinstance(obj, DomainEvent) for obj in objs):
            return super().save(*objs, **kwargs)
        return self.events.put(list(objs))


def open_store(storage: StorageProvider, *, create: bool = True) -> EventStore:
    """The event store on `storage`; StoreUnavailable if it is missing or unreachable
    (without `create`, nothing is created)."""
    try:
        return EventStore(storage=storage, create=create)
    except (PersistenceError, OSError) as error:
        raise storage.unavailable(error) from None


@dataclass
class _Batch:
    events: Sequence[DomainEventProtocol[Any]]
    snapshot: DomainEventProtocol[Any] | None
    done: Future[list[int]] = field(default_factory=Future)


@dataclass
class _Reset:
    originator_id: Any


class PoisonedAggregate(PersistenceError):
    """An earlier batch of this aggregate failed; its owner must reload it first."""


class GroupCommitter:
    """Saves the events of many callers in one transaction (one fsync).

    Callers block until their own events are durable and get their positions back.
    Under load, events waiting while one transaction commits go into the next one
    together, which is what lets the send path outrun one-fsync-per-request.
    A batch that fails as a whole is retried caller by caller, so one caller's
    conflict never fails another's events.

    Callers may queue several batches of one aggregate without waiting (actors do, to
    pipeline commands). If one fails, the aggregate is poisoned: its later batches
    fail too rather than leave a gap in its versions, until its owner has reloaded it
    and called `reset()`, which travels through the same queue, so nothing queued
    before the reload can be written after it.
    """

    def __init__(self, store: EventStore, max_batch: int = 512) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Batch | _Reset | None] = queue.SimpleQueue()
        self._poisoned: set[Any] = set()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def commit(
        self,
        events: Sequence[DomainEventProtocol[Any]],
        snapshot: DomainEventProtocol[Any] | None = None,
        timeout: float = 30.0,
    ) -> list[int]:
        """Store `events` (then `snapshot`, if any) durably; return their positions."""
        if not events:
            return []
        try:
            return self.submit(events, snapshot).result(timeout=timeout)
        except Exception:
            # The caller reloads before trying again (users are loaded per command).
            for originator_id in {e.originator_id for e in events}:
                self.reset(originator_id)
            raise

    def submit(
        self,
        events: Sequence[DomainEventProtocol[Any]],
        snapshot: DomainEventProtocol[Any] | None = None,
    ) -> Future[list[int]]:
        """Queue `events` for the next transaction; the future gives their positions."""
        batch = _Batch(events, snapshot)
        if not events:
            batch.done.set_result([])
        else:
            self._queue.put(batch)
        return batch.done

    def reset(self, originator_id: Any) -> None:
        """The owner reloaded this aggregate: accept its batches again (in queue order)."""
        self._queue.put(_Reset(originator_id))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        closing = False
        while not closing:
            item = self._queue.get()
            batches: list[_Batch] = []
            while True:
                if item is None:
                    closing = True
                    break
                if isinstance(item, _Reset):
                    self._save(batches)  # what came before the reset, first
                    batches = []
                    self._poisoned.discard(item.originator_id)
                else:
                    batches.append(item)
                if len(batches) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._save(batches)

    def _save(self, batches: list[_Batch]) -> None:
        if self._poisoned:
            healthy = []
            for batch in batches:
                if {e.originator_id for e in batch.events} & self._poisoned:
                    batch.done.set_exception(PoisonedAggregate("an earlier change was not stored"))
                else:
                    healthy.append(batch)
            batches = healthy
        if not batches:
            return
        try:
            recordings = self._store.save(*(e for b in batches for e in b.events))
        except Exception as error:
            if len(batches) == 1:
                self._poisoned.update(e.originator_id for e in batches[0].events)
                batches[0].done.set_exception(error)
                return
            for batch in batches:
                self._save([batch])
            return
        offset = 0
        for batch in batches:
            n = len(batch.events)
            positions = [r.notification.id for r in recordings[offset : offset + n]]
            offset += n
            if batch.snapshot is not None and self._store.snapshots is not None:
                try:
                    self._store.snapshots.put([batch.snapshot])
                except Exception:  # a snapshot is an optimisation; events are stored
                    log.exception("could not store snapshot")
            batch.done.set_result(positions)
