"""What every provider's event store recorder does beyond eventsourcing's, written once.

`EventRecorder` is the application recorder the product reads: eventsourcing's
`ApplicationRecorder` (the whole sequence in position order, live subscriptions) plus one
aggregate's notifications in position order, which the audit trail and webhook delivery
read. `ring`/`listen`/`unlisten` are the in-process wake-ups: an append made in this
process wakes every subscription to the same store at once, whatever else (a poll, a
change stream) wakes them for appends made elsewhere.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Hashable, Sequence
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification


class EventRecorder(ApplicationRecorder):
    """The application recorder of every storage provider."""

    @abstractmethod
    def select_originator_notifications(
        self, originator_id: UUID, gt: int, limit: int, topics: Sequence[str] = ()
    ) -> list[Notification]:
        """One aggregate's notifications after position `gt`, in position order (at most
        `limit`; only these topics, if any are given)."""


_listeners: dict[Hashable, set[threading.Event]] = {}
_lock = threading.Lock()


def ring(store: Hashable) -> None:
    """Wake every subscription of `store` (a key naming one events table) in this process."""
    with _lock:
        waiting = list(_listeners.get(store, ()))
    for event in waiting:
        event.set()


def listen(store: Hashable, event: threading.Event) -> None:
    """Set `event` whenever `store` is appended to in this process."""
    with _lock:
        _listeners.setdefault(store, set()).add(event)


def unlisten(store: Hashable, event: threading.Event) -> None:
    with _lock:
        found = _listeners.get(store)
        if found is not None:
            found.discard(event)
            if not found:
                del _listeners[store]
