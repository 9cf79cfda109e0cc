"""Live projections into read models, on each provider: rows out, waiting, restart and
crash safety."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from app.eventstore import EventStore
from domain.instance import Instance
from domain.user import User
from projections.base import ReadModelProjection
from projections.directory import Directory
from projections.rows import ReadModels, Rows, Table
from projections.runner import LiveProjections
from tests.places import Storage

WAIT = 5.0


def new_user(email: str = "alice@example.com") -> User:
    return User(
        email=email,
        password_hash="pw",
        first_name="Alice",
        last_name="Liddell",
        role="user",
        api_key_hash=f"key-of-{email}",
        api_key_sealed="sealed",
    )


def new_instance(user: User, name: str = "Shop") -> Instance:
    return Instance(
        user_id=str(user.id),
        name=name,
        description="desc",
        engine="sandbox",
        webhook={"url": "http://hooks.test/x", "secret": "s3cret"},
        engine_settings={"accessToken": "tok", "phoneNumberId": "123"},
    )


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture()
def store(storage: Storage) -> EventStore:
    return storage.event_store()


@pytest.fixture()
def running() -> Iterator[list[tuple[LiveProjections, ReadModels]]]:
    """Every LiveProjections a test starts is stopped at its end."""
    started: list[tuple[LiveProjections, ReadModels]] = []
    yield started
    for live, read in started:
        live.stop()
        read.close()


def start(
    store: EventStore,
    storage: Storage,
    running: list[Any],
    make: Callable[[ReadModels], list[ReadModelProjection]] = lambda r: [Directory(r)],
    name: str = "read-models",
) -> LiveProjections:
    read = storage.read_models()
    live = LiveProjections(store, make(read), name)
    running.append((live, read))
    live.start()
    return live


def save(store: EventStore, live: LiveProjections, *aggregates: Any) -> int:
    position = store.save(*aggregates)[-1].notification.id
    assert live.wait(position, timeout=WAIT)
    return position


# -- events in, rows out ---------------------------------------------------------------


def test_users_and_instances_become_rows(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    live = start(store, storage, running)
    user = new_user()
    instance = new_instance(user)
    save(store, live, user, instance)

    [user_row] = storage.rows("users")
    assert user_row["id"] == str(user.id)
    assert (user_row["email"], user_row["role"], user_row["active"]) == (
        "alice@example.com",
        "user",
        1,
    )
    assert user_row["api_key_hash"] == "key-of-alice@example.com"
    assert user_row["created_at"].endswith("Z")

    def instance_row() -> dict[str, Any]:
        [row] = storage.rows("instances", id=str(instance.id))
        return row

    row = instance_row()
    assert (row["user_id"], row["name"], row["engine"]) == (str(user.id), "Shop", "sandbox")
    assert (row["status"], row["has_qr"], row["phone"], row["deleted"]) == (
        "connecting",
        0,
        None,
        0,
    )
    # Secrets stay out of the read models.
    assert json.loads(row["webhook"]) == {"url": "http://hooks.test/x", "hasSecret": True}
    assert json.loads(row["engine_settings"]) == {"phoneNumberId": "123"}

    instance.receive_qr("qr-1")
    save(store, live, instance)
    assert (instance_row()["status"], instance_row()["has_qr"]) == ("qr", 1)

    instance.open_connection("15550001111", "Shop")
    save(store, live, instance)
    row = instance_row()
    assert (row["status"], row["has_qr"], row["phone"]) == ("connected", 0, "15550001111")
    assert (row["last_error"], row["retry_at"]) == (None, None)

    instance.close_connection("lost", will_reconnect=True, retry_at=1_800_000_000.25)
    save(store, live, instance)
    row = instance_row()
    assert (row["status"], row["last_error"], row["retry_at"]) == (
        "reconnecting",
        "lost",
        1_800_000_000.25,
    )

    instance.receive_qr("qr-2")
    instance.close_connection("gone", will_reconnect=False)
    save(store, live, instance)
    row = instance_row()
    assert (row["status"], row["has_qr"], row["last_error"], row["retry_at"]) == (
        "disconnected",
        0,
        "gone",
        None,
    )

    instance.ban("BLOCKED_BY_USERS", 1_800_003_600)
    save(store, live, instance)
    row = instance_row()
    assert (row["status"], row["last_error"], row["retry_at"]) == (
        "banned",
        "banned: BLOCKED_BY_USERS",
        1_800_003_600,
    )

    instance.mark_outdated("neonize 0.5.2")
    save(store, live, instance)
    row = instance_row()
    assert (row["status"], row["retry_at"]) == ("outdated", None)
    assert row["last_error"] == "client_outdated: WhatsApp refuses neonize 0.5.2"

    instance.log_out("logout")
    save(store, live, instance)
    assert (instance_row()["status"], instance_row()["phone"]) == ("logged_out", None)

    instance.update({"name": "Shop 2", "webhook": {"secret": ""}})
    user.change_role("admin")
    user.deactivate()
    save(store, live, instance, user)
    row = instance_row()
    assert row["name"] == "Shop 2"
    assert json.loads(row["webhook"]) == {"url": "http://hooks.test/x", "hasSecret": False}
    [user_row] = storage.rows("users")
    assert (user_row["role"], user_row["active"]) == ("admin", 0)

    instance.delete()
    save(store, live, instance)
    row = instance_row()
    assert (row["status"], row["deleted"], row["has_qr"]) == ("deleted", 1, 0)
    assert live.error is None


def test_contacts_come_from_messages_and_keep_push_names(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    live = start(store, storage, running)
    user = new_user()
    instance = new_instance(user)
    instance.open_connection("15550001111", "Shop")
    bob = "15550002222@s.whatsapp.net"
    carol = "15550003333@s.whatsapp.net"
    group = "120363000000000001@g.us"

    instance.record_received(
        message_id="IN1",
        sender=bob,
        push_name="Bob",
        message_type="text",
        body="hi",
        media=None,
        received_at=1,
    )
    # Sending to Bob later must not forget his name.
    instance.record_sent(
        message_id="OUT1",
        to=bob,
        message_type="text",
        body="hello",
        media=None,
        sent_at=2,
        idempotency_key=None,
    )
    instance.record_sent(
        message_id="OUT2",
        to=carol,
        message_type="text",
        body="hello",
        media=None,
        sent_at=3,
        idempotency_key=None,
    )
    instance.record_sent(
        message_id="OUT3",
        to=group,
        message_type="text",
        body="hello all",
        media=None,
        sent_at=4,
        idempotency_key=None,
    )
    save(store, live, user, instance)

    def contacts() -> dict[str, dict[str, Any]]:
        found = storage.rows("contacts", instance_id=str(instance.id))
        return {r["jid"]: r for r in found}

    found = contacts()
    assert set(found) == {bob, carol, group}
    assert (found[bob]["name"], found[bob]["number"], found[bob]["is_group"]) == (
        "Bob",
        "15550002222",
        0,
    )
    assert found[carol]["name"] is None
    assert found[group]["is_group"] == 1

    # A newer name replaces the old one; a message without a name keeps it.
    instance.record_received(
        message_id="IN2",
        sender=bob,
        push_name="Robert",
        message_type="text",
        body="hi",
        media=None,
        received_at=5,
    )
    instance.record_received(
        message_id="IN3",
        sender=carol,
        push_name=None,
        message_type="text",
        body="hi",
        media=None,
        received_at=6,
    )
    instance.sync_contacts([{"jid": carol, "name": "Carol"}, {"jid": "15550004444@s.whatsapp.net"}])
    save(store, live, instance)
    found = contacts()
    assert found[bob]["name"] == "Robert"
    assert found[carol]["name"] == "Carol"
    assert found["15550004444@s.whatsapp.net"]["name"] is None
    assert len(found) == 4


def test_message_status_only_moves_forwards_and_usage_counts_by_day(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    from projections import catalog

    live = start(store, storage, running, catalog.build)
    user = new_user()
    instance = new_instance(user)
    instance.open_connection("15550001111", "Shop")
    bob = "15550002222@s.whatsapp.net"
    instance.record_sent(
        message_id="OUT1",
        to=bob,
        message_type="text",
        body="hello",
        media=None,
        sent_at=1,
        idempotency_key=None,
    )
    media = {"path": "/x/y.jpg", "filename": "y.jpg", "mimetype": "image/jpeg", "size": 700}
    instance.record_sent(
        message_id="OUT2",
        to=bob,
        message_type="image",
        body="",
        media=media,
        sent_at=2,
        idempotency_key=None,
    )
    instance.record_received(
        message_id="IN1",
        sender=bob,
        push_name="Bob",
        message_type="text",
        body="hi",
        media=None,
        received_at=3,
    )
    # In one batch: delivered, read, then a late delivered that must not win.
    instance.record_status("OUT1", "delivered", bob, True)
    instance.record_status("OUT1", "read", bob, True)
    instance.record_status("OUT1", "delivered", bob, True)
    instance.record_status("OUT2", "nonsense", bob, True)  # unranked: never an advance
    # A receipt before its message (sent from another device, say) changes nothing later.
    instance.record_status("OUT3", "read", bob, True)
    instance.record_sent(
        message_id="OUT3",
        to=bob,
        message_type="text",
        body="late",
        media=None,
        sent_at=4,
        idempotency_key=None,
    )
    save(store, live, user, instance)

    def status(message_id: str) -> str:
        [row] = storage.rows("messages", instance_id=str(instance.id), message_id=message_id)
        return row["status"]

    assert (status("OUT1"), status("OUT2"), status("IN1")) == ("read", "sent", "received")
    assert status("OUT3") == "sent"
    [image] = storage.rows("messages", message_id="OUT2")
    assert (image["has_media"], json.loads(image["media"])) == (
        1,
        {"filename": "y.jpg", "mimetype": "image/jpeg", "size": 700},
    )
    # A later batch cannot move it back either; a further step forwards still counts.
    instance.record_status("OUT1", "delivered", bob, True)
    instance.record_status("OUT2", "delivered", bob, True)
    save(store, live, instance)
    assert (status("OUT1"), status("OUT2")) == ("read", "delivered")
    instance.record_status("OUT1", "played", bob, True)
    save(store, live, instance)
    assert status("OUT1") == "played"

    [usage] = storage.rows("usage", instance_id=str(instance.id))
    assert usage["user_id"] == str(user.id)
    assert {
        k: usage[k]
        for k in (
            "messages_sent",
            "messages_received",
            "media_sent",
            "media_received",
            "total_media_size",
            "api_calls",
        )
    } == {
        "messages_sent": 3,
        "messages_received": 1,
        "media_sent": 1,
        "media_received": 0,
        "total_media_size": 700,
        "api_calls": 0,
    }
    actions = sorted(r["action"] for r in storage.rows("activity", instance_id=str(instance.id)))
    assert actions == ["connection_opened", "instance_created"]


def test_reads_in_a_batch_see_the_writes_before_them(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    from projections import catalog

    # Everything in one save, so it is one batch: each update reads the row that the
    # events before it wrote (and Usage reads the instance Directory has just created).
    user = new_user()
    user.change_limits({"maxInstances": 3})
    user.change_limits({"maxMessagesPerDay": 10})
    instance = new_instance(user)
    instance.update({"webhook": {"enabled": False}, "engine_settings": {"appSecret": "x", "a": 1}})
    instance.update({"webhook": {"secret": ""}, "name": "Renamed"})
    instance.open_connection("15550001111", "Shop")
    instance.record_sent(
        message_id="OUT1",
        to="15550002222@s.whatsapp.net",
        message_type="text",
        body="hi",
        media=None,
        sent_at=1,
        idempotency_key=None,
    )
    live = start(store, storage, running, catalog.build)
    save(store, live, user, instance)

    [user_row] = storage.rows("users")
    assert json.loads(user_row["limits"]) == {"maxInstances": 3, "maxMessagesPerDay": 10}
    [row] = storage.rows("instances")
    assert row["name"] == "Renamed"
    assert json.loads(row["webhook"]) == {
        "url": "http://hooks.test/x",
        "enabled": False,
        "hasSecret": False,
    }
    assert json.loads(row["engine_settings"]) == {"phoneNumberId": "123", "a": 1}
    [usage] = storage.rows("usage")
    assert (usage["user_id"], usage["messages_sent"]) == (str(user.id), 1)


def test_wait_returns_once_the_position_is_reached(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    live = start(store, storage, running)
    user = new_user()
    position = store.save(user)[-1].notification.id
    assert live.wait(position, timeout=WAIT) is True
    # The rows are there as soon as wait() says so.
    assert storage.count("users") == 1
    assert storage.tracked("read-models") == position
    assert live.position == position
    # A position nobody has written yet: wait() gives up after its timeout.
    started = time.monotonic()
    assert live.wait(position + 1, timeout=0.2) is False
    assert 0.15 < time.monotonic() - started < 2.0


def test_wait_async_returns_once_the_position_is_reached(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    import asyncio

    live = start(store, storage, running)

    async def scenario() -> tuple[bool, bool, int]:
        head = store.save(new_user())[-1].notification.id
        waiting = asyncio.ensure_future(live.wait_async(head + 1, timeout=WAIT))
        await asyncio.sleep(0)  # registered before the event exists
        later = await asyncio.to_thread(store.save, new_user("bob@example.com"))
        reached = await waiting
        too_far = await live.wait_async(later[-1].notification.id + 1, timeout=0.1)
        return reached, too_far, storage.count("users")

    reached, too_far, users = asyncio.run(scenario())
    assert reached is True and too_far is False
    assert users == 2


def test_a_waiter_whose_event_loop_has_closed_does_not_stop_the_projections(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    """A wait that timed out stays registered; if its event loop has ended by the time the
    position is reached (an event stream's loop, a shutdown), waking it must not kill the
    thread that writes the read models."""
    import asyncio

    live = start(store, storage, running)
    head = store.save(new_user())[-1].notification.id
    assert live.wait(head, timeout=WAIT)
    assert asyncio.run(live.wait_async(head + 1, timeout=0.01)) is False  # its loop is closed
    save(store, live, new_user("bob@example.com"))  # reaches the old waiter's position
    save(store, live, new_user("carol@example.com"))
    assert live.error is None and storage.count("users") == 3


def test_restart_resumes_from_the_tracking_position(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    live = start(store, storage, running)
    user = new_user()
    instance = new_instance(user)
    instance.receive_qr("qr")
    instance.record_received(
        message_id="IN1",
        sender="15550002222@s.whatsapp.net",
        push_name="Bob",
        message_type="text",
        body="hi",
        media=None,
        received_at=1,
    )
    head = save(store, live, user, instance)
    before = {t: storage.count(t) for t in ("users", "instances", "contacts")}
    assert before == {"users": 1, "instances": 1, "contacts": 1}
    live.stop()
    running.clear()

    again = start(store, storage, running)
    assert again.position == head  # resumes where the last one stopped
    assert again.wait(head, timeout=WAIT)
    # Nothing was applied twice (an insert of an existing row would have failed it).
    instance.open_connection("15550001111", None)
    save(store, again, instance)
    assert again.error is None
    assert {t: storage.count(t) for t in before} == before
    assert storage.rows("instances")[0]["status"] == "connected"
    assert storage.tracked("read-models") == store.recorder.max_notification_id()


def test_a_projection_starting_late_catches_up_from_the_beginning(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    users = [new_user(f"u{i}@example.com") for i in range(30)]
    store.save(*users)
    live = start(store, storage, running)
    head = store.recorder.max_notification_id()
    assert live.wait(head, timeout=WAIT)
    assert storage.count("users") == 30
    assert storage.tracked("read-models") == head


# -- crash safety ------------------------------------------------------------------------


class Ledger(ReadModelProjection):
    """Writes a row per event; raises on the event `explode_on` names (id, version)."""

    name = "ledger"
    tables = (Table("ledger", {"id": str, "topic": str}, pk=("id",)),)

    def __init__(self, view: ReadModels, explode_on: tuple[Any, int] | None = None) -> None:
        super().__init__(view)
        self.explode_on = explode_on

    def apply(self, event: Any, rows: Rows) -> None:
        if (event.originator_id, event.originator_version) == self.explode_on:
            raise RuntimeError("boom")
        rows.insert(
            "ledger",
            {
                "id": f"{event.originator_id}-{event.originator_version}",
                "topic": type(event).__qualname__,
            },
        )


def test_a_failing_batch_leaves_no_rows_and_no_position(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    # Everything is stored first, so that the whole history arrives as one batch.
    user = new_user()
    instance = new_instance(user)
    instance.receive_qr("qr")
    instance.open_connection("15550001111", "Shop")
    instance.record_received(
        message_id="IN1",
        sender="15550002222@s.whatsapp.net",
        push_name="Bob",
        message_type="text",
        body="hi",
        media=None,
        received_at=1,
    )
    instance.close_connection("lost", will_reconnect=False)
    store.save(user, instance)
    head = store.recorder.max_notification_id()
    assert head == 6

    read = storage.read_models()
    # The MessageReceived, in the middle of the history, fails; Directory comes first, so
    # that the failing event has already written its contact row when Ledger raises.
    live = LiveProjections(
        store, [Directory(read), Ledger(read, explode_on=(instance.id, 4))], "read-models"
    )
    running.append((live, read))
    live._reader.start()
    assert wait_until(lambda: live._inbox.qsize() == head), "the batch did not queue up"
    live._writer.start()
    assert wait_until(lambda: live.error is not None)

    assert isinstance(live.error, RuntimeError)
    assert live.position == 0
    assert live.wait(1, timeout=0.1) is False
    assert storage.tracked("read-models") == 0
    for table in ("users", "instances", "contacts", "ledger"):
        assert storage.count(table) == 0, f"partial rows left in {table}"
    live.stop()
    running.clear()

    # Fixed, the projection starts over from where the last good batch left it.
    assert storage.tracked("read-models") == 0
    fixed = start(store, storage, running, lambda r: [Directory(r), Ledger(r)])
    assert fixed.wait(head, timeout=WAIT)
    assert fixed.error is None
    assert storage.tracked("read-models") == store.recorder.max_notification_id() == head
    assert storage.count("ledger") == head
    assert storage.count("users") == 1 and storage.count("contacts") == 1
    assert storage.rows("instances")[0]["status"] == "disconnected"


def test_a_failure_after_good_batches_keeps_their_rows(
    store: EventStore, storage: Storage, running: list[Any]
) -> None:
    user = new_user()
    instance = new_instance(user)
    live = start(
        store,
        storage,
        running,
        lambda r: [Directory(r), Ledger(r, explode_on=(instance.id, 2))],
        name="crashy",
    )
    good = save(store, live, user, instance)

    instance.receive_qr("qr")
    bad = store.save(instance)[-1].notification.id
    assert wait_until(lambda: live.error is not None)
    assert live.wait(bad, timeout=0.1) is False
    assert storage.tracked("crashy") == good
    assert storage.count("ledger") == 2
    assert storage.rows("instances")[0]["has_qr"] == 0


# -- tracking ---------------------------------------------------------------------------


def test_track_refuses_a_repeated_or_older_position(storage: Storage) -> None:
    read = storage.read_models()
    read.ensure(Ledger.tables)
    try:
        read.atomically(lambda rows: rows.track("p", 5))
        assert read.position("p") == 5

        for position in (5, 4):

            def work(rows: Rows, position: int = position) -> None:
                rows.insert("ledger", {"id": f"side-{position}", "topic": "x"})
                rows.track("p", position)

            with pytest.raises(IntegrityError):
                read.atomically(work)
        # The refused transactions left nothing behind.
        assert storage.count("ledger") == 0
        assert read.position("p") == 5

        def both(rows: Rows) -> None:
            rows.track("p", 9)  # gaps are fine: positions are not contiguous
            rows.track("q", 1)  # names are independent

        read.atomically(both)
        assert (read.position("p"), read.position("q"), read.position("other")) == (9, 1, 0)
    finally:
        read.close()


def test_process_event_applies_one_event_with_its_position(storage: Storage) -> None:
    read = storage.read_models()
    try:
        directory = Directory(read)
        read.ensure(directory.tables)
        user = new_user()
        [event] = user.collect_events()
        directory.process_event(event, Tracking("WhatsApp", 7))
        assert read.position("directory") == 7
        assert storage.count("users") == 1
        # An event Directory ignores still moves the position, and only forwards.
        instance = new_instance(user)
        instance.record_status("M1", "read", "x@s.whatsapp.net", True)
        status = instance.collect_events()[-1]
        with pytest.raises(IntegrityError):
            directory.process_event(status, Tracking("WhatsApp", 7))
        directory.process_event(status, Tracking("WhatsApp", 8))
        assert read.position("directory") == 8
        assert storage.count("users") == 1
    finally:
        read.close()
