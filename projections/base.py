"""What every read-model projection has in common."""

from __future__ import annotations

from datetime import datetime
from functools import singledispatchmethod
from typing import Any

import sqlite_utils
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from projections.store import ReadModelStore


def iso(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the API shows times."""
    return ts.isoformat(timespec="milliseconds")[:23] + "Z"


def row_id(event: Any) -> str:
    """A row id that is the same however often the read model is rebuilt."""
    return f"{event.originator_id}-{event.originator_version}"


class Dispatch:
    """For each event type, the handlers of the projections that model it (built once)."""

    def __init__(self, projections: list[Any], since: list[int] | None = None) -> None:
        self.projections = projections
        self.since = since or [0] * len(projections)
        self._table: dict[type, list[tuple[int, Any]]] = {}

    def __call__(self, event: Any, position: int, db: sqlite_utils.Database) -> None:
        kind = type(event)
        handlers = self._table.get(kind)
        if handlers is None:
            handlers = self._table[kind] = [
                (since, h) for p, since in zip(self.projections, self.since, strict=True)
                if (h := p.handler(kind)) is not None
            ]
        for since, handle in handlers:
            if position > since:
                handle(event, db)


class ReadModelProjection(Projection[ReadModelStore]):
    """A projection whose `apply` writes rows for one event inside a given transaction.

    The runner batches events into one transaction with their tracking position;
    `process_event` is the library's one-event-per-transaction entry point.
    """

    def create_tables(self, db: sqlite_utils.Database) -> None:
        raise NotImplementedError

    def apply(self, event: Any, db: sqlite_utils.Database) -> None:
        """Write the rows for one event. Subclasses define their own `singledispatchmethod`
        (a dispatcher registered on this base class would be shared by every projection)."""
        raise NotImplementedError

    def project(self, event: Any, db: sqlite_utils.Database) -> None:
        """`apply`, with the handler for each event type looked up once.

        Python 3.11's singledispatchmethod builds a new wrapper on every access, which
        was a fifth of a rebuild's time; the handlers are the same.
        """
        handlers: dict[type, Any] = self.__dict__.setdefault("_handlers", {})
        kind = type(event)
        handler = handlers.get(kind)
        if handler is None:
            method = next(c.__dict__["apply"] for c in type(self).__mro__ if "apply" in c.__dict__)
            if isinstance(method, singledispatchmethod):
                method = method.dispatcher.dispatch(kind)
            handler = handlers[kind] = method
        handler(self, event, db)

    def handler(self, kind: type) -> Any:
        """This projection's handler for an event type, or None if it ignores the type."""
        method = next(c.__dict__["apply"] for c in type(self).__mro__ if "apply" in c.__dict__)
        if not isinstance(method, singledispatchmethod):
            return lambda event, db: method(self, event, db)
        found = method.dispatcher.dispatch(kind)
        if found is method.dispatcher.dispatch(object):
            return None
        return lambda event, db: found(self, event, db)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        with self.view.transaction() as db:
            self.project(domain_event, db)
            self.view.track(db, self.name, tracking.notification_id)
