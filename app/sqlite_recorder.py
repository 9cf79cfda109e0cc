"""An eventsourcing SQLite application recorder that can be subscribed to.

The stock 9.5.6 recorder raises NotImplementedError from `subscribe()`. This one
rings an in-process bell keyed by database file on every commit, so subscribers in
this process wake within milliseconds, and polls on a short interval so that
subscribers see commits made by other processes (the CLI, a rebuild) too.
Positions are SQLite rowids: increasing in commit order, not always contiguous.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ListenNotifySubscription, Notification, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

POLL_INTERVAL = 0.1

_bells: dict[str, set[threading.Event]] = {}
_bells_lock = threading.Lock()


def _ring(db_name: str) -> None:
    with _bells_lock:
        waiters = list(_bells.get(db_name, ()))
    for waiter in waiters:
        waiter.set()


class SubscribableSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """SQLite application recorder with live subscriptions."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)
        _ring(self.db_name)
        return ids

    @property
    def db_name(self) -> str:
        return self.datastore.pool.db_name

    def select_originator_notifications(
        self, originator_id: UUID, gt: int, limit: int, topics: Sequence[str] = ()
    ) -> list[Notification]:
        """One aggregate's notifications after position `gt`, in position order."""
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
        with _bells_lock:
            _bells.setdefault(self._db_name, set()).add(self._has_been_notified)
        self._poll_thread = threading.Thread(target=self._poll, daemon=True)
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._stopping.wait(POLL_INTERVAL):
            self._has_been_notified.set()

    def stop(self) -> None:
        self._stopping.set()
        with _bells_lock:
            _bells.get(self._db_name, set()).discard(self._has_been_notified)
        super().stop()
