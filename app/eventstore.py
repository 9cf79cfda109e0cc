"""The event store: the one source of truth, and the group-commit writer in front of it."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent, DomainEventProtocol
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    PersistenceError,
    Recording,
)
from eventsourcing.utils import Environment, EnvType

from domain import events
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
    # Every aggregate, by one rule (see Snapshotter).
    snapshotting_intervals = {aggregate: SNAPSHOT_INTERVAL for aggregate in events.AGGREGATES}

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

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
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
        self._snapshots = Snapshotter(store)
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Batch | _Reset | None] = queue.SimpleQueue()
        self._poisoned: set[Any] = set()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def commit(
        self, events: Sequence[DomainEventProtocol[Any]], timeout: float = 30.0
    ) -> list[int]:
        """Store `events` durably; return their positions."""
        if not events:
            return []
        try:
            return self.submit(events).result(timeout=timeout)
        except Exception:
            # The caller reloads before trying again (users are loaded per command).
            for originator_id in {e.originator_id for e in events}:
                self.reset(originator_id)
            raise

    def submit(self, events: Sequence[DomainEventProtocol[Any]]) -> Future[list[int]]:
        """Queue `events` for the next transaction; the future gives their positions."""
        batch = _Batch(events)
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
        self._snapshots.close()

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
            batch.done.set_result(positions)
        self._snapshots.saved(e for b in batches for e in b.events)


class Snapshotter:
    """Snapshots every aggregate the committer saves, every `snapshotting_intervals` events.

    The rule is eventsourcing's own (Application.save follows it for the aggregates it is
    given): when an event's version is a multiple of its aggregate's interval, the
    aggregate is loaded at that version (from its last snapshot and the events since) and
    a snapshot of it is stored. Loading an aggregate then reads one snapshot and fewer
    than an interval of events, however many it has. Here it happens in a thread of its
    own, after the events are durable, so no caller waits for it; a snapshot that exists
    already (another process took it) is left as it is.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._intervals = {
            e.cls: store.snapshotting_intervals[e.aggregate]
            for e in events.EVENT_TYPES
            if e.aggregate in store.snapshotting_intervals
        }
        self._queue: queue.SimpleQueue[tuple[UUID, int] | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
        self._thread.start()

    def saved(self, stored: Iterable[DomainEventProtocol[Any]]) -> None:
        """These events are durable: queue the snapshots they call for."""
        for event in stored:
            interval = self._intervals.get(type(event))
            if interval and event.originator_version % interval == 0:
                self._queue.put((event.originator_id, event.originator_version))

    def close(self) -> None:
        """Stop: the snapshot being taken is finished, those not yet begun are left (a
        snapshot is an optimisation: the next one due is taken after the next events)."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (due := self._queue.get()) is not None and not self._stopping.is_set():
            try:
                self._store.take_snapshot(*due)
            except IntegrityError:
                pass  # taken already
            except Exception:  # a snapshot is an optimisation; the events are stored
                log.exception("could not take a snapshot of %s at version %s", *due)
