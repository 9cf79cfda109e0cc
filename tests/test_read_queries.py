"""Every read-model query, on SQLite and on MongoDB, against the same rows.

The rows (tests/readmodel_rows.py) are written straight into each provider; every
expectation below is worked out by hand from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo import monitoring
from pymongo.database import Database

from app import query
from app.config import Settings
from app.storage import open_storage
from projections import catalog
from projections.queries import Counts, ReadModelQueries, Window
from projections.usage import COUNTERS
from storage.mongodb.queries import MongoReadModels
from storage.mongodb.read_models import create_indexes
from storage.mongodb.schema import ACTIVITY_KEY, USAGE_KEY
from storage.sqlite.queries import SqliteReadModels
from tests import mongo
from tests import readmodel_rows as data
from tests.places import Storage
from tests.readmodel_rows import CHAT, OTHER_CHAT, Generation


@pytest.fixture()
def reads(storage: Storage) -> Iterator[ReadModelQueries]:
    rows = data.story()
    if storage.name == "sqlite":
        store = data.into_sqlite(storage.read_models_file, rows)
        yield SqliteReadModels(store)
        store.close()
    else:
        db = storage.read_models_database()
        # Unsuffixed collections hold other rows: the queries must go through the accessor.
        data.into_mongo(db, {"users": [data.user("stray", "stray@example.com", "2026-01-09")]})
        data.into_mongo(db, rows, suffix="_g2")
        yield MongoReadModels(Generation(db, "_g2"))


def usage(**counts: int) -> dict[str, int]:
    return {**dict.fromkeys(COUNTERS, 0), **counts}


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


# -- users --------------------------------------------------------------------------


def test_users_by_id_email_and_api_key(reads: ReadModelQueries) -> None:
    expected = data.user(
        "alice", "alice@example.com", "2026-01-02T00:00:00.000Z", limits={"maxMessagesPerDay": 5}
    )
    assert reads.user("alice") == expected
    assert reads.user_by_email("alice@example.com") == expected
    assert reads.user_by_api_key_hash("hash-alice") == expected
    assert reads.user("nobody") is None
    assert reads.user_by_email("nobody@example.com") is None
    assert reads.user_by_api_key_hash("hash-nobody") is None


def test_a_deactivated_user_is_found_but_not_as_active(reads: ReadModelQueries) -> None:
    bob = reads.user("bob")
    assert bob is not None and bob["active"] == 0
    assert reads.active_user("bob") is None
    assert reads.active_user("alice") == reads.user("alice")


def test_user_lists_are_oldest_first_and_counted(reads: ReadModelQueries) -> None:
    assert ids(reads.users()) == ["admin", "alice", "bob"]
    assert ids(reads.active_users()) == ["admin", "alice"]
    assert reads.user_counts() == Counts(total=3, active=2)


# -- instances ----------------------------------------------------------------------


def test_instances_of_a_user_leave_out_deleted_ones_oldest_first(reads: ReadModelQueries) -> None:
    found = reads.instances_of("alice")
    assert ids(found) == ["a2", "a1"]
    expected = data.instance("a1", "alice", "2026-01-05T00:00:00.000Z", status="connected")
    expected["webhook"] = json.loads(expected["webhook"])  # decoded for the routes
    expected["engine_settings"] = json.loads(expected["engine_settings"])
    assert found[1] == expected
    assert reads.instances_of("nobody") == []


def test_own_instance_only_for_its_owner_and_while_not_deleted(reads: ReadModelQueries) -> None:
    own = reads.own_instance("a1", "alice")
    assert own is not None and own["webhook"]["url"] == "http://hooks.test/a1"
    assert reads.own_instance("b1", "alice") is None  # Bob's
    assert reads.own_instance("a1", "bob") is None
    assert reads.own_instance("a3", "alice") is None  # deleted
    assert reads.own_instance("missing", "alice") is None


def test_engine_and_live_instances(reads: ReadModelQueries) -> None:
    assert reads.instance_engine("a2") == "cloud"
    assert reads.instance_engine("a1") == "sandbox"
    assert reads.instance_engine("a3") is None  # deleted
    assert reads.instance_engine("missing") is None
    assert sorted((r["id"], r["engine"]) for r in reads.live_instances()) == [
        ("a1", "sandbox"),
        ("a2", "cloud"),
        ("b1", "sandbox"),
    ]


def test_instance_counts_and_statuses_leave_out_deleted_ones(reads: ReadModelQueries) -> None:
    assert reads.instance_counts() == Counts(total=3, active=2)
    assert reads.instances_by_status() == {"connected": 2, "connecting": 1}


# -- contacts -----------------------------------------------------------------------


def test_contacts_of_an_instance_by_number(reads: ReadModelQueries) -> None:
    assert reads.contacts("a1") == [
        data.contact("a1", "111@s.whatsapp.net", "Abe", "111"),
        data.contact("a1", "222@s.whatsapp.net", "Bea", "222"),
        data.contact("a1", "group-1@g.us", None, "333", is_group=1),
    ]
    assert [c["name"] for c in reads.contacts("b1")] == ["Bob's Abe"]
    assert reads.contacts("a2") == []


# -- messages -----------------------------------------------------------------------


def test_messages_of_a_chat_newest_first_in_pages(reads: ReadModelQueries) -> None:
    first = reads.messages("a1", [CHAT], Window(limit=2))
    assert ids(first.rows) == ["a1-5", "a1-4"]
    assert first.total == 5
    assert query.pagination(first.total, 2, 0).hasMore
    middle = reads.messages("a1", [CHAT], Window(limit=2, skip=2))
    assert ids(middle.rows) == ["a1-3", "a1-2"]
    last = reads.messages("a1", [CHAT], Window(limit=2, skip=4))
    assert ids(last.rows) == ["a1-1"]
    assert last.total == 5 and not query.pagination(last.total, 2, 4).hasMore
    beyond = reads.messages("a1", [CHAT], Window(limit=2, skip=10))
    assert beyond.rows == [] and beyond.total == 5


def test_a_message_row_keeps_the_stored_values(reads: ReadModelQueries) -> None:
    (row,) = reads.messages("a1", [CHAT], Window(limit=1, skip=2)).rows
    assert row == data.message(
        "a1", 3, CHAT, data.at(3), media={"mimetype": "image/png", "size": 100}
    )
    assert json.loads(row["media"]) == {"mimetype": "image/png", "size": 100}


def test_messages_between_dates_both_ends_included(reads: ReadModelQueries) -> None:
    page = reads.messages("a1", [CHAT], Window(limit=50, start=data.at(2), end=data.at(4)))
    assert ids(page.rows) == ["a1-4", "a1-3", "a1-2"] and page.total == 3
    since = reads.messages("a1", [CHAT], Window(limit=1, start=data.at(4)))
    assert ids(since.rows) == ["a1-5"] and since.total == 2
    until = reads.messages("a1", [CHAT], Window(limit=50, end=data.at(1)))
    assert ids(until.rows) == ["a1-1"] and until.total == 1


def test_messages_stay_in_their_chat_and_instance(reads: ReadModelQueries) -> None:
    assert ids(reads.messages("a1", [OTHER_CHAT], Window(limit=50)).rows) == ["a1-6"]
    assert ids(reads.messages("b1", [CHAT], Window(limit=50)).rows) == ["b1-1"]
    empty = reads.messages("a2", [CHAT], Window(limit=50))
    assert empty.rows == [] and empty.total == 0


def test_message_statuses_by_id_of_one_instance(reads: ReadModelQueries) -> None:
    # What Meta's webhook route asks to recognise a delivery it stored before.
    wanted = ["wamid-a1-1", "wamid-a1-6", "wamid-b1-1", "wamid-unknown"]
    assert reads.message_statuses("a1", wanted) == {"wamid-a1-1": "sent", "wamid-a1-6": "sent"}
    assert reads.message_statuses("a1", []) == {}
    many = [f"wamid-none-{n}" for n in range(1200)] + ["wamid-a1-2"]  # past one batch
    assert reads.message_statuses("a1", many) == {"wamid-a1-2": "sent"}


# -- activity -----------------------------------------------------------------------


def test_activity_newest_first_with_actions_and_dates(reads: ReadModelQueries) -> None:
    everything = reads.activity("a1", [], Window(limit=100))
    assert [r["action"] for r in everything.rows] == [
        "connection_opened",
        "qr_received",
        "connection_requested",
        "instance_created",
    ]
    assert everything.total == 4
    assert json.loads(everything.rows[0]["details"]) == {"n": 4}
    chosen = reads.activity("a1", ["qr_received", "instance_created"], Window(limit=1))
    assert ids(chosen.rows) == ["a1-3"] and chosen.total == 2
    both = reads.activity(
        "a1", ["qr_received", "instance_created"], Window(limit=10, start=data.at(2))
    )
    assert ids(both.rows) == ["a1-3"] and both.total == 1
    paged = reads.activity("a1", [], Window(limit=2, skip=1, end=data.at(3)))
    assert ids(paged.rows) == ["a1-2", "a1-1"] and paged.total == 3
    assert ids(reads.activity("a2", [], Window(limit=10)).rows) == ["a2-2", "a2-1"]
    assert reads.activity("a1", ["logged_out"], Window(limit=10)).total == 0


def test_rows_of_the_same_millisecond_page_without_overlap(reads: ReadModelQueries) -> None:
    pages = [reads.activity("a2", [], Window(limit=1, skip=skip)) for skip in (0, 1)]
    assert [ids(page.rows) for page in pages] == [["a2-2"], ["a2-1"]]
    assert {page.total for page in pages} == {2}


# -- deliveries ---------------------------------------------------------------------


def test_deliveries_by_status_newest_first(reads: ReadModelQueries) -> None:
    every = reads.deliveries("a1", None, Window(limit=50))
    assert ids(every.rows) == ["log-a1-3", "log-a1-2", "log-a1-1"] and every.total == 3
    assert every.rows[1] == data.delivery("a1", 2, "failed", data.at(2))
    failed = reads.deliveries("a1", "failed", Window(limit=50))
    assert ids(failed.rows) == ["log-a1-2"] and failed.total == 1
    delivered = reads.deliveries("a1", "delivered", Window(limit=1, skip=1))
    assert ids(delivered.rows) == ["log-a1-1"] and delivered.total == 2
    assert ids(reads.deliveries("b1", None, Window(limit=50)).rows) == ["log-b1-1"]
    assert reads.deliveries("a2", None, Window(limit=50)).total == 0


# -- usage --------------------------------------------------------------------------


def test_usage_of_a_user_all_time_and_from_a_day(reads: ReadModelQueries) -> None:
    assert reads.usage_of_user("alice", None) == usage(
        messages_sent=8,
        messages_received=5,
        media_sent=1,
        media_received=2,
        total_media_size=150,
        api_calls=10,
        webhook_sent=1,
        webhook_failed=1,
    )
    assert reads.usage_of_user("alice", "2026-03-02") == usage(
        messages_sent=6,
        messages_received=4,
        media_received=2,
        total_media_size=50,
        api_calls=7,
        webhook_failed=1,
    )
    assert reads.usage_of_user("alice", "2026-03-03") == usage()
    assert reads.usage_of_user("nobody", None) == usage()


def test_usage_by_instance_leaves_out_calls_without_one(reads: ReadModelQueries) -> None:
    assert reads.usage_by_instance("alice", None) == {
        "a1": usage(
            messages_sent=3,
            messages_received=5,
            media_sent=1,
            media_received=2,
            total_media_size=150,
            api_calls=3,
            webhook_sent=1,
            webhook_failed=1,
        ),
        "a2": usage(messages_sent=5),
    }
    assert reads.usage_by_instance("alice", "2026-03-02") == {
        "a1": usage(
            messages_sent=1,
            messages_received=4,
            media_received=2,
            total_media_size=50,
            webhook_failed=1,
        ),
        "a2": usage(messages_sent=5),
    }
    assert reads.usage_by_instance("bob", "2026-03-01") == {}


def test_usage_of_an_instance_counts_every_caller(reads: ReadModelQueries) -> None:
    assert reads.usage_of_instance("a1", None) == usage(
        messages_sent=3,
        messages_received=5,
        media_sent=1,
        media_received=2,
        total_media_size=150,
        api_calls=5,
        webhook_sent=1,
        webhook_failed=1,
    )
    assert reads.usage_of_instance("a1", "2026-03-02")["api_calls"] == 2
    assert reads.usage_of_instance("a3", None) == usage()


def test_daily_usage_groups_by_day_in_order(reads: ReadModelQueries) -> None:
    assert reads.daily_usage("a1", None) == [
        {
            "day": "2026-03-01",
            "messages_sent": 2,
            "messages_received": 1,
            "media_sent": 1,
            "media_received": 0,
        },
        {
            "day": "2026-03-02",
            "messages_sent": 1,
            "messages_received": 4,
            "media_sent": 0,
            "media_received": 2,
        },
    ]
    assert [d["day"] for d in reads.daily_usage("a1", "2026-03-02")] == ["2026-03-02"]
    assert reads.daily_usage("a3", None) == []


def test_usage_of_the_system_and_of_one_day(reads: ReadModelQueries) -> None:
    assert reads.usage_of_system() == usage(
        messages_sent=17,
        messages_received=14,
        media_sent=1,
        media_received=2,
        total_media_size=150,
        api_calls=12,
        webhook_sent=1,
        webhook_failed=1,
    )
    assert reads.messages_sent_on("alice", "2026-03-02") == 6
    assert reads.messages_sent_on("alice", "2026-03-01") == 2
    assert reads.messages_sent_on("alice", "2026-02-20") == 0
    assert reads.messages_sent_on("nobody", "2026-03-02") == 0


# -- not per provider ---------------------------------------------------------------


@pytest.fixture()
def mongo_db(mongodb_client: pymongo.MongoClient, mongodb_database: str) -> Database:
    return mongodb_client[mongodb_database]


def test_the_indexes_mongodb_queries_name_are_created_by_the_store(mongo_db: Database) -> None:
    # The hinted queries fail loudly if their index is missing: prove the store makes them.
    specs = {t.name: t for t in catalog.TABLES}
    for table, keys in (("usage", USAGE_KEY), ("activity", ACTIVITY_KEY)):
        create_indexes(mongo_db[table], specs[table])
        made = [list(ix["key"].items()) for ix in mongo_db[table].list_indexes()]
        assert keys in made, (table, made)


def test_the_provider_setting_picks_the_queries(
    tmp_path: Path, mongodb_url: str, mongo_db: Database
) -> None:
    store = data.into_sqlite(tmp_path / "read.db", {})
    sqlite = open_storage(Settings.from_env({}))
    url = mongo.with_database(mongodb_url, mongo_db.name)
    mongodb = open_storage(Settings.from_env({"DATABASE_PROVIDER": "mongodb", "DATABASE_URL": url}))
    try:
        assert isinstance(sqlite.queries(store), SqliteReadModels)
        assert isinstance(mongodb.queries(mongodb.read_models()), MongoReadModels)
        with pytest.raises(TypeError, match="MongoDB"):
            mongodb.queries(store)  # a SQLite store cannot serve MongoDB queries
    finally:
        store.close()
        mongodb.close()


class Commands(monitoring.CommandListener):
    """The reads a client sends, to explain them afterwards."""

    def __init__(self) -> None:
        self.reads: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "aggregate"):
            self.reads.append(
                {k: v for k, v in event.command.items() if not k.startswith(("$", "lsid"))}
            )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...


def _stages(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if isinstance(plan.get("stage"), str):
            yield plan["stage"]
        for value in plan.values():
            yield from _stages(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _stages(value)


def test_mongodb_per_user_and_per_instance_queries_use_an_index(
    mongodb_url: str,
    mongo_db: Database,
) -> None:
    data.into_mongo(mongo_db, data.story())
    commands = Commands()
    client: pymongo.MongoClient = pymongo.MongoClient(mongodb_url, event_listeners=[commands])
    try:
        reads = MongoReadModels(Generation(client[mongo_db.name], ""))
        asked = [
            lambda: reads.user("alice"),
            lambda: reads.active_user("alice"),
            lambda: reads.user_by_email("alice@example.com"),
            lambda: reads.user_by_api_key_hash("hash-alice"),
            lambda: reads.instances_of("alice"),
            lambda: reads.own_instance("a1", "alice"),
            lambda: reads.instance_engine("a1"),
            lambda: reads.contacts("a1"),
            lambda: reads.messages("a1", [CHAT], Window(limit=2, start=data.at(2))),
            lambda: reads.activity("a1", ["qr_received"], Window(limit=2)),
            lambda: reads.deliveries("a1", "failed", Window(limit=2)),
            lambda: reads.deliveries("a1", None, Window(limit=2)),
            lambda: reads.usage_of_user("alice", "2026-03-01"),
            lambda: reads.usage_by_instance("alice", None),
            lambda: reads.usage_of_instance("a1", None),
            lambda: reads.daily_usage("a1", None),
            lambda: reads.messages_sent_on("alice", "2026-03-02"),
        ]
        for ask in asked:
            ask()
        assert len(commands.reads) >= len(asked)
        scans = []
        for read in commands.reads:
            stages = set(_stages(client[mongo_db.name].command("explain", read)))
            if "COLLSCAN" in stages or not stages & {"IXSCAN", "IDHACK"}:
                scans.append((read, stages))
        assert not scans
    finally:
        client.close()
