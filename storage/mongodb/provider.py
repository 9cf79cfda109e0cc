"""Everything on MongoDB, through one client: the event store's database (events,
snapshots, position counter, webhook cursors) and the read models in `<database>_read`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InfrastructureFactory, PersistenceError
from eventsourcing.utils import Environment

from projections.queries import ReadModelQueries
from projections.rows import ReadModels
from storage.mongodb import backup
from storage.mongodb.cluster import MongoClusterStore
from storage.mongodb.cursors import MongoCursors
from storage.mongodb.datastore import (
    DEFAULT_DATABASE,
    MongoDatastore,
    StandaloneServerError,
    database_in,
    translated_errors,
)
from storage.mongodb.events import MongoApplicationRecorder, MongoFactory, environment
from storage.mongodb.queries import MongoReadModels
from storage.mongodb.read_models import MongoReadModelStore
from storage.provider import (
    BackedUp,
    Diagnosis,
    Step,
    StorageProvider,
    StoreUnavailable,
    one_line,
)
from storage.recorder import EventRecorder

# The application's collections (eventsourcing names them after the application).
EVENTS_COLLECTION = "whatsapp_events"
SNAPSHOTS_COLLECTION = "whatsapp_snapshots"


class MongoStorage(StorageProvider):
    """The event store, read models and webhook cursors on a MongoDB replica set."""

    name = "mongodb"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.database = database_in(url) or DEFAULT_DATABASE
        # Beside the event store's database, so their tracking and meta cannot clash.
        self.read_models_database = f"{self.database}_read"
        self.timeout = timeout

    @cached_property
    def datastore(self) -> MongoDatastore:
        """The process's one client (made at first use; pymongo connects lazily)."""
        with translated_errors():  # a URL pymongo cannot use
            return MongoDatastore(self.url, self.database, self.timeout)

    def infrastructure(self, env: Environment, *, create: bool) -> InfrastructureFactory[Any]:
        env.update(environment(self.url))
        if not create:
            env["CREATE_TABLE"] = "no"
        return MongoFactory(env, datastore=self.datastore)

    def read_models(self) -> MongoReadModelStore:
        return MongoReadModelStore(self.datastore.client, self.read_models_database)

    def queries(self, read_models: ReadModels) -> ReadModelQueries:
        if not isinstance(read_models, MongoReadModelStore):
            raise TypeError("the MongoDB read-model queries need a MongoDB read-model store")
        return MongoReadModels(read_models)

    def cursors(self) -> MongoCursors:
        return MongoCursors(self.datastore.db)

    def details(self) -> dict[str, str]:
        return {"provider": self.name, "replicaSet": self.datastore.replica_set()}

    def unavailable(self, error: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"cannot open the event store (MongoDB): {one_line(error)}")

    def diagnose(self) -> Diagnosis:
        try:
            datastore = self.datastore
            replica_set = datastore.replica_set()
            with translated_errors():
                host, port = datastore.client.address or ("?", "?")
                version = datastore.client.server_info().get("version", "?")
                events = datastore.db[EVENTS_COLLECTION].estimated_document_count()
        except StandaloneServerError as error:
            return Diagnosis(
                "fail",
                str(error),
                "run MongoDB as a replica set (a single node is enough), as docker/ does",
            )
        except PersistenceError as error:
            return Diagnosis(
                "fail",
                f"MongoDB is not reachable: {one_line(error)}",
                "check DATABASE_URL (host, port, user, password, authSource) and that "
                "MongoDB is running",
            )
        except Exception as error:  # anything else the driver says (mongodb+srv's DNS)
            return Diagnosis(
                "fail",
                f"MongoDB: {one_line(error)}",
                "check DATABASE_URL (user, password, authSource)",
            )
        return Diagnosis(
            "ok",
            f"MongoDB {version} at {host}:{port}, replica set "
            f"{replica_set}, database {self.database}: {events} events",
        )

    def cluster(self, recorder: EventRecorder) -> MongoClusterStore:
        if not isinstance(recorder, MongoApplicationRecorder):
            raise TypeError("the MongoDB cluster store needs the MongoDB event store")
        return MongoClusterStore(recorder)

    def backup(self, into: Path, step: Step) -> BackedUp:
        return backup.backup(self.datastore, EVENTS_COLLECTION, SNAPSHOTS_COLLECTION, into, step)

    def held(self) -> list[str]:
        return backup.held(self.datastore, EVENTS_COLLECTION)

    def erase(self) -> None:
        backup.erase(
            self.datastore, EVENTS_COLLECTION, SNAPSHOTS_COLLECTION, self.read_models_database
        )

    def restore(self, source: Path, backed_up: BackedUp, step: Step) -> None:
        backup.restore(
            self.datastore, EVENTS_COLLECTION, SNAPSHOTS_COLLECTION, source, backed_up, step
        )

    def close(self) -> None:
        if "datastore" in self.__dict__:
            self.datastore.close()
