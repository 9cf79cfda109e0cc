"""Driver errors never leave a storage provider: what is above `storage/` sees eventsourcing's
persistence errors (the PEP 249 names), whichever provider runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.persistence import DatabaseError, OperationalError

from app.eventstore import open_store
from projections.queries import Window
from storage.mongodb import MongoStorage
from storage.provider import StoreUnavailable
from storage.sqlite import SQLiteStorage
from tests.mongo import free_port


def test_a_damaged_sqlite_file_is_a_persistence_error(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "es.db", tmp_path / "read.db", tmp_path / "hooks.db")
    read_models = storage.read_models()
    queries = storage.queries(read_models)
    storage.cursors().close()
    read_models.close()
    # Another program writes over both files while they are in use.
    for path in (tmp_path / "read.db", tmp_path / "hooks.db"):
        path.write_bytes(b"this is not a database" * 400)
    with pytest.raises(DatabaseError):
        queries.user("someone")
    with pytest.raises(DatabaseError):
        queries.messages("i", "c", Window(limit=10))
    with pytest.raises(DatabaseError):
        storage.cursors()
    with pytest.raises(DatabaseError):
        storage.read_models()


def test_an_unreachable_mongodb_is_a_persistence_error() -> None:
    storage = MongoStorage(f"mongodb://127.0.0.1:{free_port()}/nowhere", timeout=0.5)
    try:
        with pytest.raises(OperationalError):
            storage.read_models()
        with pytest.raises(OperationalError):
            storage.cursors().get("i")
        with pytest.raises(OperationalError):
            storage.details()
        with pytest.raises(StoreUnavailable, match="MongoDB"):
            open_store(storage)
    finally:
        storage.close()
