"""Random read models: SQLite and MongoDB give the same answer to every query."""

from __future__ import annotations

import uuid
from typing import Any

import pymongo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.queries import ReadModelQueries, Window
from projections.usage import COUNTERS
from storage.mongodb.queries import MongoReadModels
from storage.sqlite.queries import SqliteReadModels
from tests import readmodel_rows as data

USERS = ("u1", "u2")
INSTANCES = ("i1", "i2")
DAYS = ("2026-03-01", "2026-03-02", "2026-03-03")
CHATS = ("c1@s.whatsapp.net", "c2@s.whatsapp.net")
ACTIONS = ("qr_received", "connection_opened", "connection_closed")
STATUSES = ("delivered", "failed")
SECONDS = st.integers(0, 4)  # few distinct times: rows of the same millisecond are common


@st.composite
def read_models(draw: Any) -> data.Rows:
    usage_keys = draw(
        st.sets(
            st.tuples(
                st.sampled_from(USERS), st.sampled_from(("", *INSTANCES)), st.sampled_from(DAYS)
            ),
            max_size=12,
        )
    )
    usage = [
        data.usage(user, instance, day, **{c: draw(st.integers(0, 3)) for c in COUNTERS})
        for user, instance, day in sorted(usage_keys)
    ]
    # Ids in string order, written in that order: both providers break ties the same way.
    messages = sorted(
        (
            data.message(
                draw(st.sampled_from(INSTANCES)),
                v,
                draw(st.sampled_from(CHATS)),
                data.at(draw(SECONDS)),
            )
            for v in range(draw(st.integers(0, 12)))
        ),
        key=lambda r: r["id"],
    )
    activity = sorted(
        (
            data.activity(
                draw(st.sampled_from(INSTANCES)),
                v,
                draw(st.sampled_from(ACTIONS)),
                data.at(draw(SECONDS)),
            )
            for v in range(draw(st.integers(0, 12)))
        ),
        key=lambda r: r["id"],
    )
    deliveries = sorted(
        (
            data.delivery(
                draw(st.sampled_from(INSTANCES)),
                v,
                draw(st.sampled_from(STATUSES)),
                data.at(draw(SECONDS)),
            )
            for v in range(draw(st.integers(0, 8)))
        ),
        key=lambda r: r["id"],
    )
    instances = [
        data.instance(
            i,
            draw(st.sampled_from(USERS)),
            data.at(n),
            deleted=draw(st.integers(0, 1)),
            status=draw(st.sampled_from(("connected", "connecting"))),
        )
        for n, i in enumerate(INSTANCES)
    ]
    users = [
        data.user(u, f"{u}@example.com", data.at(n), active=draw(st.integers(0, 1)))
        for n, u in enumerate(USERS)
    ]
    return {
        "users": users,
        "instances": instances,
        "messages": messages,
        "activity": activity,
        "deliveries": deliveries,
        "usage": usage,
    }


def answers(reads: ReadModelQueries, window: Window, actions: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "users": reads.users(),
        "active": reads.active_users(),
        "counts": reads.user_counts(),
        "instances": reads.instance_counts(),
        "statuses": reads.instances_by_status(),
        "system": reads.usage_of_system(),
    }
    for user in USERS:
        found[user] = (
            reads.instances_of(user),
            reads.usage_by_instance(user, DAYS[1]),
            reads.usage_of_user(user, None),
            reads.messages_sent_on(user, DAYS[2]),
        )
    for instance in INSTANCES:
        found[instance] = (
            reads.daily_usage(instance, None),
            reads.usage_of_instance(instance, DAYS[1]),
            reads.activity(instance, actions, window),
            reads.deliveries(instance, "failed", window),
            reads.deliveries(instance, None, window),
            [reads.messages(instance, [chat], window) for chat in CHATS],
            reads.messages(instance, CHATS, window),
        )
    return found


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=read_models(),
    limit=st.integers(1, 5),
    skip=st.integers(0, 6),
    start=st.one_of(st.none(), SECONDS),
    end=st.one_of(st.none(), SECONDS),
    actions=st.lists(st.sampled_from(ACTIONS), max_size=2, unique=True),
)
def test_both_providers_answer_alike(
    tmp_path_factory: Any,
    mongodb_client: pymongo.MongoClient,
    rows: data.Rows,
    limit: int,
    skip: int,
    start: int | None,
    end: int | None,
    actions: list[str],
) -> None:
    window = Window(
        limit,
        skip,
        None if start is None else data.at(start),
        None if end is None else data.at(end),
    )
    store = data.into_sqlite(tmp_path_factory.mktemp("agree") / "read.db", rows)
    name = f"agree_{uuid.uuid4().hex[:12]}"
    try:
        data.into_mongo(mongodb_client[name], rows)
        mongo = MongoReadModels(data.Generation(mongodb_client[name]))
        assert answers(mongo, window, actions) == answers(SqliteReadModels(store), window, actions)
    finally:
        store.close()
        mongodb_client.drop_database(name)
