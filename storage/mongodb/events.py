"""An eventsourcing persistence module for MongoDB, on pymongo.

Chosen by configuration like the library's own modules (`PERSISTENCE_MODULE=storage.mongodb.events`),
and shaped like `eventsourcing.postgres`: aggregate, application, tracking and process
recorders on a datastore (`storage.mongodb.datastore`), a live subscription, and a `Factory`.

Environment keys (looked up as `<APPNAME>_KEY` before `KEY`, as for every factory):

- `MONGODB_URL` (required): a `mongodb://` or `mongodb+srv://` URI of a replica set.
- `MONGODB_DATABASE`: the database; defaults to the database named in the URL's path.
- `MONGODB_TIMEOUT`: seconds to wait for the server (default 10); an append retries a lost
  server for up to twice that, and conflicts with other appenders for up to six times.
- `CREATE_TABLE`: create collections and indexes (default yes).

Collections, named after the application like the postgres tables: `<app>_events` (the
application sequence; `_id` is the notification id), `<app>_snapshots`, `<name>_tracking`
(one document per upstream application, `_id` its name), and `positions` (one counter
document per events collection).

How positions are assigned, and why a subscriber resuming with `gt=last` never skips an
event committed late: every append is one multi-document transaction that first `$inc`s the
events collection's counter document by the number of events, then inserts the events with
the positions it got. Two appenders that overlap both write the counter document, so
MongoDB's snapshot isolation fails the second with a WriteConflict (a
TransientTransactionError) and it retries from a new snapshot, after the first one has
committed. A transaction that reads the counter at N therefore commits after every
transaction that took positions up to N: commit order is position order. An aborted
append rolls its counter increment back with it, so positions are also contiguous.
Readers of the sequence read inside a snapshot transaction, so one read never sees a
later commit without the earlier ones either. Change streams are only the doorbell: a
subscription reads what it yields with `gt=last`, so a dropped or unresumable stream costs
latency, never an event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from time import sleep
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    InfrastructureFactory,
    ListenNotifySubscription,
    Notification,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from storage import recorder as wakeups
from storage.mongodb.datastore import (
    DEFAULT_DATABASE,
    MongoDatastore,
    database_in,
    translated_errors,
)
from storage.recorder import EventRecorder

log = logging.getLogger(__name__)

POSITIONS = "positions"


# What the recorder asks, inside an append's transaction, when several nodes share the store
# (storage/mongodb/cluster.py): checks the leases the events need, and says what to stamp on
# each event (which node appended it, under which lease epoch).
Fence = Callable[[ClientSession, Sequence[StoredEvent]], list[dict[str, Any] | None]]


class MongoRecorder:
    """Base class of the recorders: the datastore and the collections' creation."""

    def __init__(self, datastore: MongoDatastore) -> None:
        self.datastore = datastore

    def create_table(self) -> None:
        """Create collections and indexes (idempotent)."""


class MongoAggregateRecorder(MongoRecorder, AggregateRecorder):
    """Events (or snapshots) of aggregates, unique by (originator_id, originator_version)."""

    def __init__(self, datastore: MongoDatastore, events_collection_name: str = "stored_events"):
        super().__init__(datastore)
        self.events_collection_name = events_collection_name
        self.events: Collection[dict[str, Any]] = datastore.db[events_collection_name]

    def create_table(self) -> None:
        with translated_errors():
            self.events.create_index(
                [("originator_id", ASCENDING), ("originator_version", ASCENDING)],
                unique=True,
                name="originator",
            )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if len(stored_events) == 1:
            with translated_errors():  # one document is atomic without a transaction
                self.events.insert_one(_document(stored_events[0]))
        elif stored_events:
            self.datastore.transaction(lambda s: self._insert(s, stored_events, **kwargs))
        return None

    def _insert(
        self, session: ClientSession, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> list[int]:
        self.events.insert_many(
            [_document(s) for s in stored_events], ordered=True, session=session
        )
        return []

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        query: dict[str, Any] = {"originator_id": originator_id}
        versions: dict[str, int] = {}
        if gt is not None:
            versions["$gt"] = gt
        if lte is not None:
            versions["$lte"] = lte
        if versions:
            query["originator_version"] = versions
        with translated_errors():
            cursor = self.events.find(
                query,
                projection={"_id": 0},
                sort=[("originator_version", DESCENDING if desc else ASCENDING)],
                limit=limit or 0,
            )
            return [
                StoredEvent(
                    originator_id=d["originator_id"],
                    originator_version=d["originator_version"],
                    topic=d["topic"],
                    state=d["state"],
                )
                for d in cursor
            ]


def _document(
    s: StoredEvent, position: int | None = None, stamp: dict[str, Any] | None = None
) -> dict[str, Any]:
    # UUIDs are stored as BSON UUIDs (binary subtype 4) and come back as UUIDs.
    document: dict[str, Any] = {
        "originator_id": s.originator_id,
        "originator_version": s.originator_version,
        "topic": s.topic,
        "state": s.state,
    }
    if position is not None:
        document["_id"] = position
    if stamp is not None:  # several nodes: who appended it, under which lease epoch
        document["lease"] = stamp
    return document


def _notification(d: dict[str, Any]) -> Notification:
    return Notification(
        id=d["_id"],
        originator_id=d["originator_id"],
        originator_version=d["originator_version"],
        topic=d["topic"],
        state=d["state"],
    )


_append_locks: dict[tuple[str, str], threading.Lock] = {}
_append_locks_lock = threading.Lock()


def _appending(key: tuple[str, str]) -> threading.Lock:
    """The lock this process's appenders to one events collection take turns with."""
    with _append_locks_lock:
        lock = _append_locks.get(key)
        if lock is None:
            lock = _append_locks[key] = threading.Lock()
        return lock


class MongoApplicationRecorder(MongoAggregateRecorder, EventRecorder):
    """The application sequence: each event's `_id` is its position (notification id)."""

    def __init__(self, datastore: MongoDatastore, events_collection_name: str = "stored_events"):
        super().__init__(datastore, events_collection_name)
        self.positions: Collection[dict[str, Any]] = datastore.db[POSITIONS]
        self.fencing: Fence | None = None  # several nodes (see Fence)

    def create_table(self) -> None:
        super().create_table()
        with translated_errors():
            # One aggregate's events in position order (the product reads them so).
            self.events.create_index(
                [("originator_id", ASCENDING), ("_id", ASCENDING)], name="originator_position"
            )
            # Created before anyone appends: concurrent first upserts of it could race.
            self.positions.update_one(
                {"_id": self.events_collection_name}, {"$setOnInsert": {"last": 0}}, upsert=True
            )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events and kwargs.get("tracking") is None:
            return []
        # Appenders in one process take turns: each would write the counter document, so
        # two at once only conflict, and a retry loop has no order. Ten threads appending
        # at once left one of them losing every retry for over a minute on a busy machine
        # (eventsourcing's test_concurrent_no_conflicts); waiting on a lock, none does.
        # Other processes still conflict, and retry, as the module docstring says.
        with _appending(self._key):
            ids = self.datastore.transaction(lambda s: self._insert(s, stored_events, **kwargs))
        wakeups.ring(self._key)
        return ids

    @property
    def _key(self) -> tuple[str, str]:
        return self.datastore.db.name, self.events_collection_name

    def _insert(
        self, session: ClientSession, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> list[int]:
        if not stored_events:
            return []
        n = len(stored_events)
        # The counter write comes first: a racing appender conflicts here, before inserting.
        counter = self.positions.find_one_and_update(
            {"_id": self.events_collection_name},
            {"$inc": {"last": n}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if counter is None:
            raise OperationalError(f"no position counter for {self.events_collection_name}")
        first = int(counter["last"]) - n + 1
        stamps = self.fencing(session, stored_events) if self.fencing is not None else None
        self.events.insert_many(
            [
                _document(s, first + i, stamps[i] if stamps else None)
                for i, s in enumerate(stored_events)
            ],
            ordered=True,
            session=session,
        )
        return list(range(first, first + n))

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        positions: dict[str, int] = {}
        if start is not None:
            positions["$gte" if inclusive_of_start else "$gt"] = start
        if stop is not None:
            positions["$lte"] = stop
        query: dict[str, Any] = {"_id": positions} if positions else {}
        if topics:
            query["topic"] = {"$in": list(topics)}
        # The _id index, named: SecantusDB's planner would otherwise scan and sort.
        return self._select(query, limit, hint=[("_id", ASCENDING)])

    def select_originator_notifications(
        self, originator_id: UUID, gt: int, limit: int, topics: Sequence[str] = ()
    ) -> list[Notification]:
        query: dict[str, Any] = {"originator_id": originator_id, "_id": {"$gt": gt}}
        if topics:
            query["topic"] = {"$in": list(topics)}
        return self._select(query, limit, hint=[("originator_id", ASCENDING), ("_id", ASCENDING)])

    def _select(
        self, query: dict[str, Any], limit: int, hint: list[tuple[str, int]]
    ) -> list[Notification]:
        def body(session: ClientSession) -> list[Notification]:
            cursor = self.events.find(
                query,
                sort=[("_id", ASCENDING)],
                limit=limit,
                session=session,
                batch_size=max(min(limit, 10_000), 1),
                hint=hint,
            )
            return [_notification(d) for d in cursor]

        return self.datastore.read(body)

    def max_notification_id(self) -> int | None:
        with translated_errors():
            last = self.events.find_one({}, projection={"_id": 1}, sort=[("_id", DESCENDING)])
        return None if last is None else int(last["_id"])

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> MongoSubscription:
        return MongoSubscription(self, gt=gt, topics=topics)


class MongoSubscription(ListenNotifySubscription[MongoApplicationRecorder]):
    """Yields notifications after `gt` in position order, then new ones as they commit.

    A watch thread follows a change stream on the events collection and only rings the
    pull thread, which reads with `gt=last` (the catch-up read). When the stream drops it
    is reopened after its last resume token; if the server can no longer resume from it,
    a new stream is opened and the pull reads whatever was committed in between.
    """

    RETRY_MAX = 2.0

    def __init__(
        self, recorder: MongoApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        self._key = recorder._key
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        # Appends made in this process wake it at once; the change stream, all others.
        wakeups.listen(self._key, self._has_been_notified)
        self._watch_thread = threading.Thread(target=self._watch, name="mongo-watch", daemon=True)
        self._watch_thread.start()

    def _watch(self) -> None:
        token: Any = None
        retry = 0.05
        while not self._has_been_stopped:
            try:
                with self._recorder.events.watch(
                    [{"$match": {"operationType": "insert"}}, {"$project": {"_id": 1}}],
                    resume_after=token,
                    max_await_time_ms=200,
                ) as stream:
                    retry = 0.05
                    # Whatever was committed while no stream was open is read now.
                    self._has_been_notified.set()
                    while not self._has_been_stopped and stream.alive:
                        change = stream.try_next()
                        token = stream.resume_token
                        if change is not None:
                            self._has_been_notified.set()
            except PyMongoError as error:
                if self._has_been_stopped:
                    break
                if isinstance(error, OperationFailure):
                    token = None  # not resumable from there: a new stream, then catch up
                log.warning("change stream dropped (%s); reopening", error)
                self._has_been_notified.set()
                sleep(retry)
                retry = min(retry * 2, self.RETRY_MAX)

    def _pull(self) -> None:
        # A primary that steps down or a server that restarts is waited out, not fatal.
        retry = 0.05
        while True:
            try:
                super()._pull()
                return
            except OperationalError as error:
                if self._has_been_stopped:
                    return
                log.warning("cannot read the event store (%s); retrying", error)
                sleep(retry)
                retry = min(retry * 2, self.RETRY_MAX)

    def stop(self) -> None:
        wakeups.unlisten(self._key, self._has_been_notified)
        super().stop()

    def __exit__(self, *args: object, **kwargs: Any) -> None:
        try:
            super().__exit__(*args, **kwargs)
        finally:
            self._watch_thread.join(timeout=5)


class MongoTrackingRecorder(MongoRecorder, TrackingRecorder):
    """The last position processed from each upstream application, one document each."""

    def __init__(
        self,
        datastore: MongoDatastore,
        tracking_collection_name: str = "notification_tracking",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.tracking_collection_name = tracking_collection_name
        self.tracking: Collection[dict[str, Any]] = datastore.db[tracking_collection_name]

    def insert_tracking(self, tracking: Tracking) -> None:
        with translated_errors():
            self._insert_tracking(tracking)

    def _insert_tracking(self, tracking: Tracking, session: ClientSession | None = None) -> None:
        # Matches only a lower position; otherwise the upsert inserts the same _id again,
        # which fails as a duplicate: a position at or below the last one is refused.
        self.tracking.update_one(
            {
                "_id": tracking.application_name,
                "notification_id": {"$lt": tracking.notification_id},
            },
            {"$set": {"notification_id": tracking.notification_id}},
            upsert=True,
            session=session,
        )

    def max_tracking_id(self, application_name: str) -> int | None:
        with translated_errors():
            document = self.tracking.find_one({"_id": application_name})
        return None if document is None else int(document["notification_id"])


class MongoProcessRecorder(MongoTrackingRecorder, MongoApplicationRecorder, ProcessRecorder):
    """Events and the tracking position they were made from, in one transaction."""

    def __init__(
        self,
        datastore: MongoDatastore,
        events_collection_name: str = "stored_events",
        tracking_collection_name: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore, tracking_collection_name, events_collection_name=events_collection_name
        )

    def _insert(
        self, session: ClientSession, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> list[int]:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(tracking, session)
        return super()._insert(session, stored_events, **kwargs)


TMongoTrackingRecorder = TypeVar("TMongoTrackingRecorder", bound=MongoTrackingRecorder)


class MongoFactory(InfrastructureFactory[MongoTrackingRecorder]):
    """Builds the recorders on one MongoDB database (see the module docstring for keys)."""

    MONGODB_URL = "MONGODB_URL"
    MONGODB_DATABASE = "MONGODB_DATABASE"
    MONGODB_TIMEOUT = "MONGODB_TIMEOUT"
    CREATE_TABLE = "CREATE_TABLE"

    aggregate_recorder_class = MongoAggregateRecorder
    application_recorder_class = MongoApplicationRecorder
    tracking_recorder_class = MongoTrackingRecorder
    process_recorder_class = MongoProcessRecorder

    def __init__(
        self, env: Environment | EnvType | None, datastore: MongoDatastore | None = None
    ) -> None:
        """With `datastore`, the recorders use it (the process's one client) and closing
        the factory leaves it open; otherwise the factory makes its own from `env`."""
        super().__init__(env)
        self._owns_datastore = datastore is None
        if datastore is not None:
            self.datastore = datastore
            self.datastore.replica_set()
            return
        url = self.env.get(self.MONGODB_URL)
        if not url:
            raise OSError(f"MongoDB URL not found in environment with key '{self.MONGODB_URL}'")
        database = self.env.get(self.MONGODB_DATABASE) or database_in(url)
        if not database:
            raise OSError(
                f"MongoDB database not found in environment with key '{self.MONGODB_DATABASE}'"
                " nor in the path of the URL"
            )
        raw_timeout = self.env.get(self.MONGODB_TIMEOUT) or "10"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise OSError(
                f"MongoDB environment value for key '{self.MONGODB_TIMEOUT}' is invalid: "
                f"a number of seconds is expected, got '{raw_timeout}'"
            ) from None
        self.datastore = MongoDatastore(url, database, timeout)
        try:
            self.datastore.replica_set()
        except BaseException:
            self.datastore.close()
            raise

    def env_create_table(self) -> bool:
        return strtobool(self.env.get(self.CREATE_TABLE) or "yes")

    def _prefix(self, default: str) -> str:
        return self.env.name.lower() or default

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        recorder = type(self).aggregate_recorder_class(
            self.datastore, f"{self._prefix('stored')}_{purpose}"
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def application_recorder(self) -> MongoApplicationRecorder:
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls: type[MongoApplicationRecorder] = (
            resolve_topic(topic) if topic else type(self).application_recorder_class
        )
        assert issubclass(cls, MongoApplicationRecorder)
        recorder = cls(self.datastore, f"{self._prefix('stored')}_events")
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def tracking_recorder(
        self, tracking_recorder_class: type[TMongoTrackingRecorder] | None = None
    ) -> TMongoTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = cast(
                "type[TMongoTrackingRecorder]",
                resolve_topic(topic) if topic else type(self).tracking_recorder_class,
            )
        assert issubclass(tracking_recorder_class, MongoTrackingRecorder)
        recorder = tracking_recorder_class(
            self.datastore, f"{self._prefix('notification')}_tracking"
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls: type[MongoProcessRecorder] = (
            resolve_topic(topic) if topic else type(self).process_recorder_class
        )
        assert issubclass(cls, MongoProcessRecorder)
        recorder = cls(
            self.datastore,
            f"{self._prefix('stored')}_events",
            f"{self._prefix('notification')}_tracking",
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def close(self) -> None:
        if getattr(self, "_owns_datastore", False):
            self.datastore.close()


def environment(url: str) -> dict[str, str]:
    """The eventsourcing environment of an event store in the database named by `url`
    (the product's default database if the URL names none)."""
    return {
        "PERSISTENCE_MODULE": __name__,
        "MONGODB_URL": url,
        "MONGODB_DATABASE": database_in(url) or DEFAULT_DATABASE,
    }


Factory = MongoFactory
