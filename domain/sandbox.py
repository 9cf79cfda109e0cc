"""What the sandbox network passes between nodes: reports for an instance paired elsewhere."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event


class SandboxRelay(Aggregate):
    """One hand-over of the simulated network between nodes (one aggregate each, so that
    relays never contend): reports (a message, its receipts) for the instance paired as
    `to`, stored by the sender's node and delivered by whichever node runs the recipient."""

    class Relayed(Aggregate.Created):
        to: str
        reports: list[dict[str, Any]]

    @event(Relayed)
    def __init__(self, to: str, reports: list[dict[str, Any]]) -> None:
        self.to = to
        self.reports = reports
