"""What every read-model projection has in common."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlite_utils
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from projections.store import ReadModelStore


def iso(ts: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the API shows times."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def row_id(event: Any) -> str:
    """A row id that is the same however often the read model is rebuilt."""
    return f"{event.originator_id}-{event.originator_version}"


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

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        with self.view.transaction() as db:
            self.apply(domain_event, db)
            self.view.track(db, self.name, tracking.notification_id)
