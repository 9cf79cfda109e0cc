"""A MongoDB server for the tests: SecantusDB in this process, or MONGODB_TEST_URL.

SecantusDB (a test-only dependency) speaks the MongoDB wire protocol on WiredTiger and
reports itself as a single-node replica set, so sessions and transactions work. With
MONGODB_TEST_URL set, the same tests run against that server (a real mongod) instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pymongo
import pytest
from pymongo.database import Database


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    url = os.environ.get("MONGODB_TEST_URL")
    if url:
        yield url
        return
    from secantus import SecantusDBServer  # GPL-2.0, installed for the tests only

    with SecantusDBServer(
        host="127.0.0.1", storage_path=":memory:", cache_size="256M"
    ) as server:
        yield server.uri


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
