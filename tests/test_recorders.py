"""Both providers' event store recorders pass the eventsourcing library's own conformance
suites: each case is subclassed once per provider (eventsourcing's own pattern), and runs
on a place of its own (a SQLite file; a database on the test run's MongoDB server).

The recorders are the ones the product uses, made the way it makes them: by the storage
provider's eventsourcing infrastructure (`StorageProvider.infrastructure`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteProcessRecorder,
    SQLiteTrackingRecorder,
)
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from storage.mongodb import events as mongodb_events
from storage.sqlite import events as sqlite_events
from tests.places import PROVIDERS, Storage, place


class OnStorage:
    """A place of the case's own on `provider`, and the product's infrastructure there.

    unittest cases cannot take pytest's parameters, so each provider gets a subclass
    (below); the place is made as the `storage` fixture makes it."""

    __test__ = False  # the subclasses below, one per provider, are the tests
    provider: str
    storage: Storage
    infrastructure: InfrastructureFactory[Any]

    @pytest.fixture(autouse=True)
    def _on_storage(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
        with place(request, self.provider, tmp_path) as storage:
            self.storage = storage
            self.infrastructure = storage.open().infrastructure(Environment(""), create=True)
            try:
                yield
            finally:
                # The library's concurrency case stops its reader threads without joining
                # them: closing the database under one still reading crashes the process.
                for thread in threading.enumerate():
                    if thread.name.endswith("(read_continuously)"):
                        thread.join(timeout=10)
                self.infrastructure.close()


class AggregateRecorders(OnStorage, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.infrastructure.aggregate_recorder()


class ApplicationRecorders(OnStorage, ApplicationRecorderTestCase[Any]):
    def create_recorder(self) -> ApplicationRecorder:
        return self.infrastructure.application_recorder()

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TrackingRecorders(OnStorage, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.infrastructure.tracking_recorder()


class ProcessRecorders(OnStorage, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.infrastructure.process_recorder()


class NonInterleavingNotificationIDs(OnStorage, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.infrastructure.application_recorder()


class TrackingRecorderSubclass(SQLiteTrackingRecorder):
    pass


class MongoTrackingRecorderSubclass(mongodb_events.MongoTrackingRecorder):
    pass


# What each provider's persistence module builds from an environment alone.
FACTORIES: dict[str, dict[str, type[Any]]] = {
    "sqlite": {
        "factory": sqlite_events.Factory,
        "aggregate": SQLiteAggregateRecorder,
        "application": sqlite_events.SubscribableSQLiteApplicationRecorder,
        "tracking": SQLiteTrackingRecorder,
        "tracking subclass": TrackingRecorderSubclass,
        "process": SQLiteProcessRecorder,
    },
    "mongodb": {
        "factory": mongodb_events.MongoFactory,
        "aggregate": mongodb_events.MongoAggregateRecorder,
        "application": mongodb_events.MongoApplicationRecorder,
        "tracking": mongodb_events.MongoTrackingRecorder,
        "tracking subclass": MongoTrackingRecorderSubclass,
        "process": mongodb_events.MongoProcessRecorder,
    },
}


class InfrastructureFactories(OnStorage, InfrastructureFactoryTestCase[Any]):
    def setUp(self) -> None:
        # From the environment alone, as the library's own modules are configured (the
        # suite mutates it, so each test builds its own).
        settings = self.storage.settings()
        if self.provider == "sqlite":
            env = sqlite_events.environment(str(settings.sqlite_path))
        else:
            assert settings.database_url is not None
            env = mongodb_events.environment(settings.database_url)
        self.env = Environment("TestCase", env)
        super().setUp()

    def expected(self, kind: str) -> type[Any]:
        return FACTORIES[self.provider][kind]

    def expected_factory_class(self) -> type[Any]:
        return self.expected("factory")

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return self.expected("aggregate")

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return self.expected("application")

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return self.expected("tracking")

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.expected("tracking subclass")

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return self.expected("process")


class MongoDBFactoryKeys(OnStorage):
    """What the MongoDB persistence module reads from the environment."""

    provider = "mongodb"

    def test_the_database_comes_from_the_url(self) -> None:
        settings = self.storage.settings()
        assert settings.database_url is not None and self.storage.database is not None
        env = mongodb_events.environment(settings.database_url)
        del env["MONGODB_DATABASE"]
        factory: Any = InfrastructureFactory.construct(Environment("TestCase", env))
        try:
            assert factory.datastore.db.name == self.storage.database
        finally:
            factory.close()

    def test_without_a_url_it_says_which_key_is_missing(self) -> None:
        env = {"PERSISTENCE_MODULE": mongodb_events.__name__}
        with pytest.raises(OSError, match="MONGODB_URL"):
            InfrastructureFactory.construct(Environment("TestCase", env))


# Each case once per provider: TestApplicationRecordersOnSqlite, ...OnMongodb, ...
CASES = (
    AggregateRecorders,
    ApplicationRecorders,
    TrackingRecorders,
    ProcessRecorders,
    NonInterleavingNotificationIDs,
    InfrastructureFactories,
)
for _case in CASES:
    for _provider in PROVIDERS:
        _name = f"Test{_case.__name__}On{_provider.capitalize()}"
        globals()[_name] = type(_name, (_case,), {"provider": _provider, "__test__": True})
TestMongoDBFactoryKeys = type("TestMongoDBFactoryKeys", (MongoDBFactoryKeys,), {"__test__": True})

del AggregateRecorderTestCase
del ApplicationRecorderTestCase
del TrackingRecorderTestCase
del ProcessRecorderTestCase
del NonInterleavingNotificationIDsBaseCase
del InfrastructureFactoryTestCase
