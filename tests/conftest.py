from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import mongo
from tests.places import PROVIDERS, Storage, place
from tests.server import Api, Server, running_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): run this module's or test's storage on SQLite only"
    )
    config.addinivalue_line(
        "markers", "kills_the_server: kill -9s a server mid-transaction (see fresh_server)"
    )
    config.addinivalue_line(
        "markers", "drill(label): a line of the drills screen (tests/drills.py)"
    )
    config.addinivalue_line(
        "markers", "drill_cases(label): counted on a line of the drills screen (tests/drills.py)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that keeps data (it takes `storage`, or a server) runs once per storage
    provider: `provider` is sqlite or mongodb (module-scoped, so a module's server is shared
    per provider), unless the test or its module is marked `sqlite_only` (with the reason)."""
    if "provider" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("provider", ["sqlite"] if only else PROVIDERS, scope="module")


@pytest.fixture()
def storage(request: pytest.FixtureRequest, provider: str, tmp_path: Path) -> Iterator[Storage]:
    """A place of this test's own on each storage provider in turn (tests/places.py)."""
    with place(request, provider, tmp_path) as storage:
        yield storage


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One real server per test module and provider (starting one takes about a second)."""
    root = tmp_path_factory.mktemp("server")
    with place(request, provider, root) as storage, running_server(root, storage) as running:
        yield running


@pytest.fixture()
def fresh_server(storage: Storage) -> Iterator[Server]:
    """A server of the test's own, for tests that restart or kill it."""
    with running_server(storage.root, storage) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: Server) -> Api:
    return Api.login(server)


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    """The MongoDB server of this test run (SecantusDB, or MONGODB_TEST_URL); see tests/mongo.py."""
    with mongo.mongodb_server() as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_client(mongodb_url: str) -> Iterator[Any]:
    """A client of the test run's MongoDB server, for tests that read or write it directly."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(
        mongodb_url, uuidRepresentation="standard", serverSelectionTimeoutMS=10_000
    )
    yield client
    client.close()


@pytest.fixture()
def mongodb_database(mongodb_url: str) -> Iterator[str]:
    """A database name of this test's own; it and its `<name>_...` companions are dropped after."""
    name = mongo.new_database_name()
    yield name
    mongo.drop_databases(mongodb_url, name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One screen of what the drills tried and survived (tests/drills.py)."""
    from tests import drills

    lines = drills.summary()
    if lines:
        terminalreporter.section("drills")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from tests import drills

    for item in items:
        drills.collected(item)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every phase's outcome, for the drills screen (setup and teardown errors count)."""
    from tests import drills

    drills.reported(report)
