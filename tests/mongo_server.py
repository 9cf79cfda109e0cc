"""MongoDB fixtures for the read-model tests, on the test run's one server (tests/mongo.py).

`mongo_url` is the session's server (SecantusDB, or MONGODB_TEST_URL), `mongo_client` a
client of it, and `mongo_db` a database of the test's own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pymongo
import pytest
from pymongo.database import Database

from tests import mongo


@pytest.fixture(scope="session")
def mongo_url(mongodb_url: str) -> str:
    return mongodb_url


@pytest.fixture(scope="session")
def mongo_client(mongo_url: str) -> Iterator[pymongo.MongoClient]:
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    yield client
    client.close()


@pytest.fixture()
def mongo_db(mongo_client: pymongo.MongoClient) -> Iterator[Database]:
    """A database of the test's own, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


@pytest.fixture()
def mongo_database(mongo_url: str) -> Iterator[str]:
    """A database name of this test's own; it and its `<name>_...` companions are dropped after."""
    name = mongo.new_database_name()
    yield name
    mongo.drop_databases(mongo_url, name)
