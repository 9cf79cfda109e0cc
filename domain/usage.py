"""The usage ledger: API calls counted in memory and stored in batches."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

LEDGER_ID = UUID("2b0f5a8e-3c1d-4e6f-8a9b-0c1d2e3f4a5b")


class UsageLedger(Aggregate):
    """One ledger for the server; each UsageRecorded carries the calls of one interval."""

    @staticmethod
    def create_id() -> UUID:
        return LEDGER_ID

    class Opened(Aggregate.Created):
        pass

    @event(Opened)
    def __init__(self) -> None:
        pass

    class UsageRecorded(Aggregate.Event):
        calls: list[dict[str, Any]]

    @event(UsageRecorded)
    def record(self, calls: list[dict[str, Any]]) -> None:
        """`calls`: [{"userId", "instanceId" (or None), "day" (YYYY-MM-DD), "apiCalls"}]."""
