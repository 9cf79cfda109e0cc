"""API calls, counted in memory per user, instance and day, stored as UsageRecorded events.

Counting every request as an event would double the writes of the hot path. Counts are
stored on the USAGE_SAVE_CRON schedule, at shutdown, and whenever FLUSH_AT calls are
pending, so a crash loses at most the calls since the last save and never more than
FLUSH_AT of them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from app.eventstore import EventStore, GroupCommitter
from domain.usage import LEDGER_ID, UsageLedger

log = logging.getLogger(__name__)

FLUSH_AT = 1000
CONFLICT_RETRIES = 5


class ApiCallCounter:
    """Counts authenticated API calls; `flush()` stores them."""

    def __init__(self, store: EventStore, committer: GroupCommitter) -> None:
        self._store = store
        self._committer = committer
        self._counts: Counter[tuple[str, str | None, str]] = Counter()
        self._pending = 0
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    def count(self, user_id: str, instance_id: str | None) -> bool:
        """Count one call; True when enough are pending that a flush is due."""
        day = datetime.now(UTC).date().isoformat()
        with self._lock:
            self._counts[(user_id, instance_id, day)] += 1
            self._pending += 1
            return self._pending >= FLUSH_AT

    def flush(self) -> int:
        """Store pending counts as one UsageRecorded event; return how many calls."""
        with self._flushing:
            with self._lock:
                counts, self._counts = self._counts, Counter()
                self._pending = 0
            if not counts:
                return 0
            calls = [
                {"userId": user, "instanceId": instance, "day": day, "apiCalls": n}
                for (user, instance, day), n in sorted(counts.items(), key=str)
            ]
            try:
                self._record(calls)
            except Exception:
                with self._lock:
                    self._counts.update(counts)  # keep them for the next attempt
                    self._pending += sum(counts.values())
                raise
            return sum(counts.values())

    def _record(self, calls: list[dict[str, Any]]) -> None:
        # Several nodes each store their own counts in the one ledger: one that finds its
        # version taken by another node's commit loads the ledger again and records after it.
        for attempt in range(CONFLICT_RETRIES):
            try:
                ledger: UsageLedger = self._store.repository.get(LEDGER_ID)
            except AggregateNotFoundError:
                ledger = UsageLedger()
            ledger.record(calls)
            try:
                self._committer.commit(ledger.collect_events())
                return
            except IntegrityError:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
