from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mongo_server import mongo_client, mongo_db, mongo_url  # noqa: F401 (fixtures)
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
