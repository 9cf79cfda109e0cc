"""The Instance and User aggregates on their own: no store, no actors, no server."""

from __future__ import annotations

from typing import Any
from uuid import uuid5

import pytest
from eventsourcing.domain import Aggregate

from app.eventstore import EventStore
from domain import instance as instance_module
from domain.instance import (
    IDEMPOTENCY_MEMORY,
    Instance,
    InstanceDeleted,
    InstanceNotConnected,
)
from domain.user import USER_NAMESPACE, User, UserDeactivated, user_id_for


def new_instance(**overrides: Any) -> Instance:
    values: dict[str, Any] = {
        "user_id": "user-1",
        "name": "Shop",
        "description": "the shop's number",
        "engine": "sandbox",
        "webhook": {"url": "http://hooks.test/x", "secret": "s"},
        "engine_settings": {"proxy": None},
    }
    values.update(overrides)
    return Instance(**values)


def connected_instance() -> Instance:
    instance = new_instance()
    instance.receive_qr("qr-1")
    instance.open_connection("15550001111", "Shop")
    return instance


def new_user(email: str = "Alice@Example.com") -> User:
    return User(
        email=email,
        password_hash="pw-hash",
        first_name="Alice",
        last_name="Liddell",
        role="user",
        api_key_hash="key-hash",
        api_key_sealed="sealed",
    )


def send(instance: Instance, n: int, key: str | None = None) -> None:
    instance.record_sent(
        message_id=f"MSG{n:08d}",
        to="15550002222@s.whatsapp.net",
        message_type="text",
        body=f"message number {n}",
        media=None,
        sent_at=1_700_000_000 + n,
        idempotency_key=key,
    )


def state(aggregate: Aggregate) -> dict[str, Any]:
    """What an aggregate knows, without its not-yet-collected events."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def replay(events: list[Any]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


# -- lifecycle ----------------------------------------------------------------------


def test_a_new_instance_is_connecting_and_keeps_its_settings() -> None:
    instance = new_instance()
    assert instance.status == "connecting"
    assert not instance.ready
    assert instance.qr_code is None and instance.phone is None
    assert instance.deleted is False
    assert instance.idempotency == {}
    assert instance.webhook == {"url": "http://hooks.test/x", "secret": "s"}
    assert [type(e).__name__ for e in instance.pending_events] == ["Created"]


def test_connection_lifecycle_statuses() -> None:
    instance = new_instance()

    instance.request_connection("start")
    assert instance.status == "connecting"

    instance.receive_qr("qr-code-1")
    assert (instance.status, instance.qr_code) == ("qr", "qr-code-1")

    instance.open_connection("15550001111", "Shop")
    assert instance.status == "connected" and instance.ready
    assert instance.qr_code is None
    assert (instance.phone, instance.push_name) == ("15550001111", "Shop")
    assert (instance.last_error, instance.retry_at) == (None, None)

    instance.close_connection("connection_lost", will_reconnect=True, retry_at=1_800_000_000.5)
    assert instance.status == "reconnecting" and not instance.ready
    assert (instance.last_error, instance.retry_at) == ("connection_lost", 1_800_000_000.5)
    assert instance.phone == "15550001111"  # the session is still linked

    # A reconnect that does not report a phone or name keeps the known ones.
    instance.open_connection(None, None)
    assert instance.status == "connected"
    assert (instance.phone, instance.push_name) == ("15550001111", "Shop")

    assert (instance.last_error, instance.retry_at) == (None, None)  # cleared by connecting

    instance.receive_qr("qr-code-2")
    instance.close_connection("stream_error", will_reconnect=False, retry_at=1_800_000_000)
    assert instance.status == "disconnected"
    assert instance.qr_code is None
    # Nothing will retry, whatever the engine said.
    assert (instance.last_error, instance.retry_at) == ("stream_error", None)

    instance.log_out("logout", unlinked=False)
    assert instance.status == "logged_out"
    assert instance.phone is None and instance.qr_code is None
    assert instance.last_error == "logout"

    names = [type(e).__name__ for e in instance.collect_events()]
    assert names == [
        "Created",
        "ConnectionRequested",
        "QrReceived",
        "ConnectionOpened",
        "ConnectionClosed",
        "ConnectionOpened",
        "QrReceived",
        "ConnectionClosed",
        "LoggedOut",
    ]
    assert instance.version == len(names)


def test_ban_is_a_status_of_its_own() -> None:
    instance = connected_instance()
    instance.receive_qr("qr")
    instance.ban("SEND_TO_TOO_MANY_PEOPLE", 1_800_000_000)
    assert instance.status == "banned"
    assert instance.qr_code is None
    assert instance.last_error == "banned: SEND_TO_TOO_MANY_PEOPLE"
    assert instance.retry_at == 1_800_000_000  # when the ban ends and it connects again
    with pytest.raises(InstanceNotConnected):
        instance.check_connected()


def test_an_outdated_client_is_a_status_of_its_own() -> None:
    instance = connected_instance()
    instance.close_connection("connect failed", will_reconnect=True, retry_at=1_800_000_000)
    instance.mark_outdated("neonize 0.5.2")
    assert instance.status == "outdated"
    assert instance.last_error == "client_outdated: WhatsApp refuses neonize 0.5.2"
    assert instance.retry_at is None  # nothing retries until neonize is upgraded
    with pytest.raises(InstanceNotConnected):
        instance.check_connected()


def test_a_qr_code_dropped_unscanned_leaves_the_instance_disconnected() -> None:
    instance = new_instance()
    instance.receive_qr("qr")
    instance.expire_qr()
    assert (instance.status, instance.qr_code, instance.last_error) == (
        "disconnected",
        None,
        "qr_expired",
    )


@pytest.mark.parametrize(
    "setup",
    [
        lambda i: None,
        lambda i: i.receive_qr("qr"),
        lambda i: (i.open_connection("1555000", None), i.close_connection("x", True)),
        lambda i: (i.open_connection("1555000", None), i.close_connection("x", False)),
        lambda i: (i.open_connection("1555000", None), i.log_out("logout")),
    ],
    ids=["connecting", "qr", "reconnecting", "disconnected", "logged_out"],
)
def test_check_connected_refuses_unless_connected(setup: Any) -> None:
    instance = new_instance()
    setup(instance)
    assert instance.status != "connected"
    with pytest.raises(InstanceNotConnected, match="not connected"):
        instance.check_connected()
    version = instance.version
    with pytest.raises(InstanceNotConnected):
        send(instance, 1)
    assert instance.version == version  # the refused send recorded nothing


def test_check_connected_passes_when_connected() -> None:
    instance = connected_instance()
    instance.check_connected()
    send(instance, 1)
    assert type(instance.pending_events[-1]).__name__ == "MessageSent"


# -- settings and deletion ----------------------------------------------------------


def test_update_merges_settings_and_ignores_empty_changes() -> None:
    instance = new_instance()
    instance.collect_events()
    instance.update({})
    assert instance.pending_events == []

    instance.update(
        {"name": "Shop 2", "webhook": {"events": ["message"]}, "engine_settings": {"x": 1}}
    )
    assert instance.name == "Shop 2"
    assert instance.description == "the shop's number"
    assert instance.webhook == {"url": "http://hooks.test/x", "secret": "s", "events": ["message"]}
    assert instance.engine_settings == {"proxy": None, "x": 1}
    assert [type(e).__name__ for e in instance.collect_events()] == ["Updated"]


def test_created_settings_are_copies_of_the_arguments() -> None:
    webhook = {"url": "http://a"}
    instance = new_instance(webhook=webhook)
    instance.update({"webhook": {"url": "http://b"}})
    assert webhook == {"url": "http://a"}


def test_a_deleted_instance_refuses_update_delete_and_sends() -> None:
    instance = connected_instance()
    instance.delete()
    assert instance.deleted is True
    assert instance.status == "deleted"
    assert instance.qr_code is None
    version = instance.version

    with pytest.raises(InstanceDeleted):
        instance.update({"name": "again"})
    with pytest.raises(InstanceDeleted):
        instance.delete()
    # Deleted wins over not-connected: the caller learns the real reason.
    with pytest.raises(InstanceDeleted):
        instance.check_connected()
    with pytest.raises(InstanceDeleted):
        send(instance, 1)
    assert instance.version == version
    assert instance.name == "Shop"


# -- idempotency --------------------------------------------------------------------


def test_idempotency_keys_are_remembered() -> None:
    instance = connected_instance()
    send(instance, 1, key="order-1")
    send(instance, 2)  # no key: nothing remembered
    assert instance.sent_for_key("order-1") == "MSG00000001"
    assert instance.sent_for_key("order-2") is None
    assert instance.sent_for_key(None) is None
    assert instance.sent_for_key("") is None
    assert instance.idempotency == {"order-1": ["MSG00000001", None]}


def test_idempotency_memory_is_bounded_and_evicts_the_oldest() -> None:
    instance = connected_instance()
    extra = 7
    for n in range(IDEMPOTENCY_MEMORY + extra):
        send(instance, n, key=f"k{n}")

    assert len(instance.idempotency) == IDEMPOTENCY_MEMORY
    for n in range(extra):
        assert instance.sent_for_key(f"k{n}") is None, f"k{n} should have been evicted"
    assert instance.sent_for_key(f"k{extra}") == f"MSG{extra:08d}"
    last = IDEMPOTENCY_MEMORY + extra - 1
    assert instance.sent_for_key(f"k{last}") == f"MSG{last:08d}"
    # Oldest first, so the next eviction takes the oldest survivor.
    assert next(iter(instance.idempotency)) == f"k{extra}"
    assert list(instance.idempotency)[-1] == f"k{last}"


def test_idempotency_bound_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instance_module, "IDEMPOTENCY_MEMORY", 3)
    instance = connected_instance()
    for n in range(5):
        send(instance, n, key=f"k{n}")
    assert list(instance.idempotency) == ["k2", "k3", "k4"]


# -- users --------------------------------------------------------------------------


def test_user_id_derives_from_the_lowercased_email() -> None:
    assert User.create_id("Alice@Example.COM") == uuid5(USER_NAMESPACE, "alice@example.com")
    assert User.create_id("  alice@example.com ") == User.create_id("ALICE@EXAMPLE.COM")
    assert User.create_id("alice@example.com") != User.create_id("bob@example.com")
    assert user_id_for("Alice@Example.com") == User.create_id("alice@example.com")

    user = new_user("Alice@Example.com")
    assert user.id == User.create_id("alice@example.com")
    # A second registration of the same address gets the same id (and collides in the store).
    assert new_user("ALICE@example.com").id == user.id


def test_user_commands_and_deactivation() -> None:
    user = new_user()
    user.check_active()
    user.change_password("pw-2")
    user.rotate_api_key("key-2", "sealed-2")
    user.update_profile("Al", "L")
    user.change_role("admin")
    assert (user.password_hash, user.api_key_hash, user.api_key_sealed) == (
        "pw-2",
        "key-2",
        "sealed-2",
    )
    assert (user.first_name, user.last_name, user.role) == ("Al", "L", "admin")

    user.deactivate()
    assert user.active is False
    with pytest.raises(UserDeactivated):
        user.check_active()


# -- reconstruction -----------------------------------------------------------------


def test_replaying_an_instance_gives_the_same_state() -> None:
    instance = new_instance()
    instance.receive_qr("qr")
    instance.open_connection("15550001111", "Shop")
    for n in range(5):
        send(instance, n, key=f"k{n}")
    instance.record_received(
        message_id="IN1",
        sender="15550003333@s.whatsapp.net",
        push_name="Carol",
        message_type="text",
        body="hello",
        media=None,
        received_at=1_700_000_100,
    )
    instance.record_status("MSG00000001", "read", "15550002222@s.whatsapp.net", from_me=True)
    instance.sync_contacts([{"jid": "15550003333@s.whatsapp.net", "name": "Carol"}])
    instance.update({"name": "Renamed", "webhook": {"url": "http://other"}})
    instance.close_connection("lost", will_reconnect=False)
    events = instance.collect_events()

    copy = replay(events)
    assert isinstance(copy, Instance)
    assert copy is not instance
    assert state(copy) == state(instance)
    assert copy.version == len(events) == instance.version
    assert list(copy.idempotency) == list(instance.idempotency)

    # Replaying a prefix gives the state at that version.
    earlier = replay(events[:3])
    assert earlier.status == "connected" and earlier.version == 3
    assert earlier.idempotency == {}


def test_replaying_a_user_gives_the_same_state() -> None:
    user = new_user()
    user.rotate_api_key("key-2", "sealed-2")
    user.deactivate()
    events = user.collect_events()
    copy = replay(events)
    assert isinstance(copy, User)
    assert state(copy) == state(user)
    assert copy.active is False


def test_replay_evicts_idempotency_keys_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instance_module, "IDEMPOTENCY_MEMORY", 4)
    instance = connected_instance()
    for n in range(10):
        send(instance, n, key=f"k{n}")
    copy = replay(instance.collect_events())
    assert list(copy.idempotency) == list(instance.idempotency) == ["k6", "k7", "k8", "k9"]


def test_a_snapshot_restores_the_same_state() -> None:
    instance = connected_instance()
    for n in range(20):
        send(instance, n, key=f"k{n}")
    instance.collect_events()
    snapshot = Instance.Snapshot.take(instance)
    restored = snapshot.mutate(None)
    assert state(restored) == state(instance)
    assert list(restored.idempotency) == list(instance.idempotency)


# -- snapshot size --------------------------------------------------------------------


@pytest.fixture(scope="module")
def mapper() -> Any:
    """The event store's mapper (in memory), to measure what a snapshot costs to store."""
    app = EventStore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app.mapper
    app.close()


def snapshot_size(instance: Instance, mapper: Any) -> int:
    return len(mapper.to_stored_event(Instance.Snapshot.take(instance)).state)


def test_snapshot_state_does_not_grow_with_message_count(mapper: Any) -> None:
    instance = connected_instance()
    sizes = {}
    for n in range(1000):
        send(instance, n)
        instance.record_received(
            message_id=f"IN{n}",
            sender="15550003333@s.whatsapp.net",
            push_name="Carol",
            message_type="text",
            body="a reply " * 10,
            media=None,
            received_at=1_700_000_000 + n,
        )
        instance.record_status(f"MSG{n:08d}", "read", "15550002222@s.whatsapp.net", True)
        if n + 1 in (10, 1000):
            sizes[n + 1] = snapshot_size(instance, mapper)
        instance.collect_events()
    assert instance.version > 3000
    assert abs(sizes[1000] - sizes[10]) <= 8, sizes


def test_snapshot_state_with_idempotency_keys_is_bounded(mapper: Any) -> None:
    instance = connected_instance()
    empty = snapshot_size(instance, mapper)
    sizes = {}
    for n in range(3 * IDEMPOTENCY_MEMORY):
        send(instance, n, key=f"key-{n:08d}")
        if n + 1 in (IDEMPOTENCY_MEMORY, 3 * IDEMPOTENCY_MEMORY):
            sizes[n + 1] = snapshot_size(instance, mapper)
        instance.collect_events()
    # The keys cost something, but three times the sends cost no more than the first batch.
    assert sizes[IDEMPOTENCY_MEMORY] > empty + IDEMPOTENCY_MEMORY * 10
    assert abs(sizes[3 * IDEMPOTENCY_MEMORY] - sizes[IDEMPOTENCY_MEMORY]) <= 8, sizes
