"""DATABASE_PROVIDER=mongodb: the server, the CLI, doctor and /health on the MongoDB store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from app import doctor
from app.config import Settings
from app.eventstore import open_store
from app.storage import open_storage
from storage.mongodb import MongoStorage
from storage.provider import StoreUnavailable
from tests import mongo
from tests.receiver import Receiver
from tests.server import Api, Server, free_port, running_server, wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def database_url(mongodb_url: str, mongodb_database: str) -> str:
    return mongo.with_database(mongodb_url, mongodb_database)


def documents(database_url: str, collection: str) -> list[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(database_url, uuidRepresentation="standard")
    try:
        return list(client.get_default_database()[collection].find())
    finally:
        client.close()


def test_the_provider_is_chosen_in_one_place(tmp_path: Path, database_url: str) -> None:
    sqlite = open_storage(Settings(sqlite_path=tmp_path / "es.db"))
    with pytest.raises(StoreUnavailable, match="no event store at"):
        open_store(sqlite, create=False)  # nothing is created without `create`
    assert not (tmp_path / "es.db").exists()
    store = open_store(sqlite)
    try:
        assert type(store.recorder).__module__ == "storage.sqlite.events"
    finally:
        store.close()
    mongodb = open_storage(Settings(database_provider="mongodb", database_url=database_url))
    assert isinstance(mongodb, MongoStorage)
    assert mongodb.database == database_url.rsplit("/", 1)[1]
    store = open_store(mongodb)
    read_models = mongodb.read_models()
    cursors = mongodb.cursors()
    try:
        assert type(store.recorder).__module__ == "storage.mongodb.events"
        assert store.snapshots is not None  # the product snapshots its aggregates
        # One MongoClient for the event store, the read models and the cursors.
        recorder: Any = store.recorder
        client = recorder.datastore.client
        assert read_models.client is client
        assert cursors._cursors.database.client is client
    finally:
        cursors.close()
        read_models.close()
        store.close()
        mongodb.close()


def test_the_server_runs_on_mongodb(tmp_path: Path, database_url: str) -> None:
    receiver = Receiver()
    try:
        with running_server(
            tmp_path, DATABASE_PROVIDER="mongodb", DATABASE_URL=database_url
        ) as server:
            health = server.client().get("/health").json()["checks"]["eventStore"]
            assert health["ok"] and health["provider"] == "mongodb" and health["replicaSet"]
            admin = Api.login(server)
            a = admin.create_instance(
                "Mongo", webhookUrl=receiver.url, webhookEnabled=True, notifySent=True
            )["id"]
            admin.pair(a, "15550006001")
            assert admin.send(a, "15550006002", "stored in MongoDB").status_code == 200
            wait_until(lambda: "message_sent" in receiver.events(), timeout=15)
            server.stop()
            before = len(documents(database_url, "whatsapp_events"))
            server.start()
            # The restarted server opened the same store, from where it was (the instance
            # reconnecting adds events of its own).
            health = server.client().get("/health").json()["checks"]["eventStore"]
            assert health["position"] >= before > 0
            assert wait_until(lambda: Api.login(server).status(a)["ready"], timeout=15)
        stored = documents(database_url, "whatsapp_events")
        assert [d["_id"] for d in stored] == list(range(1, len(stored) + 1))
        assert any(d["topic"].endswith("MessageSent") for d in stored)

        # The event history command reads the same store.
        listing = subprocess.run(
            [sys.executable, "-m", "app.cli", "events", "--instance", a],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**server.env},
        )
        assert listing.returncode == 0, listing.stderr
        assert "MessageSent" in listing.stdout and "stored in MongoDB" in listing.stdout
        # So does the rebuild of the read models.
        rebuilt = subprocess.run(
            [sys.executable, "-m", "app.cli", "rebuild-projections"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**server.env},
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        head = len(documents(database_url, "whatsapp_events"))  # the shutdown stored usage too
        assert f"{head:,} events to position {head}" in rebuilt.stdout
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def standalone_url() -> Iterator[str]:
    with mongo.secantus(standalone=True) as url:
        yield url


def test_a_standalone_server_is_refused_with_one_line(tmp_path: Path, standalone_url: str) -> None:
    server = Server(
        tmp_path,
        DATABASE_PROVIDER="mongodb",
        DATABASE_URL=mongo.with_database(standalone_url, "standalone"),
    )
    with pytest.raises(RuntimeError):
        server.start(timeout=30)
    lines = [line for line in server.log_text().splitlines() if "standalone server" in line]
    assert lines and "not a replica set" in lines[0]


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "SQLITE_DATABASE_URL": f"file:{tmp_path / 'data' / 'app.db'}",
        "UPLOADS_DIR": str(tmp_path / "uploads"),
        "INSTANCES_DIR": str(tmp_path / "instances"),
        "LOGS_DIR": str(tmp_path / "logs"),
        "JWT_SECRET": "s" * 40,
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "DATABASE_PROVIDER": "mongodb",
        **extra,
    }


def storage_line(lines: list[str]) -> str:
    return next(line for line in lines if "event store" in line)


def test_doctor_reports_mongodb_and_its_replica_set(tmp_path: Path, database_url: str) -> None:
    lines: list[str] = []
    doctor.run(environ(tmp_path, DATABASE_URL=database_url), lines.append)
    line = storage_line(lines)
    assert line.startswith("[ok  ] event store: MongoDB") and "replica set" in line


def test_doctor_fails_on_a_standalone_server(tmp_path: Path, standalone_url: str) -> None:
    lines: list[str] = []
    code = doctor.run(environ(tmp_path, DATABASE_URL=standalone_url + "x"), lines.append)
    assert code == 1
    assert "[FAIL] event store" in storage_line(lines) and "not a replica set" in storage_line(
        lines
    )


def test_doctor_fails_when_mongodb_is_unreachable(tmp_path: Path) -> None:
    lines: list[str] = []
    url = f"mongodb://127.0.0.1:{free_port()}/x"
    assert doctor.run(environ(tmp_path, DATABASE_URL=url), lines.append) == 1
    assert "[FAIL] event store: MongoDB is not reachable" in storage_line(lines)
