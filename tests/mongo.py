"""The MongoDB server of the tests: SecantusDB on 127.0.0.1, or MONGODB_TEST_URL if set.

SecantusDB (a MongoDB wire-protocol server on WiredTiger, GPL-2.0, a test-only dependency)
runs as a child process, so it does not share this interpreter's GIL with the tests. It
reports itself as a single-node replica set: transactions and change streams work.
With `MONGODB_TEST_URL=mongodb://...` the same tests run against that server (a real mongod)
instead. Each test gets a database of its own (`new_database_name()`), dropped after it.

Fixtures (in conftest.py): `mongodb_url` (session-wide server) and `mongodb_database`
(a fresh database name for one test).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

TEST_URL = "MONGODB_TEST_URL"

# A server killed inside a transaction leaves it open, holding what it wrote (the position
# counter, a read-model batch) until the database aborts it: mongod after
# transactionLifetimeLimitSeconds (60 s by default), SecantusDB after its
# `transaction_lifetime_seconds`, which its command line does not take. Five seconds keeps
# the kill -9 drills short; no transaction of the tests stays open that long.
TRANSACTION_LIFETIME_SECONDS = 5

LAUNCH = """
import functools, sys
from secantus import cli
cli.SecantusDBServer = functools.partial(
    cli.SecantusDBServer, transaction_lifetime_seconds=float(sys.argv[1])
)
sys.exit(cli.main(sys.argv[2:]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_database_name(label: str = "t") -> str:
    return f"{label}_{uuid.uuid4().hex[:20]}"


def with_database(url: str, database: str) -> str:
    """The URL with `database` as its path (keeping any query string)."""
    scheme, rest = url.split("://", 1)
    hosts, _, tail = rest.partition("/")
    query = tail.partition("?")[2]
    return f"{scheme}://{hosts}/{database}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def secantus(
    storage: Path | str = ":memory:",
    port: int | None = None,
    *,
    standalone: bool = False,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run SecantusDB in a child process on 127.0.0.1 (its daemon's command line, with
    transactions reaped after TRANSACTION_LIFETIME_SECONDS); yield its URL."""
    port = port or free_port()
    command = [
        sys.executable,
        "-c",
        LAUNCH,
        str(TRANSACTION_LIFETIME_SECONDS),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(storage),
        "--cache-size",
        "256M",
        "--log-level",
        "WARNING",
    ]
    if standalone:
        command.append("--standalone")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    url = f"mongodb://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, process, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"SecantusDB exited with status {process.returncode}")
        client: MongoClient[dict[str, object]] = MongoClient(
            url, serverSelectionTimeoutMS=500, directConnection=True
        )
        try:
            client.admin.command("ping")
            return
        except PyMongoError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SecantusDB did not answer on {url} within {timeout} s"
                ) from None
            time.sleep(0.2)
        finally:
            client.close()


@contextlib.contextmanager
def mongodb_server() -> Iterator[str]:
    """MONGODB_TEST_URL if set, else a SecantusDB of this test run."""
    url = os.environ.get(TEST_URL)
    if url:
        yield url
        return
    with secantus() as started:
        yield started


def drop_database(url: str, database: str) -> None:
    drop_databases(url, database, exact=True)


def drop_databases(url: str, prefix: str, exact: bool = False) -> None:
    """Drop the databases named `prefix` or, unless `exact`, starting with it (a server's
    event store and its `<name>_read` companion)."""
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        for name in [prefix] if exact else client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)
    except PyMongoError:
        pass  # the server may be gone already (a test that stopped it)
    finally:
        client.close()
