"""The webhook log of an instance: which of its events were delivered or given up on."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

_NAMESPACE = uuid5(NAMESPACE_URL, "whatsapp-api:webhooks")


def webhook_log_id(instance_id: str) -> UUID:
    return uuid5(_NAMESPACE, instance_id)


def delivery_id(instance_id: str, version: int) -> str:
    """The same id for every attempt and replay of one event's delivery."""
    return str(uuid5(_NAMESPACE, f"{instance_id}:{version}"))


class WebhookLog(Aggregate):
    """Outcomes of webhook deliveries for one instance; `position` is how far it got."""

    @staticmethod
    def create_id(instance_id: str) -> UUID:
        return webhook_log_id(instance_id)

    class Opened(Aggregate.Created):
        instance_id: str

    @event(Opened)
    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.position = 0

    class WebhookDelivered(Aggregate.Event):
        instance_id: str
        position: int
        event_type: str
        delivery_id: str
        attempts: int
        status_code: int
        replay: bool

    @event(WebhookDelivered)
    def delivered(
        self,
        instance_id: str,
        position: int,
        event_type: str,
        delivery_id: str,
        attempts: int,
        status_code: int,
        replay: bool,
    ) -> None:
        if not replay:
            self.position = max(self.position, position)

    class WebhookFailed(Aggregate.Event):
        instance_id: str
        position: int
        event_type: str
        delivery_id: str
        attempts: int
        status_code: int | None
        error: str
        replay: bool

    @event(WebhookFailed)
    def failed(
        self,
        instance_id: str,
        position: int,
        event_type: str,
        delivery_id: str,
        attempts: int,
        status_code: int | None,
        error: str,
        replay: bool,
    ) -> None:
        if not replay:
            self.position = max(self.position, position)
