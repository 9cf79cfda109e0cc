"""Instance actors and their supervisor on the sandbox network, with a real event store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pykka
import pytest

from actors.bridge import ActorTimeout, BridgedActor, ask
from actors.engines.base import (
    NO_OPTIONS,
    Disconnected,
    Emit,
    Engine,
    EngineError,
    OutcomeUnknown,
    Receipt,
    SendOptions,
)
from actors.engines.sandbox import SandboxEngine, sandbox_engine
from actors.engines.sandbox_network import SandboxGroups, SandboxNetwork, lid_for
from actors.instance import InstanceActor, InstanceProxy, Outcome
from actors.supervisor import CrashReport, Supervisor
from app.eventstore import SNAPSHOT_INTERVAL, EventStore, GroupCommitter
from domain.instance import (
    IdempotencyKeyReused,
    Instance,
    InstanceNotConnected,
    SendOutcomeUnknown,
)
from domain.messages import MessageRef
from storage.sqlite.events import environment as sqlite_env

WAIT = 5.0
A_PHONE, B_PHONE = "15550000001", "15550000002"


def jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


def wait_until(condition: Callable[[], Any], timeout: float = WAIT) -> bool:
    """Poll `condition` until true; an actor dying (or restarting) meanwhile counts as false."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except pykka.ActorDeadError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


@dataclass
class Held:
    """A commit held back until the test fails it or passes it on to the store."""

    inner: GroupCommitter
    events: Any
    done: Future[list[int]] = field(default_factory=Future)

    def fail(self) -> None:
        self.done.set_exception(OSError("disk I/O error (injected)"))

    def store(self) -> None:
        self.done.set_result(self.inner.submit(self.events).result(timeout=WAIT))


class FlakyCommitter:
    """The group committer, except that it can be told to fail or hold the next commits
    (after a failure it refuses that aggregate's later batches until it is reset, as the
    real one does)."""

    def __init__(self, inner: GroupCommitter) -> None:
        self.inner = inner
        self._failures = 0
        self._passes = 0
        self._poisoned: set[Any] = set()
        self._holds = 0
        self.held: list[Held] = []
        self._lock = threading.Lock()

    def fail_next(self, times: int = 1, after: int = 0) -> None:
        """Fail the next `times` commits, after letting `after` of them through."""
        with self._lock:
            self._failures = times
            self._passes = after

    def hold_next(self, times: int) -> list[Held]:
        """The next `times` commits wait in the returned list (filled as they come)."""
        with self._lock:
            self._holds = times
            self.held = []
            return self.held

    def submit(self, events: Any) -> Future[list[int]]:
        owners = {e.originator_id for e in events}
        with self._lock:
            fail = bool(owners & self._poisoned)
            if not fail and self._passes:
                self._passes -= 1
            elif not fail and self._failures:
                self._failures -= 1
                fail = True
            if fail:
                self._poisoned |= owners
                failed: Future[list[int]] = Future()
                failed.set_exception(OSError("disk I/O error (injected)"))
                return failed
            if self._holds:
                self._holds -= 1
                self.held.append(Held(self.inner, events))
                return self.held[-1].done
        return self.inner.submit(events)

    def reset(self, originator_id: Any) -> None:
        with self._lock:
            self._poisoned.discard(originator_id)
        self.inner.reset(originator_id)

    def commit(self, events: Any) -> list[int]:
        return self.submit(events).result(timeout=30)


class FlakyLoad:
    """Loads instances from the store, except that it can be told to fail the next loads."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._failures = 0
        self._lock = threading.Lock()

    def fail_next(self, times: int = 1) -> None:
        with self._lock:
            self._failures = times

    def __call__(self, instance_id: UUID) -> Instance:
        with self._lock:
            if self._failures:
                self._failures -= 1
                raise OSError("database is locked (injected)")
        return self.store.repository.get(instance_id)


@dataclass
class World:
    store: EventStore
    committer: FlakyCommitter
    load: FlakyLoad
    network: SandboxNetwork
    registry: dict[UUID, pykka.ActorRef[Any]]
    supervisor: pykka.ActorRef[Any]
    root: Path

    def create(self, name: str) -> UUID:
        instance = Instance(
            user_id="user-1",
            name=name,
            description="",
            engine="sandbox",
            webhook={},
            engine_settings={},
        )
        self.committer.commit(instance.collect_events())
        self.supervisor.proxy().start_instance(instance.id).get(timeout=WAIT)
        return instance.id

    def proxy(self, instance_id: UUID) -> InstanceProxy:
        return cast(InstanceProxy, self.registry[instance_id].proxy())

    def state(self, instance_id: UUID) -> dict[str, Any]:
        return self.proxy(instance_id).state().get(timeout=WAIT)

    def pair(self, instance_id: UUID, phone: str) -> None:
        assert wait_until(lambda: self.state(instance_id)["hasQr"])
        assert self.proxy(instance_id).sandbox_scan(phone).get(timeout=WAIT) == phone
        # The Connected report was queued before this call, so it is recorded by now.
        assert self.state(instance_id)["status"] == "connected"

    def events(self, instance_id: UUID) -> list[Any]:
        return list(self.store.events.get(instance_id))

    def names(self, instance_id: UUID) -> list[str]:
        return [type(e).__name__ for e in self.events(instance_id)]

    def settled(self, instance_id: UUID) -> int:
        """The actor's last stored position, once the reports queued so far are recorded."""
        return self.proxy(instance_id).position().get(timeout=WAIT)


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[World]:
    store = EventStore(env=sqlite_env(str(tmp_path / "es.db")))
    group = GroupCommitter(store)
    committer = FlakyCommitter(group)
    load = FlakyLoad(store)
    network = SandboxNetwork(SandboxGroups(store.repository.get, group.commit))

    def engine_for(instance: Instance, emit: Emit) -> Engine:
        return sandbox_engine(network, instance, emit)

    def spawn(instance_id: UUID, on_crash: CrashReport) -> pykka.ActorRef[Any]:
        return InstanceActor.start(instance_id, load, committer, engine_for, on_crash)

    registry: dict[UUID, pykka.ActorRef[Any]] = {}
    supervisor = Supervisor.start(spawn, registry)
    try:
        yield World(store, committer, load, network, registry, supervisor, tmp_path)
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)
        group.close()
        store.close()


# -- connecting -------------------------------------------------------------------------


def test_a_new_instance_waits_for_a_scan_then_connects(world: World) -> None:
    a = world.create("A")
    assert wait_until(lambda: world.state(a)["hasQr"])
    state = world.state(a)
    assert (state["status"], state["ready"]) == ("qr", False)
    assert state["qrCode"].startswith("sandbox@")
    # The actor queues its events for the group commit; they are durable a moment later.
    assert wait_until(lambda: world.names(a) == ["Created", "ConnectionRequested", "QrReceived"])

    world.pair(a, A_PHONE)
    assert world.state(a) == {
        "ready": True,
        "status": "connected",
        "hasQr": False,
        "qrCode": None,
        "lastError": None,
        "retryAt": None,
    }
    assert wait_until(lambda: world.names(a)[-1] == "ConnectionOpened")
    assert world.events(a)[-1].phone == A_PHONE
    assert world.network.find(A_PHONE) is not None
    # The actor's answers come after its events are stored.
    assert world.settled(a) == world.store.recorder.max_notification_id()


def test_a_number_cannot_be_paired_twice(world: World) -> None:
    a, b = world.create("A"), world.create("B")
    world.pair(a, A_PHONE)
    assert wait_until(lambda: world.state(b)["hasQr"])
    with pytest.raises(Exception, match="already paired"):
        world.proxy(b).sandbox_scan(A_PHONE).get(timeout=WAIT)
    assert world.state(b)["status"] == "qr"


# -- messages ---------------------------------------------------------------------------


def test_a_text_from_a_to_b_is_received_delivered_and_read(world: World) -> None:
    a, b = world.create("A"), world.create("B")
    world.pair(a, A_PHONE)
    world.pair(b, B_PHONE)

    outcome = world.proxy(a).send_text(jid(B_PHONE), "hello B", None).get(timeout=WAIT)
    assert isinstance(outcome, Outcome)
    message_id = outcome.value
    assert message_id.startswith("SB")
    assert outcome.position > 0

    # Reports sent to the actors during the send are recorded before these answers.
    a_position = world.settled(a)
    world.settled(b)
    assert a_position > outcome.position

    a_events = world.events(a)
    sent_at = [type(e).__name__ for e in a_events].index("MessageSent")
    sent, learnt, delivered = a_events[sent_at:]
    assert (sent.message_id, sent.to, sent.body, sent.message_type) == (
        message_id,
        jid(B_PHONE),
        "hello B",
        "text",
    )
    # The network told A who B is: the number and its LID, learnt once.
    assert (sent.phone, sent.lid) == (B_PHONE, lid_for(B_PHONE))
    assert (type(learnt).__name__, learnt.phone, learnt.lid) == (
        "IdentityLearnt",
        B_PHONE,
        lid_for(B_PHONE),
    )
    assert (type(delivered).__name__, delivered.status, delivered.from_me) == (
        "MessageStatusChanged",
        "delivered",
        True,
    )

    received = [e for e in world.events(b) if type(e).__name__ == "MessageReceived"]
    assert len(received) == 1
    assert (received[0].message_id, received[0].sender, received[0].push_name) == (
        message_id,
        jid(A_PHONE),
        "A",
    )
    assert (received[0].body, received[0].phone, received[0].lid) == (
        "hello B",
        A_PHONE,
        lid_for(A_PHONE),
    )
    assert "MessageSent" not in world.names(b)

    # Read only when B marks it read, as on a phone that opens the chat.
    ref = MessageRef(message_id, jid(A_PHONE), jid(A_PHONE), False, "text", "hello B", 0.0)
    assert world.proxy(b).mark_read(jid(A_PHONE), (ref,)).get(timeout=WAIT).position > 0
    world.settled(a)
    read = world.events(a)[-1]
    assert (type(read).__name__, read.message_id, read.status) == (
        "MessageStatusChanged",
        message_id,
        "read",
    )
    assert world.names(b)[-1] == "ChatRead"


def test_a_text_to_a_stranger_is_sent_but_never_acknowledged(world: World) -> None:
    a = world.create("A")
    world.pair(a, A_PHONE)
    outcome = world.proxy(a).send_text(jid("15559999999"), "anyone?", None).get(timeout=WAIT)
    world.settled(a)
    assert world.names(a)[-1] == "MessageSent"
    assert world.events(a)[-1].message_id == outcome.value


def test_send_when_not_connected_raises_and_stores_nothing(world: World) -> None:
    a = world.create("A")
    assert wait_until(lambda: world.names(a)[-1:] == ["QrReceived"])
    before = world.names(a)
    with pytest.raises(InstanceNotConnected):
        world.proxy(a).send_text(jid(B_PHONE), "too early", None).get(timeout=WAIT)
    assert world.names(a) == before
    # A refused command does not hurt the actor.
    assert world.registry[a].is_alive()
    assert world.state(a)["status"] == "qr"


def test_the_same_idempotency_key_sends_once(world: World) -> None:
    a, b = world.create("A"), world.create("B")
    world.pair(a, A_PHONE)
    world.pair(b, B_PHONE)

    first = world.proxy(a).send_text(jid(B_PHONE), "pay 10", "order-1").get(timeout=WAIT)
    again = world.proxy(a).send_text(jid(B_PHONE), "pay 10", "order-1").get(timeout=WAIT)
    other = world.proxy(a).send_text(jid(B_PHONE), "pay 20", "order-2").get(timeout=WAIT)
    world.settled(a)
    world.settled(b)

    assert again.value == first.value
    assert again.position == 0  # nothing new was stored
    assert other.value != first.value
    sent = [e for e in world.events(a) if type(e).__name__ == "MessageSent"]
    assert [e.message_id for e in sent] == [first.value, other.value]
    received = [e for e in world.events(b) if type(e).__name__ == "MessageReceived"]
    assert [e.message_id for e in received] == [first.value, other.value]
    # The key survives a reload from the store.
    assert world.store.repository.get(a).sent_for_key("order-1") == first.value


def test_an_instance_is_snapshotted_as_its_actor_goes(world: World) -> None:
    a = world.create("A")
    world.pair(a, A_PHONE)
    proxy = world.proxy(a)
    for n in range(SNAPSHOT_INTERVAL):
        last = proxy.send_text(jid("15559999999"), f"m{n}", f"k{n}").get(timeout=WAIT)
    assert last.position > 0  # durable (the actor did not wait; the caller does)
    assert world.store.snapshots is not None
    loaded = world.store.repository.get(a)
    # A keyed send is two events (SendStarted, MessageSent): one snapshot per interval,
    # which the committer's snapshotter takes after the events are stored.
    expected = loaded.version // SNAPSHOT_INTERVAL
    assert expected >= 2
    assert wait_until(lambda: len(list(world.store.snapshots.get(a))) == expected)
    assert loaded.version == len(world.events(a))
    assert len(loaded.idempotency) == SNAPSHOT_INTERVAL


# -- crashes ---------------------------------------------------------------------------


def test_a_crashed_actor_is_restarted_by_the_supervisor(world: World) -> None:
    a, b = world.create("A"), world.create("B")
    world.pair(a, A_PHONE)
    world.pair(b, B_PHONE)
    assert wait_until(lambda: world.names(a)[-1] == "ConnectionOpened")
    stored = len(world.events(a))
    crashed = world.registry[a]

    # The store fails while the actor records a change of connection: the stored instance
    # no longer says what the engine does, so the actor crashes (and its restart reloads
    # from the store and reconnects the engine).
    world.committer.fail_next()
    crashed.tell(Disconnected("connection_lost", will_reconnect=True))

    assert wait_until(lambda: not crashed.is_alive()), "the actor did not crash"
    assert wait_until(
        lambda: world.registry.get(a) not in (None, crashed) and world.registry[a].is_alive()
    ), "the supervisor did not restart the actor"
    # The new actor starts from what is stored and reconnects its saved session.
    assert wait_until(lambda: world.state(a)["status"] == "connected")
    assert wait_until(
        lambda: world.names(a)[stored:] == ["ConnectionRequested", "ConnectionOpened"]
    )
    assert "ConnectionClosed" not in world.names(a)

    outcome = world.proxy(a).send_text(jid(B_PHONE), "still here", None).get(timeout=WAIT)
    world.settled(b)
    assert outcome.value in [
        e.message_id for e in world.events(b) if type(e).__name__ == "MessageReceived"
    ]


def test_a_restart_that_fails_to_start_is_tried_again(world: World) -> None:
    a = world.create("A")
    world.pair(a, A_PHONE)
    crashed = world.registry[a]

    # The store fails the report, the reload after it, and the restarted actor's first load.
    world.committer.fail_next()
    world.load.fail_next(2)
    crashed.tell(Receipt("SB-LOST", "read", jid(B_PHONE)))

    assert wait_until(
        lambda: (
            world.registry.get(a) not in (None, crashed)
            and world.registry[a].is_alive()
            and world.state(a)["status"] == "connected"
        )
    ), "the instance was not restarted after a failed start"


def test_an_instance_that_fails_to_start_is_restarted(world: World) -> None:
    world.load.fail_next()
    a = world.create("A")
    assert wait_until(lambda: world.registry[a].is_alive() and world.state(a)["hasQr"]), (
        "the instance was not restarted after a failed start"
    )
    assert wait_until(lambda: world.names(a) == ["Created", "ConnectionRequested", "QrReceived"])


def test_a_failed_send_leaves_the_instance_running_from_what_is_stored(world: World) -> None:
    a = world.create("A")
    world.pair(a, A_PHONE)
    assert wait_until(lambda: world.names(a)[-1] == "ConnectionOpened")
    ref = world.registry[a]
    world.committer.fail_next()
    lost = world.proxy(a).send_text(jid("15559999999"), "lost", None).get(timeout=WAIT)
    with pytest.raises(OSError, match="injected"):
        _ = lost.position  # the caller learns the send was not stored
    # The same actor carries on from the store (forgetting the unsaved send): a full disk
    # must not take the instance down with it. (A keyed send is refused before it goes out
    # when its key cannot be stored: see below.)
    retry = world.proxy(a).send_text(jid("15559999999"), "lost", None).get(timeout=WAIT)
    assert retry.position > 0 and retry.value != lost.value
    assert world.registry[a] is ref and ref.is_alive()
    assert world.state(a)["ready"]
    sent = [e for e in world.events(a) if type(e).__name__ == "MessageSent"]
    assert [e.message_id for e in sent] == [retry.value]


def test_failures_queued_before_a_reload_are_covered_by_it(world: World) -> None:
    a = world.create("A")
    world.pair(a, A_PHONE)
    assert wait_until(lambda: world.names(a)[-1] == "ConnectionOpened")
    proxy, to = world.proxy(a), jid("15559999999")
    held = world.committer.hold_next(3)
    # Two sends queued before the store answers; the first fails, the actor reloads.
    x = proxy.send_text(to, "x", None).get(timeout=WAIT)
    y = proxy.send_text(to, "y", None).get(timeout=WAIT)
    held[0].fail()
    world.state(a)  # the actor has handled the failure (its mailbox is in order)
    z = proxy.send_text(to, "z", None).get(timeout=WAIT)
    # The second send's failure arrives while the next send's commit is in flight: it was
    # queued before the reload, which already covers it. Reloading again would drop the
    # in-flight send from the aggregate and clash with it on the next one.
    held[1].fail()
    world.state(a)
    held[2].store()
    w = proxy.send_text(to, "w", None).get(timeout=WAIT)
    for lost in (x, y):
        with pytest.raises(OSError, match="injected"):
            _ = lost.position
    assert z.position > 0 and w.position > 0
    sent = [e.message_id for e in world.events(a) if type(e).__name__ == "MessageSent"]
    assert sent == [z.value, w.value]


def received(world: World, instance_id: UUID, body: str) -> int:
    return sum(
        1
        for e in world.events(instance_id)
        if type(e).__name__ == "MessageReceived" and e.body == body
    )


def test_a_keyed_send_whose_result_was_not_stored_is_never_sent_again(world: World) -> None:
    a, b = world.create("A"), world.create("B")
    world.pair(a, A_PHONE)
    world.pair(b, B_PHONE)
    ref = world.registry[a]
    # SendStarted is stored before the engine sends; the MessageSent after it is not.
    world.committer.fail_next(after=1)
    lost = world.proxy(a).send_text(jid(B_PHONE), "exactly once", "order-9").get(timeout=WAIT)
    with pytest.raises(OSError, match="injected"):
        _ = lost.position
    assert world.state(a)["ready"] and world.registry[a] is ref
    # The actor carries on from the store, which knows the key was in flight: the retry
    # learns that the outcome is unknown, and nothing is sent a second time.
    with pytest.raises(SendOutcomeUnknown) as unknown:
        world.proxy(a).send_text(jid(B_PHONE), "exactly once", "order-9").get(timeout=WAIT)
    assert unknown.value.idempotency_key == "order-9"
    world.settled(b)
    assert received(world, b, "exactly once") == 1
    assert "SendStarted" in world.names(a) and "MessageSent" not in world.names(a)


class UnansweredSandbox(SandboxEngine):
    """The network takes the message, but its answer never comes back."""

    def send_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Any:
        super().send_text(to, text, options)
        raise OutcomeUnknown("no answer from the network")


class RefusingSandbox(SandboxEngine):
    """The network refuses the first send outright (nothing goes out)."""

    refused = False

    def send_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Any:
        if not self.refused:
            self.refused = True
            raise EngineError("+15550000002 is not on WhatsApp", "not_on_whatsapp", 404)
        return super().send_text(to, text, options)


@contextmanager
def paired_actor(world: World, engine: type[SandboxEngine], phone: str) -> Iterator[Any]:
    """An instance actor on its own engine class, paired as `phone`."""
    instance = Instance(
        user_id="user-1", name="A", description="", engine="sandbox", webhook={}, engine_settings={}
    )
    world.committer.commit(instance.collect_events())
    ref = InstanceActor.start(
        instance.id,
        world.load,
        world.committer,
        lambda i, emit: engine(world.network, i.name, emit),
        lambda *_: None,
    )
    try:
        proxy = ref.proxy()
        assert wait_until(lambda: proxy.state().get(timeout=WAIT)["hasQr"])
        proxy.sandbox_scan(phone).get(timeout=WAIT)
        yield proxy
        proxy.position().get(timeout=WAIT)
    finally:
        ref.stop()


def test_a_send_without_an_answer_is_unknown_and_never_repeated(world: World) -> None:
    b = world.create("B")
    world.pair(b, B_PHONE)
    with paired_actor(world, UnansweredSandbox, A_PHONE) as a:
        for _ in range(2):
            with pytest.raises(SendOutcomeUnknown):
                a.send_text(jid(B_PHONE), "maybe", "order-10", "print-10").get(timeout=WAIT)
        # The key with another request is a client's mistake, not this send's retry.
        with pytest.raises(IdempotencyKeyReused):
            a.send_text(jid(B_PHONE), "other", "order-10", "print-11").get(timeout=WAIT)
        # Without a key each attempt is the caller's own; it is still told the truth.
        with pytest.raises(SendOutcomeUnknown) as unknown:
            a.send_text(jid(B_PHONE), "keyless", None).get(timeout=WAIT)
        assert unknown.value.idempotency_key is None
        a_id = a.instance_id.get(timeout=WAIT)
    world.settled(b)
    assert received(world, b, "maybe") == 1
    names = world.names(a_id)
    assert names.count("SendStarted") == 1
    assert names.count("SendOutcomeUnknown") == 2  # the keyed send and the keyless one
    assert "MessageSent" not in names


def test_a_send_the_engine_refuses_frees_its_key(world: World) -> None:
    b = world.create("B")
    world.pair(b, B_PHONE)
    with paired_actor(world, RefusingSandbox, A_PHONE) as a:
        with pytest.raises(EngineError, match="not on WhatsApp"):
            a.send_text(jid(B_PHONE), "second try", "order-11").get(timeout=WAIT)
        # Nothing went out, so the same key may send now.
        outcome = a.send_text(jid(B_PHONE), "second try", "order-11").get(timeout=WAIT)
        assert outcome.position > 0
        a_id = a.instance_id.get(timeout=WAIT)
    world.settled(b)
    assert received(world, b, "second try") == 1
    sends = [n for n in world.names(a_id) if n.startswith("Send") or n == "MessageSent"]
    assert sends == ["SendStarted", "SendFailed", "SendStarted", "MessageSent"]


def test_a_deleted_instance_stops_its_actor(world: World) -> None:
    a = world.create("A")
    world.pair(a, A_PHONE)
    ref = world.registry[a]
    world.proxy(a).delete().get(timeout=WAIT)
    assert wait_until(lambda: not ref.is_alive())
    assert wait_until(lambda: world.names(a)[-1] == "Deleted")
    assert world.network.find(A_PHONE) is None
    assert not (world.root / "instances" / str(a)).exists()


# -- the asyncio bridge -------------------------------------------------------------------


class Echo(BridgedActor):
    def value(self, x: Any) -> Any:
        return x

    def fail(self, message: str) -> None:
        raise ValueError(message)

    def slow(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    def blocked(self, release: threading.Event) -> bool:
        """Work until the test releases it (bounded: False if never released)."""
        return release.wait(WAIT)


@pytest.fixture()
def echo() -> Iterator[Any]:
    ref = Echo.start()
    try:
        yield ref.proxy()
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)


def test_ask_returns_the_value(echo: Any) -> None:
    assert asyncio.run(ask(echo.value({"n": 1}), timeout=2)) == {"n": 1}


def test_ask_raises_what_the_actor_raised(echo: Any) -> None:
    with pytest.raises(ValueError, match="bad input"):
        asyncio.run(ask(echo.fail("bad input"), timeout=2))
    assert asyncio.run(ask(echo.value(2), timeout=2)) == 2


def test_ask_times_out_on_a_slow_actor(echo: Any) -> None:
    release = threading.Event()

    async def scenario() -> None:
        with pytest.raises(ActorTimeout):
            await ask(echo.blocked(release), timeout=0.1)
        # The timeout came while the actor was still working (it is released only now),
        # not when it answered.
        release.set()
        # The late answer is dropped; the actor then answers the next question.
        assert await ask(echo.value("next"), timeout=WAIT) == "next"

    asyncio.run(scenario())


def test_the_event_loop_keeps_running_while_an_actor_works(echo: Any) -> None:
    release = threading.Event()

    async def scenario() -> bool:
        async def ticker() -> None:
            for _ in range(10):
                await asyncio.sleep(0.01)
            release.set()

        task = asyncio.create_task(ticker())
        # The actor works until the loop has ticked ten times: if awaiting its answer
        # blocked the loop, it would never be released (and answer False after WAIT).
        released = await ask(echo.blocked(release), timeout=2 * WAIT)
        await task
        return bool(released)

    assert asyncio.run(scenario()), "the event loop was blocked while the actor worked"


def test_an_answer_after_the_loop_closed_does_not_kill_the_actor(echo: Any) -> None:
    async def give_up() -> None:
        with pytest.raises(ActorTimeout):
            await ask(echo.slow(0.2), timeout=0.05)

    asyncio.run(give_up())  # the loop is closed before the actor answers
    assert echo.value("alive").get(timeout=2) == "alive"
    assert asyncio.run(ask(echo.value("again"), timeout=2)) == "again"


def test_ask_needs_a_bridged_actor() -> None:
    class Plain(pykka.ThreadingActor):
        def value(self) -> int:
            return 1

    ref = Plain.start()
    try:
        future = ref.proxy().value()
        with pytest.raises(TypeError):
            asyncio.run(ask(future, timeout=1))
        assert future.get(timeout=2) == 1
    finally:
        ref.stop()


def test_ask_reaches_an_instance_actor(world: World) -> None:
    a = world.create("A")

    async def scenario() -> dict[str, Any]:
        proxy = world.proxy(a)
        with pytest.raises(InstanceNotConnected):
            await ask(proxy.send_text(jid(B_PHONE), "x", None), timeout=2)
        return await ask(proxy.state(), timeout=2)

    assert asyncio.run(scenario())["status"] in ("connecting", "qr")
