"""A MongoDB server for the tests: SecantusDB (test-only) on 127.0.0.1, or MONGODB_TEST_URL.

SecantusDB speaks MongoDB's wire protocol on WiredTiger and reports itself as a
single-node replica set, so transactions work. With `MONGODB_TEST_URL` set, the same
tests run against that server (a real mongod) instead. Each test takes a database of
its own from `mongo_database`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

_databases = itertools.count()


def _start(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    from tests.server import free_port

    port = free_port()
    binary = shutil.which("secantusd-py", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.skip("SecantusDB is not installed (pip install -e '.[test]')")
    log = (tmp / "secantus.log").open("wb")
    process = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:",
         "--cache-size", "256M", "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SecantusDB exited: {(tmp / 'secantus.log').read_text()[-2000:]}")
        try:
            client: MongoClient[dict[str, Any]]
            with MongoClient(url, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
            return url, process
        except PyMongoError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("SecantusDB did not answer within 60 s")


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a MongoDB server that supports transactions."""
    given = os.environ.get("MONGODB_TEST_URL")
    if given:
        yield given
        return
    url, process = _start(tmp_path_factory.mktemp("secantus"))
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture()
def mongo_database(mongo_url: str) -> Iterator[str]:
    """A database name of this test's own, dropped afterwards."""
    name = f"t{next(_databases)}_{uuid.uuid4().hex[:8]}"
    yield name
    cleaner: MongoClient[dict[str, Any]]
    with MongoClient(mongo_url) as cleaner:
        for database in cleaner.list_database_names():
            if database.startswith(name):
                cleaner.drop_database(database)
