"""The event history for auditing: stored events, in store order, with secrets redacted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification

from actors.engines.base import media_id
from app.answers import ENCODER
from app.eventstore import EventStore
from domain import events
from domain.timestamps import iso_us
from domain.urls import redact_url

REDACTED = "[redacted]"
_SECRET_KEYS = frozenset(
    {
        "passwordHash",
        "apiKeyHash",
        "apiKeySealed",
        "secret",
        "accessToken",
        "appSecret",
        "verifyToken",
    }
)
_SKIP = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


EVENT_TOPICS = {e.name: e.topic for e in events.EVENT_TYPES}
_NAMES = {e.cls: e.name for e in events.EVENT_TYPES}


def topics_for(types: Sequence[str]) -> list[str]:
    """Topics for event type names; ValueError naming an unknown one."""
    unknown = [t for t in types if t not in EVENT_TOPICS]
    if unknown:
        raise ValueError(
            f"unknown event type(s): {', '.join(unknown)} "
            f"(known: {', '.join(sorted(EVENT_TOPICS))})"
        )
    return [EVENT_TOPICS[t] for t in types]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# Addresses that may carry credentials (user:password@, ?token=): shown without them.
_URL_KEYS = frozenset({"url", "proxy", "webhookUrl"})


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return iso_us(value)
    return value


def _redact_item(key: str, value: Any) -> Any:
    if key in _SECRET_KEYS and value:
        return REDACTED
    if key in _URL_KEYS and isinstance(value, str):
        return redact_url(value)
    return redact(value)


def describe(app: Application[Any], notification: Notification) -> dict[str, Any]:
    """A stored event as the API and the CLI show it."""
    # Every event of the domain is a DomainEvent (eventsourcing's protocol has no timestamp).
    event = cast(DomainEvent, app.mapper.to_domain_event(notification))
    data = {camel(k): v for k, v in vars(event).items() if k not in _SKIP}
    media = data.get("media")
    if isinstance(media, dict) and "path" in media:  # stored before media had ids
        path = media.pop("path")
        data["media"] = {"id": media_id(path) if path else None, **media}
    kind = type(event)
    return {
        "position": notification.id,
        "type": _NAMES.get(kind, kind.__qualname__),
        "aggregate": kind.__qualname__.split(".", 1)[0],
        "aggregateId": str(event.originator_id),
        "version": event.originator_version,
        "timestamp": redact(event.timestamp),
        "data": redact(data),
    }


def read(
    app: EventStore,
    originator_id: UUID | None,
    after: int,
    limit: int,
    topics: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Events after `after` (one aggregate's, or all), oldest first."""
    recorder = app.recorder
    if originator_id is None:
        notifications = recorder.select_notifications(
            start=after, limit=limit, topics=topics, inclusive_of_start=False
        )
    else:
        notifications = recorder.select_originator_notifications(
            originator_id, gt=after, limit=limit, topics=topics
        )
    return [describe(app, n) for n in notifications]


def to_json(event: dict[str, Any]) -> str:
    return ENCODER.encode(event).decode()
