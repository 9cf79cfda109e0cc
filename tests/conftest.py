from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import mongo
from tests.mongo_server import mongo_client, mongo_database, mongo_db, mongo_url  # noqa: F401 (fixtures)
from tests.readmodels import MongoProvider, Provider, SQLiteProvider
from tests.server import SQLITE, Api, Server, Storage, running_server

PROVIDERS = ("sqlite", "mongodb")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): run this module's or test's servers on SQLite only"
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
    """Every test of a real server runs once per storage provider: `server_provider` is
    sqlite or mongodb (module-scoped, so a module's server is shared per provider), unless
    the test or its module is marked `sqlite_only` (with the reason)."""
    if "server_provider" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("server_provider", ["sqlite"] if only else PROVIDERS, scope="module")


@pytest.fixture(scope="module")
def storage(request: pytest.FixtureRequest, server_provider: str) -> Storage:
    """Where this test's servers keep their data; each MongoDB server gets a database of its own."""
    if server_provider == "mongodb":
        return Storage("mongodb", request.getfixturevalue("mongodb_url"))
    return SQLITE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, storage: Storage) -> Iterator[Server]:
    """One real server per test module and provider (starting one takes about a second)."""
    with running_server(tmp_path_factory.mktemp("server"), storage) as running:
        yield running


@pytest.fixture()
def fresh_server(tmp_path: Path, storage: Storage) -> Iterator[Server]:
    """A server of the test's own, for tests that restart or kill it."""
    with running_server(tmp_path, storage) as running:
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


@pytest.fixture(params=["sqlite", "mongodb"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    """Read models on each storage provider in turn (a file or a database of the test's own)."""
    if request.param == "sqlite":
        yield SQLiteProvider(tmp_path)
        return
    chosen = MongoProvider(
        request.getfixturevalue("mongo_url"), request.getfixturevalue("mongo_database")
    )
    try:
        yield chosen
    finally:
        chosen.close()
