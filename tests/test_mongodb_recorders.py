"""The MongoDB recorders pass the eventsourcing library's own conformance suites.

Each case runs on a database of its own on the test server (tests/mongo.py).
"""

from __future__ import annotations

import tomllib
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
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from storage.mongodb.datastore import MongoDatastore
from storage.mongodb.events import (
    MongoAggregateRecorder,
    MongoApplicationRecorder,
    MongoFactory,
    MongoProcessRecorder,
    MongoTrackingRecorder,
)
from tests import mongo


class OnMongoDB:
    """Gives each test a database of its own and a datastore on it."""

    mongodb_url: str
    database: str
    datastore: MongoDatastore

    @pytest.fixture(autouse=True)
    def _database(self, mongodb_url: str) -> Iterator[None]:
        self.mongodb_url = mongodb_url
        self.database = mongo.new_database_name()
        self.datastore = MongoDatastore(mongodb_url, self.database)
        yield
        self.datastore.close()
        mongo.drop_database(mongodb_url, self.database)


class TestAggregateRecorder(OnMongoDB, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        recorder = MongoAggregateRecorder(self.datastore, "stored_events")
        recorder.create_table()
        return recorder


class TestApplicationRecorder(OnMongoDB, ApplicationRecorderTestCase[MongoApplicationRecorder]):
    def create_recorder(self) -> MongoApplicationRecorder:
        recorder = MongoApplicationRecorder(self.datastore, "stored_events")
        recorder.create_table()
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestTrackingRecorder(OnMongoDB, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        recorder = MongoTrackingRecorder(self.datastore, "notification_tracking")
        recorder.create_table()
        return recorder


class TestProcessRecorder(OnMongoDB, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = MongoProcessRecorder(self.datastore, "stored_events", "notification_tracking")
        recorder.create_table()
        return recorder


class TestNonInterleavingNotificationIDs(OnMongoDB, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        recorder = MongoApplicationRecorder(self.datastore, "stored_events")
        recorder.create_table()
        return recorder


class TrackingRecorderSubclass(MongoTrackingRecorder):
    pass


class TestInfrastructureFactory(OnMongoDB, InfrastructureFactoryTestCase[MongoFactory]):
    def setUp(self) -> None:
        # The suite mutates the environment, so each test builds its own.
        self.env = Environment("TestCase")
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = "storage.mongodb.events"
        self.env[MongoFactory.MONGODB_URL] = self.mongodb_url
        self.env[MongoFactory.MONGODB_DATABASE] = self.database
        super().setUp()

    def expected_factory_class(self) -> type[MongoFactory]:
        return MongoFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return MongoAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return MongoApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return MongoTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return MongoProcessRecorder

    def test_database_from_the_url(self) -> None:
        del self.env[MongoFactory.MONGODB_DATABASE]
        self.env[MongoFactory.MONGODB_URL] = mongo.with_database(self.mongodb_url, self.database)
        factory: Any = InfrastructureFactory.construct(self.env)
        try:
            assert factory.datastore.db.name == self.database
        finally:
            factory.close()

    def test_without_a_url_it_says_which_key_is_missing(self) -> None:
        del self.env[MongoFactory.MONGODB_URL]
        with pytest.raises(OSError, match="MONGODB_URL"):
            InfrastructureFactory.construct(self.env)


def test_the_gpl_test_server_is_only_a_test_dependency() -> None:
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "secantus" in d.lower()]
    assert "SecantusDB==0.7.0b3" in project["optional-dependencies"]["test"]
    for path in (root / "docker").iterdir():
        assert "secantus" not in path.read_text().lower(), path.name


del AggregateRecorderTestCase
del ApplicationRecorderTestCase
del TrackingRecorderTestCase
del ProcessRecorderTestCase
del NonInterleavingNotificationIDsBaseCase
del InfrastructureFactoryTestCase
