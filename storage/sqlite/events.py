"""The event store on SQLite: eventsourcing's SQLite persistence, with live subscriptions.

The stock 9.5.6 application recorder raises NotImplementedError from `subscribe()`. This
one wakes the subscriptions of this process on every commit (`storage.recorder.ring`),
so they see it within milliseconds, and polls on a short interval so that they see
commits made by other processes (the CLI, a rebuild) too. Positions are SQLite rowids:
increasing in commit order, not always contiguous.

`PERSISTENCE_MODULE=storage.sqlite.events:Factory` selects it like any of the library's
persistence modules, with the library's SQLite keys (`SQLITE_DBNAME`, ...).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ListenNotifySubscription, Notification, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteFactory

from storage import recorder as wakeups
from storage.recorder import EventRecorder

POLL_INTERVAL = 0.1


def environment(path: str) -> dict[str, str]:
    """The eventsourcing environment of an event store in the SQLite file at `path`."""
    return {
        "PERSISTENCE_MODULE": f"{__name__}:Factory",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "30",
    }


class SubscribableSQLiteApplicationRecorder(SQLiteApplicationRecorder, EventRecorder):
    """SQLite application recorder with live subscriptions."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)
        wakeups.ring(self.db_name)
        return ids

    @property
    def db_name(self) -> str:
        name: str = self.datastore.pool.db_name
        return name

    def select_originator_notifications(
        self, originator_id: UUID, gt: int, limit: int, topics: Sequence[str] = ()
    ) -> list[Notification]:
        statement = (
            f"SELECT rowid, * FROM {self.events_table_name} WHERE originator_id=? AND rowid>? "
        )
        params: list[Any] = [originator_id.hex, gt]
        if topics:
            statement += f"AND topic IN ({','.join('?' * len(topics))}) "
            params += list(topics)
        statement += "ORDER BY rowid LIMIT ?"
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [
                Notification(
                    id=row["rowid"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> SQLiteSubscription:
        return SQLiteSubscription(self, gt=gt, topics=topics)


class SQLiteSubscription(ListenNotifySubscription[SubscribableSQLiteApplicationRecorder]):
    """Pulls new notifications when this process commits, or every POLL_INTERVAL."""

    def __init__(
        self,
        recorder: SubscribableSQLiteApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        self._db_name = recorder.db_name
        self._stopping = threading.Event()
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        wakeups.listen(self._db_name, self._has_been_notified)
        self._poll_thread = threading.Thread(target=self._poll, daemon=True)
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._stopping.wait(POLL_INTERVAL):
            self._has_been_notified.set()

    def stop(self) -> None:
        self._stopping.set()
        wakeups.unlisten(self._db_name, self._has_been_notified)
        super().stop()


class Factory(SQLiteFactory):
    """eventsourcing's SQLite factory, with the subscribable application recorder."""

    application_recorder_class = SubscribableSQLiteApplicationRecorder
