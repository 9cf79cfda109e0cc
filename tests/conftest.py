from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import mongo
from tests.server import Api, Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per test module (starting one takes about a second)."""
    with running_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture()
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that restart or kill it."""
    with running_server(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: Server) -> Api:
    return Api.login(server)


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    """The MongoDB server of this test run (SecantusDB, or MONGODB_TEST_URL); see tests/mongo.py."""
    with mongo.mongodb_server() as url:
        yield url


@pytest.fixture()
def mongodb_database(mongodb_url: str) -> Iterator[str]:
    """A database name of this test's own, dropped after it."""
    name = mongo.new_database_name()
    yield name
    mongo.drop_database(mongodb_url, name)
