from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mongo_server import mongo_database, mongo_url  # noqa: F401  (fixtures)
from tests.readmodels import MongoProvider, Provider, SQLiteProvider
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


@pytest.fixture(params=["sqlite", "mongodb"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    """Read models on each storage provider in turn (a file or a database of the test's own)."""
    if request.param == "sqlite":
        yield SQLiteProvider(tmp_path)
        return
    chosen = MongoProvider(request.getfixturevalue("mongo_url"),
                           request.getfixturevalue("mongo_database"))
    try:
        yield chosen
    finally:
        chosen.close()
