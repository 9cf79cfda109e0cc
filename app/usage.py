"""API calls, counted in memory per user, instance and day, stored as UsageRecorded events.

Counting every request as an event would double the writes of the hot path. Counts are
stored on the USAGE_SAVE_CRON schedule, at shutdown, and whenever FLUSH_AT calls are
pending, so a crash loses at most the calls since the last save and never more than
FLUSH_AT of them. Statistics add the counts not yet in the read models (`pending`), so a
caller sees their calls at once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from app.eventstore import EventStore, GroupCommitter
from domain.usage import LEDGER_ID, UsageLedger

log = logging.getLogger(__name__)

FLUSH_AT = 1000
EVERY_INSTANCE = object()  # `pending(instance_id=...)`: calls about any instance, or none
CONFLICT_RETRIES = 5

Key = tuple[str, str | None, str]  # user id, instance id (None: the user's own), UTC day


class ApiCallCounter:
    """Counts authenticated API calls; `flush()` stores them."""

    def __init__(
        self, store: EventStore, committer: GroupCommitter, projected: Callable[[], int]
    ) -> None:
        """`projected` says up to which store position the read models are built."""
        self._store = store
        self._committer = committer
        self._projected = projected
        self._counts: Counter[Key] = Counter()
        # Counts being stored, with the position of their event once it is stored: they
        # are pending until the read models include that position.
        self._storing: list[_Storing] = []
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

    def pending(
        self,
        user_id: str | None = None,
        instance_id: object = EVERY_INSTANCE,
        since: str | None = None,
    ) -> int:
        """Calls counted but not yet in the read models (of one user, of one instance,
        from one day on)."""
        projected = self._projected()
        with self._lock:
            self._storing = [
                s for s in self._storing if s.position is None or s.position > projected
            ]
            batches = [self._counts, *(s.counts for s in self._storing)]
            return sum(
                n
                for counts in batches
                for (user, instance, day), n in counts.items()
                if (user_id is None or user == user_id)
                and (instance_id is EVERY_INSTANCE or instance == instance_id)
                and (since is None or day >= since)
            )

    def flush(self) -> int:
        """Store pending counts as one UsageRecorded event; return how many calls."""
        with self._flushing:
            with self._lock:
                counts, self._counts = self._counts, Counter()
                self._pending = 0
                if not counts:
                    return 0
                storing = _Storing(counts)
                self._storing.append(storing)
            calls = [
                {"userId": user, "instanceId": instance, "day": day, "apiCalls": n}
                for (user, instance, day), n in sorted(counts.items(), key=str)
            ]
            try:
                positions = self._record(calls)
            except Exception:
                with self._lock:
                    self._storing = [b for b in self._storing if b is not storing]
                    self._counts.update(counts)  # keep them for the next attempt
                    self._pending += sum(counts.values())
                raise
            storing.position = positions[-1] if positions else 0
            return sum(counts.values())

    def _record(self, calls: list[dict[str, Any]]) -> list[int]:
        # Several nodes each store their own counts in the one ledger: one that finds its
        # version taken by another node's commit loads the ledger again and records after it.
        for attempt in range(CONFLICT_RETRIES):
            try:
                ledger: UsageLedger = self._store.repository.get(LEDGER_ID)
            except AggregateNotFoundError:
                ledger = UsageLedger()
            ledger.record(calls)
            try:
                return self._committer.commit(ledger.collect_events())
            except IntegrityError:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


class _Storing:
    """Counts on their way into the store (position None until it is stored)."""

    def __init__(self, counts: Counter[Key]) -> None:
        self.counts = counts
        self.position: int | None = None
