"""The catalogue of events (domain/events.py) is complete, and what names events follows it.

Adding an event to an aggregate fails here until it is entered in the catalogue with its
audit-trail name, its activity-log action (or None) and its webhook (or None); and the
activity log and the webhook payloads must then handle exactly the events it says.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from eventsourcing.domain import Aggregate, DomainEvent
from eventsourcing.utils import get_topic

import domain
from actors.webhooks.feed import INSTANCE_TOPICS
from actors.webhooks.payloads import BUILDERS
from app import history
from app.eventstore import SNAPSHOT_INTERVAL, EventStore
from domain import events
from domain.instance import Instance
from domain.user import User
from projections.activity import Activity
from projections.queries.cached import OWNERSHIP_TOPICS, USER_TOPICS


def aggregates_of_the_domain() -> set[type[Any]]:
    found = set()
    for module in pkgutil.iter_modules(domain.__path__):
        loaded = importlib.import_module(f"domain.{module.name}")
        found |= {
            value
            for value in vars(loaded).values()
            if isinstance(value, type)
            and issubclass(value, Aggregate)
            and value.__module__ == loaded.__name__
        }
    return found


def events_of(aggregate: type[Any]) -> set[type[Any]]:
    """The event classes an aggregate records. eventsourcing gives every aggregate an
    `Event` base and a `Created` class, which is not recorded when `__init__` records an
    event of another name (User's `Registered`)."""
    declared = {
        value
        for name, value in vars(aggregate).items()
        if isinstance(value, type) and issubclass(value, DomainEvent) and name != "Event"
    }
    creations = {cls for cls in declared if issubclass(cls, Aggregate.Created)}
    if len(creations) > 1:
        declared -= {cls for cls in creations if cls.__name__ == "Created"}
    return declared


def test_every_event_of_every_aggregate_is_in_the_catalogue() -> None:
    assert set(events.AGGREGATES) == aggregates_of_the_domain()
    recorded = {cls for aggregate in events.AGGREGATES for cls in events_of(aggregate)}
    catalogued = [e.cls for e in events.EVENT_TYPES]
    assert len(catalogued) == len(set(catalogued)), "an event is catalogued twice"
    missing = sorted(c.__qualname__ for c in recorded - set(catalogued))
    assert missing == [], f"add these to domain/events.py: {missing}"
    assert set(catalogued) <= recorded


def test_names_and_topics_are_unique_and_the_audit_trail_uses_them() -> None:
    names = [e.name for e in events.EVENT_TYPES]
    assert len(names) == len(set(names))
    assert history.topics_for(["MessageSent", "UserRegistered"]) == [
        "domain.instance:Instance.MessageSent",
        "domain.user:User.Registered",
    ]
    assert {e.name: e.topic for e in events.EVENT_TYPES} == history.EVENT_TOPICS


def test_the_activity_log_shows_exactly_the_events_the_catalogue_says() -> None:
    activity = Activity(None)  # type: ignore[arg-type]  # only its handlers are asked
    handled = {e.cls for e in events.EVENT_TYPES if activity.handler(e.cls) is not None}
    assert handled == {e.cls for e in events.EVENT_TYPES if e.activity is not None}


def test_webhooks_send_exactly_the_events_the_catalogue_says() -> None:
    assert set(BUILDERS) == {e.cls for e in events.EVENT_TYPES if e.webhook is not None}


def test_the_read_cache_forgets_on_the_events_that_change_what_it_keeps() -> None:
    assert {events.topic(c) for c in events_of(User)} == USER_TOPICS
    assert {events.topic(c) for c in (Instance.Created, Instance.Updated, Instance.Deleted)} == (
        OWNERSHIP_TOPICS
    )


def test_topics_are_the_ones_eventsourcing_stores_and_webhooks_follow_every_instance_event() -> (
    None
):
    assert [e.topic for e in events.EVENT_TYPES] == [get_topic(e.cls) for e in events.EVENT_TYPES]
    # The webhook feed wakes on every instance event (a deliverer must move past all of them).
    assert set(INSTANCE_TOPICS) == {events.topic(c) for c in events_of(Instance)}


def test_every_aggregate_is_snapshotted_by_one_rule() -> None:
    assert EventStore.snapshotting_intervals == dict.fromkeys(events.AGGREGATES, SNAPSHOT_INTERVAL)
