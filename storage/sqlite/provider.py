"""Everything on SQLite: three files in the data directory.

The event store (`whatsapp-api.db`, eventsourcing's tables), the read models beside it
(`whatsapp-api-read.db`, or the rebuilt file its `.current` pointer names) and the webhook
cursors (`webhooks.db`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from projections.queries import ReadModelQueries
from projections.rows import ReadModels
from storage.provider import (
    BackedUp,
    Diagnosis,
    Step,
    StorageProvider,
    StoreUnavailable,
    one_line,
)
from storage.sqlite import backup
from storage.sqlite.cursors import SQLiteCursors
from storage.sqlite.events import Factory, environment
from storage.sqlite.queries import SqliteReadModels
from storage.sqlite.read_models import ReadModelStore


class SQLiteStorage(StorageProvider):
    """The event store, read models and webhook cursors in SQLite files."""

    name = "sqlite"

    def __init__(self, events: Path, read_models: Path, cursors: Path) -> None:
        self.events = events
        self.read_models_path = read_models
        self.cursors_path = cursors

    def infrastructure(self, env: Environment, *, create: bool) -> InfrastructureFactory[Any]:
        if not create and not self.events.exists():
            raise StoreUnavailable(f"no event store at {self.events}")
        env.update(environment(str(self.events)))
        if not create:
            env["CREATE_TABLE"] = "no"
        return Factory(env)

    def read_models(self) -> ReadModelStore:
        return ReadModelStore(self.read_models_path)

    def queries(self, read_models: ReadModels) -> ReadModelQueries:
        if not isinstance(read_models, ReadModelStore):
            raise TypeError("the SQLite read-model queries need a SQLite read-model store")
        return SqliteReadModels(read_models)

    def cursors(self) -> SQLiteCursors:
        return SQLiteCursors(self.cursors_path)

    def details(self) -> dict[str, str]:
        return {"provider": self.name}

    def unavailable(self, error: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"cannot open the event store ({self.events}): {one_line(error)}")

    def diagnose(self) -> Diagnosis:
        path = self.events
        if not path.exists():
            return Diagnosis("ok", f"{path} will be created at first start")
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                (check,) = db.execute("PRAGMA quick_check").fetchone()
                count = db.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
            finally:
                db.close()
        except sqlite3.Error as error:
            return Diagnosis(
                "fail",
                f"{path}: {error}",
                "check the file's permissions; restore from a backup if it is damaged",
            )
        if check != "ok":
            return Diagnosis("fail", f"{path} is damaged: {check}", "restore it from a backup")
        return Diagnosis("ok", f"{path}: {count} events, integrity ok")

    def backup(self, into: Path, step: Step) -> BackedUp:
        return backup.backup(self.events, self.cursors_path, into, step)

    def held(self) -> list[str]:
        return backup.held(self.events, self.cursors_path)

    def erase(self) -> None:
        backup.erase(self.events, self.cursors_path, self.read_models_path)

    def restore(self, source: Path, backed_up: BackedUp, step: Step) -> None:
        backup.restore(source, self.events, self.cursors_path, backed_up, step)

    def close(self) -> None:
        """Nothing to release: each store built from it closes its own connections."""
