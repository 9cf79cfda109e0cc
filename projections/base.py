"""What every read-model projection has in common."""

from __future__ import annotations

from functools import partial, singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from projections.rows import ReadModels, Rows, Table


def ident(uuid: UUID) -> str:
    """`str(uuid)`, remembered: every event names its aggregate, and there are few of them
    (formatting a UUID costs a rebuild more than a dictionary look-up)."""
    key = uuid.int  # an int hashes and compares in C; a UUID in Python
    text = _idents.get(key)
    if text is None:
        text = _idents[key] = str(uuid)
    return text


_idents: dict[int, str] = {}


def row_id(event: Any) -> str:
    """A row id that is the same however often the read model is rebuilt."""
    return f"{ident(event.originator_id)}-{event.originator_version}"


class Dispatch:
    """For each event type, the handlers of the projections that model it (built once)."""

    def __init__(self, projections: list[Any], since: list[int] | None = None) -> None:
        self.projections = projections
        self.since = since or [0] * len(projections)
        self._table: dict[type, list[tuple[int, Any]]] = {}

    def __call__(self, event: Any, position: int, rows: Rows) -> None:
        kind = type(event)
        handlers = self._table.get(kind)
        if handlers is None:
            handlers = self._table[kind] = [
                (since, h)
                for p, since in zip(self.projections, self.since, strict=True)
                if (h := p.handler(kind)) is not None
            ]
        for since, handle in handlers:
            if position > since:
                handle(event, rows)

    def finish(self, rows: Rows) -> None:
        """The transaction's events are applied: projections write what they held back."""
        for projection in self.projections:
            projection.finish(rows)


# The view is our ReadModels, not one of eventsourcing's TrackingRecorders (which the type
# parameter asks for): the library's runner is not used, positions are kept by ReadModels.
class ReadModelProjection(Projection[ReadModels]):  # type: ignore[type-var]
    """A projection whose `apply` describes, through `Rows`, what one event does to its
    tables; the same code runs on every read-model provider.

    The runner batches events into one transaction with their tracking position;
    `process_event` is the library's one-event-per-transaction entry point.
    """

    tables: tuple[Table, ...] = ()

    def apply(self, event: Any, rows: Rows) -> None:
        """Write the rows for one event. Subclasses define their own `singledispatchmethod`
        (a dispatcher registered on this base class would be shared by every projection)."""
        raise NotImplementedError

    def finish(self, rows: Rows) -> None:
        """Called once a transaction's events are applied, before its tracking position is
        written: a projection that keeps writes back to merge them sends them now."""

    def handler(self, kind: type) -> Any:
        """This projection's handler for an event type, or None if it ignores the type.

        Python 3.11's singledispatchmethod builds a new wrapper on every access, which
        was a fifth of a rebuild's time; the handlers are looked up once per type.
        """
        method = next(c.__dict__["apply"] for c in type(self).__mro__ if "apply" in c.__dict__)
        if not isinstance(method, singledispatchmethod):
            return partial(method, self)
        found = method.dispatcher.dispatch(kind)
        if found is method.dispatcher.dispatch(object):
            return None
        return partial(found, self)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        handle = self.handler(type(domain_event))

        def work(rows: Rows) -> None:
            if handle is not None:
                handle(domain_event, rows)
            self.finish(rows)
            rows.track(self.name, tracking.notification_id)

        self.view.atomically(work)
