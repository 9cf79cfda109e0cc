"""The whatsmeow engine with real child processes (forked by the real fork server).

Nothing leaves this machine: a child either connects through `RefusingProxy` and fails at
once (as offline), or connects through `HangingProxy` and stays connecting, while the test pushes neonize events into it
through its test FIFO, as whatsmeow would dispatch them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.engines import whatsmeow_frames as f
from actors.engines.base import (
    Banned,
    ClientOutdated,
    Connected,
    Disconnected,
    EngineError,
    Inbound,
    MediaSaved,
    QrCode,
)
from actors.engines.whatsmeow import OutdatedMark, WhatsmeowEngine
from actors.engines.whatsmeow_child import TEST_EVENTS
from actors.engines.whatsmeow_forkserver import ChildProcess, ForkServer
from tests.server import wait_until
from tests.whatsmeow import (
    children,
    hanging_proxy,
    inject,
    inject_frame,
    jid,
    listens,
    message_event,
    refusing_proxy,
)

neonize = pytest.importorskip("neonize")


class RecordingForkServer(ForkServer):
    """The real fork server; the test also keeps every child it forked."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[ChildProcess] = []

    def spawn(self, *args: Any, **kwargs: Any) -> ChildProcess:
        child = super().spawn(*args, **kwargs)
        self.spawned.append(child)
        return child


@pytest.fixture(scope="module")
def fork_server() -> Iterator[RecordingForkServer]:
    before = os.environ.get(TEST_EVENTS)
    os.environ[TEST_EVENTS] = "1"  # the fork server and its children inherit it
    server = RecordingForkServer()
    try:
        yield server
    finally:
        server.close()
        if before is None:
            os.environ.pop(TEST_EVENTS, None)
        else:
            os.environ[TEST_EVENTS] = before


class Engine:
    """A WhatsmeowEngine and what it reported."""

    def __init__(self, root: Path, fork_server: RecordingForkServer, **options: Any) -> None:
        self.reports: list[Any] = []
        self.dir = root / "instance"
        self.fork_server = fork_server
        self.engine = WhatsmeowEngine(
            self.dir,
            root / "uploads",
            options.pop("max_file_size", 10_000_000),
            options.pop("proxy", None),
            self.reports.append,
            launcher=fork_server,
            outdated=options.pop("outdated", OutdatedMark(root / "outdated")),
            **options,
        )

    def child(self) -> int:
        """The pid of the engine's one live child, once it listens for test events."""
        pid: int = wait_until(lambda: len(children(self.dir)) == 1 and children(self.dir)[0], 20)
        wait_until(lambda: listens(self.dir, pid), 20)
        return pid

    def inject(self, event: Any, pid: int | None = None) -> None:
        inject(self.dir, pid or self.child(), event)

    def wait_for(self, kind: type, count: int = 1, timeout: float = 10) -> list[Any]:
        return wait_until(lambda: len(found := self.of(kind)) >= count and found, timeout)

    def of(self, kind: type) -> list[Any]:
        return [r for r in list(self.reports) if isinstance(r, kind)]


@pytest.fixture()
def make(tmp_path: Path, fork_server: RecordingForkServer) -> Iterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def build(**options: Any) -> Engine:
        engine = Engine(tmp_path / str(len(made)), fork_server, **options)
        made.append(engine)
        return engine

    yield build
    for engine in made:
        engine.engine.disconnect()


def connected_event() -> Any:
    from neonize.proto.Neonize_pb2 import Connected as ConnectedEv

    return ConnectedEv(status=True)


# -- children -----------------------------------------------------------------------


def test_a_forked_child_answers_and_stops_cleanly(make: Callable[..., Engine]) -> None:
    engine = make()
    answer = engine.engine.ping()
    assert answer["neonize"] == "0.5.2" and answer["pid"] != os.getpid()
    process = engine.fork_server.spawned[-1]
    engine.engine.disconnect()
    assert process.wait(10) and process.returncode == 0
    assert children(engine.dir) == []


def test_a_proxy_is_used_for_the_connection(make: Callable[..., Engine]) -> None:
    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        # neonize's connect() opens its websocket through the proxy: a SOCKS5 greeting.
        # (Setting the proxy before connect() only ever answered "client not found".)
        greeting = wait_until(lambda: proxy.greetings and proxy.greetings[0], 20)
        assert greeting[:1] == b"\x05"


def test_stopping_a_child_mid_connect_needs_no_kill(make: Callable[..., Engine]) -> None:
    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        wait_until(lambda: proxy.greetings, 20)  # neonize is blocked in connect()
        process = engine.fork_server.spawned[-1]
        engine.engine.disconnect()
        # It closed its connection and exited by itself (a kill would be -9).
        assert process.wait(10) and process.returncode == 0


def test_a_qr_pairing_that_runs_out_of_codes_ends_cleanly(make: Callable[..., Engine]) -> None:
    from actors.engines.whatsmeow_child import Injected

    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        pid = engine.child()
        process = engine.fork_server.spawned[-1]
        engine.inject("2@first-code", pid)
        assert engine.wait_for(QrCode)[0].code == "2@first-code"
        # whatsmeow qrchan.go: when the codes run out the QR channel ends with "timeout"
        # (neonize hands it to its login-status callback) and the client goes quiet.
        inject_frame(engine.dir, pid, Injected(code=-2, data=b"timeout"))
        closed = engine.wait_for(Disconnected)[0]
        assert (closed.reason, closed.will_reconnect) == ("qr_expired", False)
        assert process.wait(15) and process.returncode == 0


# -- what ends a session, and what does not --------------------------------------------


def test_a_ban_stops_the_child_and_connect_starts_a_new_one(make: Callable[..., Engine]) -> None:
    from neonize.proto.Neonize_pb2 import TemporaryBan

    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        first = engine.child()
        engine.inject(connected_event(), first)
        engine.wait_for(Connected)
        engine.inject(TemporaryBan(Code=TemporaryBan.BLOCKED_BY_USERS, Expire=60), first)
        assert engine.wait_for(Banned)[0] == Banned("BLOCKED_BY_USERS", 60)
        # whatsmeow does not reconnect after a ban: the child is stopped, not left idle.
        wait_until(lambda: children(engine.dir) == [], 20)
        # When the ban is over, connect() brings a new child (it used to be a no-op).
        engine.engine.connect()
        second = engine.child()
        assert second != first


def test_keep_alive_trouble_ends_with_the_next_connection(
    make: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neonize.proto.Neonize_pb2 import Disconnected as DisconnectedEv
    from neonize.proto.Neonize_pb2 import KeepAliveTimeout

    from actors.engines import whatsmeow

    # The socket check gives whatsmeow 10 minutes to recover by itself; here, none.
    monkeypatch.setattr(whatsmeow, "KEEPALIVE_BACKSTOP", 0.0)
    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        pid = engine.child()
        engine.inject(connected_event(), pid)
        engine.wait_for(Connected)
        assert engine.engine.healthy()
        # whatsmeow keepalive.go: failed pings dispatch KeepAliveTimeout; after 3 minutes
        # of them it reconnects by itself, and no KeepAliveRestored ever follows.
        engine.inject(KeepAliveTimeout(ErrorCount=1, LastSuccess=1), pid)
        wait_until(lambda: not engine.engine.healthy())
        engine.inject(DisconnectedEv(), pid)
        engine.inject(connected_event(), pid)
        engine.wait_for(Connected, 2)
        assert engine.engine.healthy()


def test_a_replaced_child_cannot_change_the_state(make: Callable[..., Engine]) -> None:
    """A child told to stop may still report what it saw: only the current child's reports
    change the state. The next child starts once the last one has gone (two whatsmeow
    clients on one session.db race its schema upgrade: "table whatsmeow_device already
    exists", and would hold two connections for one device)."""
    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        old = engine.child()
        os.kill(old, signal.SIGSTOP)  # it will hear of its replacement late
        engine.inject(connected_event(), old)  # queued in its FIFO meanwhile
        engine.engine.connect()  # not connected: a new child replaces it
        time.sleep(0.5)
        assert children(engine.dir) == [old]  # not while the old one lives
        os.kill(old, signal.SIGCONT)
        # The old child reports the connection as it goes; nobody listens.
        new = wait_until(lambda: [p for p in children(engine.dir) if p != old], 60)[0]
        assert old not in children(engine.dir)
        assert not engine.engine.connected and engine.of(Connected) == [], engine.reports
        engine.inject(connected_event(), new)
        engine.wait_for(Connected)
        assert engine.engine.connected


def test_retries_never_stop_and_each_gets_a_fresh_child(make: Callable[..., Engine]) -> None:
    with refusing_proxy() as proxy:
        engine = make(retry_base=0.02, proxy=proxy.url)
        spawned = len(engine.fork_server.spawned)
        engine.engine.connect()
        closed = engine.wait_for(Disconnected, 8, timeout=60)
        engine.engine.disconnect()
    # Through a proxy that closes every connection, connect() fails at once, as offline.
    # Every failure is a retry (the old cap gave up after 5), announced with its time.
    for event in closed[:8]:
        assert event.will_reconnect, event
        assert event.reason.startswith("NeonizeError"), event.reason
        assert event.retry_at is not None
    pids = [c.pid for c in engine.fork_server.spawned[spawned:]]
    assert len(pids) >= 8 and len(set(pids)) == len(pids)  # one child per attempt


def test_a_thousand_failed_attempts_still_end_in_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README promises retries for as long as the instance should be connected: no
    count of failures gives up (the old engine stopped after 5 with `reconnect_limit`)."""
    from actors.engines import whatsmeow

    monkeypatch.setattr(whatsmeow, "backoff", lambda attempt, base: 0.0)  # no waiting here

    class Unreachable:
        def spawn(self, *args: Any) -> Any:
            raise OSError("network is unreachable")

    reports: list[Any] = []
    engine = WhatsmeowEngine(
        tmp_path / "i", tmp_path / "u", 1000, None, reports.append, Unreachable()
    )
    engine.connect()
    wait_until(lambda: len(reports) >= 1000, 120)
    engine.disconnect()
    failures = reports[:1000]
    assert all(isinstance(r, Disconnected) and r.will_reconnect for r in failures), {
        r for r in failures if not (isinstance(r, Disconnected) and r.will_reconnect)
    }
    assert all(r.retry_at is not None for r in failures)


def test_backoff_doubles_up_to_a_minute_less_some_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.engines import whatsmeow

    for factor in (0.5, 1.0):  # the extremes of the jitter
        monkeypatch.setattr(whatsmeow.random, "uniform", lambda low, high, f=factor: f)
        assert [whatsmeow.backoff(n, 1.0) for n in range(1, 9)] == [
            factor * d for d in (1, 2, 4, 8, 16, 32, 60, 60)
        ]
        assert whatsmeow.backoff(1000, 1.0) == factor * 60  # however long it has been


# -- a client version WhatsApp refuses -------------------------------------------------


def test_an_outdated_client_holds_every_instance_back(
    make: Callable[..., Engine], tmp_path: Path
) -> None:
    from neonize.proto.Neonize_pb2 import ClientOutdated as ClientOutdatedEv

    mark = OutdatedMark(tmp_path / ".whatsmeow-outdated")
    with hanging_proxy() as proxy:
        first = make(proxy=proxy.url, outdated=mark)
        first.engine.connect()
        first.inject(ClientOutdatedEv())
        assert first.wait_for(ClientOutdated)[0] == ClientOutdated("neonize 0.5.2")
        wait_until(lambda: children(first.dir) == [], 20)
        assert mark.path.read_text().strip() == "0.5.2"
        # Another instance does not even start a child: no storm of refused logins.
        second = make(proxy=proxy.url, outdated=mark)
        spawned = len(second.fork_server.spawned)
        second.engine.connect()
        assert second.of(ClientOutdated) == [ClientOutdated("neonize 0.5.2")]
        assert len(second.fork_server.spawned) == spawned
        # A mark left by another neonize version is stale: it is removed, and it connects.
        mark.path.write_text("0.4.9\n")
        second.engine.connect()
        second.child()
        assert not mark.path.exists()


# -- nothing received is lost -------------------------------------------------------------


def test_a_message_is_reported_again_until_it_is_recorded(make: Callable[..., Engine]) -> None:
    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        engine.inject(message_event("keep me", sender=jid("15550007777")))
        first = engine.wait_for(Inbound)[0]
        assert (first.body, first.phone) == ("keep me", "15550007777")
        # Not acknowledged (as if the server crashed before storing it): the next child
        # reports it again, with the same spool position.
        engine.engine.disconnect()
        engine.engine.connect()
        again = engine.wait_for(Inbound, 2)[1]
        assert (again.message_id, again.spool_seq) == (first.message_id, first.spool_seq)
        assert again.ack is not None

        def recorded() -> bool:
            # Acknowledge the latest report: under load the child that made an earlier one
            # may have been replaced (a retry), and its successor reported it again.
            engine.of(Inbound)[-1].ack()
            return spooled(engine.dir) == []

        wait_until(recorded, 20)  # the spool forgets it
        reported = len(engine.of(Inbound))
        engine.engine.disconnect()
        engine.engine.connect()
        engine.child()
        time.sleep(1.0)
        assert len(engine.of(Inbound)) == reported, engine.reports


def spooled(session_dir: Path) -> list[Any]:
    """The reports a child's spool still holds (read only, as the next child would)."""
    import msgspec

    from actors.engines.frames import read_record
    from actors.engines.whatsmeow_child import Mark

    decoder = msgspec.msgpack.Decoder(f.Spooled | Mark)
    records = []
    with (session_dir / "inbound.spool").open("rb") as reader:
        while (data := read_record(reader)) is not None:
            records.append(decoder.decode(data))
    return [r for r in records if not isinstance(r, Mark)]


def test_media_arrives_first_and_its_download_follows(make: Callable[..., Engine]) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import DocumentMessage

    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url, max_file_size=1000)
        engine.engine.connect()
        pid = engine.child()
        time.sleep(2.5)  # neonize holds its Go client by now
        small = DocumentMessage(mimetype="application/pdf", fileLength=500, fileName="a.pdf")
        big = DocumentMessage(mimetype="application/pdf", fileLength=5000, fileName="b.pdf")
        engine.inject(message_event(documentMessage=small, text="", message_id="D1"), pid)
        engine.inject(message_event(documentMessage=big, text="", message_id="D2"), pid)
        inbound = engine.wait_for(Inbound, 2)
        # The message is reported at once; the download waits for the connection.
        assert [(m.message_id, m.media["status"]) for m in inbound] == [
            ("D1", "pending"),
            ("D2", "too_large"),  # the sender's claim is enough to skip, never to trust
        ]
        assert engine.of(MediaSaved) == []
        engine.inject(connected_event(), pid)
        saved = engine.wait_for(MediaSaved, timeout=30)[0]
        # Offline, whatsmeow cannot fetch it: the follow-up says so.
        assert saved.message_id == "D1" and saved.media["status"] == "failed"
        assert saved.media["error"]


# -- numbers ------------------------------------------------------------------------------


class WhatsAppLike(threading.Thread):
    """A child that answers the way whatsmeow's server round trips do: IsOnWhatsApp gives
    the canonical JID (a Brazilian mobile is registered without its extra 9), and sends
    are acknowledged. It stands in for WhatsApp, not for our child's code."""

    def __init__(self, process: Any, registered: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.registered = registered
        self.asked: list[list[str]] = []
        self.sent: list[str] = []
        self.logged_out = 0

    def run(self) -> None:
        from actors.engines.frames import Channel

        channel: Channel[f.Command] = Channel(
            self.process.theirs_r, self.process.theirs_w, f.Command
        )
        channel.send(f.Ready(pid=0, neonize="test"))
        while (command := channel.receive()) is not None:
            if isinstance(command, f.Connect):
                channel.send(f.Connected(phone="15550001111"))
            elif isinstance(command, f.Resolve):
                self.asked.append(command.phones)
                channel.send(
                    f.Reply(
                        re=command.id,
                        ok=True,
                        result=[
                            {
                                "query": p,
                                "jid": self.registered.get(p),
                                "exists": p in self.registered,
                            }
                            for p in command.phones
                        ],
                    )
                )
            elif isinstance(command, f.SendText):
                self.sent.append(command.to)
                channel.send(
                    f.Reply(
                        re=command.id, ok=True, result={"id": "M1", "timestamp": 1, "type": "text"}
                    )
                )
            elif isinstance(command, f.Logout):  # whatsmeow: the device is unlinked
                self.logged_out += 1
                channel.send(f.Reply(re=command.id, ok=True, result=None))
            elif isinstance(command, f.Stop):
                return


class SocketChild:
    """A child process stand-in over a socketpair (see WhatsAppLike)."""

    def __init__(self) -> None:
        import socket

        from actors.engines.frames import Channel

        ours, theirs = socket.socketpair()
        self.pid = 0
        self.channel: Channel[f.Report] = Channel(
            ours.makefile("rb"), ours.makefile("wb"), f.Report
        )
        self.theirs_r, self.theirs_w = theirs.makefile("rb"), theirs.makefile("wb")
        self._socks = (ours, theirs)
        self.closed = False

    def wait(self, timeout: float | None = None) -> bool:
        return True

    def poll(self) -> int | None:
        return 0 if self.closed else None

    def kill(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        for sock in self._socks:
            sock.close()


def test_numbers_are_resolved_before_the_first_send(tmp_path: Path) -> None:
    process = SocketChild()
    whatsapp = WhatsAppLike(process, {"5511987654321": "551187654321@s.whatsapp.net"})
    whatsapp.start()

    class Launcher:
        def spawn(self, *args: Any) -> SocketChild:
            return process

    reports: list[Any] = []
    engine = WhatsmeowEngine(tmp_path / "i", tmp_path / "u", 1000, None, reports.append, Launcher())
    engine.connect()
    wait_until(lambda: engine.connected)
    sent = engine.send_text("5511987654321@s.whatsapp.net", "oi")
    assert sent.chat == "551187654321@s.whatsapp.net"  # where it really went
    engine.send_text("5511987654321@s.whatsapp.net", "de novo")
    assert whatsapp.asked == [["5511987654321"]]  # asked once, then remembered
    assert whatsapp.sent == ["551187654321@s.whatsapp.net"] * 2
    with pytest.raises(EngineError) as refused:
        engine.send_text("15559990000@s.whatsapp.net", "hello?")
    assert (refused.value.code, refused.value.status) == ("not_on_whatsapp", 404)
    assert engine.check("15559990000") is False and whatsapp.asked[-1] == ["15559990000"]
    assert len(whatsapp.sent) == 2  # nothing went to a number without WhatsApp
    # Groups and LIDs are addressed as they are.
    engine.send_text("120363000000000001@g.us", "group")
    assert whatsapp.sent[-1] == "120363000000000001@g.us"
    engine.disconnect()


def test_the_child_asks_whatsmeow_with_a_plus(tmp_path: Path) -> None:
    import io

    from neonize.client import NewClient
    from neonize.proto.Neonize_pb2 import IsOnWhatsAppResponse

    from actors.engines.frames import Channel
    from actors.engines.whatsmeow_child import Child

    asked: list[tuple[str, ...]] = []

    class Client(NewClient):  # type: ignore[misc]
        def is_on_whatsapp(self, *numbers: str) -> list[Any]:
            asked.append(numbers)
            return [
                IsOnWhatsAppResponse(Query=n, JID=jid(n.lstrip("+")), IsIn=True) for n in numbers
            ]

    client = Client(str(tmp_path / "s.db"), uuid="plus-test")
    child = Child(
        Channel(io.BytesIO(), io.BytesIO(), f.Command), tmp_path, tmp_path / "u", 10, client
    )
    child._connection = threading.current_thread()  # as if connected
    child._go_client.set()
    answer = child.op_Resolve(f.Resolve(id=1, phones=["5511987654321"]))
    # whatsmeow user.go, IsOnWhatsApp: numbers "in international format, including the +".
    assert asked == [("+5511987654321",)]
    assert answer == [
        {"query": "5511987654321", "jid": "5511987654321@s.whatsapp.net", "exists": True}
    ]
    child.spool.close()


def fake_engine(tmp_path: Path, child: SocketChild, reports: Any) -> WhatsmeowEngine:
    class Launcher:
        def spawn(self, *args: Any) -> SocketChild:
            return child

    return WhatsmeowEngine(tmp_path / "i", tmp_path / "u", 1000, None, reports, Launcher())


@pytest.mark.parametrize("ending", ["logout", "forget"])
def test_a_paired_device_is_unlinked_even_when_not_connected(tmp_path: Path, ending: str) -> None:
    """Logging out and deleting both tell WhatsApp to unlink the device; an instance that is
    not connected at that moment (stopped, between attempts) connects first to do so."""
    worlds: list[WhatsAppLike] = []

    class Launcher:
        def spawn(self, *args: Any) -> SocketChild:
            process = SocketChild()
            worlds.append(WhatsAppLike(process, {}))
            worlds[-1].start()
            return process

    reports: list[Any] = []
    engine = WhatsmeowEngine(tmp_path / "i", tmp_path / "u", 1000, None, reports.append, Launcher())
    engine.connect()
    wait_until(lambda: engine.connected)
    engine.disconnect()  # not connected now, with the session kept
    assert not engine.connected and len(worlds) == 1
    if ending == "logout":
        assert engine.logout() is True
    else:
        engine.forget()
        assert not (tmp_path / "i").exists()
    assert len(worlds) == 2 and worlds[1].logged_out == 1  # a new child connected and unlinked
    assert worlds[0].logged_out == 0
    # Once unlinked there is nothing left to unlink.
    assert engine.logout() is None and len(worlds) == 2


def test_a_qr_pairing_ends_soon_after_its_last_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actors.engines import whatsmeow
    from actors.engines.frames import Channel

    monkeypatch.setattr(whatsmeow, "QR_GRACE", 0.2)
    child = SocketChild()
    reports: list[Any] = []
    engine = fake_engine(tmp_path, child, reports.append)
    engine.connect()
    theirs: Channel[f.Command] = Channel(child.theirs_r, child.theirs_w, f.Command)
    assert isinstance(theirs.receive(), f.Connect)
    # The codes say how long they live (whatsmeow: 60 s, then 20 s); when no new code
    # comes after the last one's lifetime, the pairing is over.
    theirs.send(f.Qr(code="2@one", lifetime=0.3))
    theirs.send(f.Qr(code="2@two", lifetime=0.3))
    wait_until(lambda: [r for r in reports if isinstance(r, Disconnected)], 10)
    assert [type(r).__name__ for r in reports] == ["QrCode", "QrCode", "Disconnected"]
    assert reports[-1] == Disconnected("qr_expired", will_reconnect=False)
    assert isinstance(theirs.receive(), f.Stop)  # the child is told to go, not left spinning


def test_a_report_to_a_restarting_instance_does_not_stop_the_engine(tmp_path: Path) -> None:
    import pykka

    from actors.engines.frames import Channel

    child = SocketChild()
    reports: list[Any] = []

    def emit(report: Any) -> None:
        if not reports:
            reports.append("dropped")
            raise pykka.ActorDeadError("the instance actor is restarting")
        reports.append(report)

    engine = fake_engine(tmp_path, child, emit)
    engine.connect()
    theirs: Channel[f.Command] = Channel(child.theirs_r, child.theirs_w, f.Command)
    theirs.receive()
    theirs.send(
        f.Message(id="M1", chat="1@s.whatsapp.net", type="text", body="lost?", timestamp=1, seq=5)
    )
    theirs.send(f.Connected(phone="15550001111"))
    # The first report found no instance (it stays in the child's spool, unacknowledged);
    # the engine kept reading.
    wait_until(lambda: any(isinstance(r, Connected) for r in reports), 10)
    assert reports[0] == "dropped"
    engine.disconnect()


def test_a_held_start_gate_serves_the_most_recent_first() -> None:
    # At start-up every actor queues its start while the gate is held; the first start
    # served must be the most recently active one, not whichever actor loaded first.
    from actors.engines.startgate import StartGate

    gate = StartGate(concurrency=1, jitter=0)
    order: list[float] = []

    def start(ticket: Any) -> None:
        order.append(ticket.priority)
        ticket.settle()

    try:
        gate.hold()
        for priority in (1.0, 3.0, 2.0):  # the order the actors happened to load in
            gate.submit(priority, start)
        time.sleep(0.2)
        assert order == [] and gate.starting == 3  # held: queued, none served
        gate.release()
        wait_until(lambda: len(order) == 3, 10)
        assert order == [3.0, 2.0, 1.0]
    finally:
        gate.close()


def test_reactions_edits_groups_and_presence_come_through_a_real_child(
    make: Callable[..., Engine],
) -> None:
    """neonize's events, pushed into a forked child, reach the engine's owner as the
    reports every engine makes; those that change data are spooled until recorded."""
    from neonize.proto.Neonize_pb2 import GroupInfo, GroupInfoEvent, GroupName, JoinedGroup
    from neonize.proto.Neonize_pb2 import Presence as PresenceEv
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        ContextInfo,
        LocationMessage,
        ProtocolMessage,
        ReactionMessage,
    )

    from actors.engines.base import GroupJoined, GroupSettings, Presence, Reaction, Revocation

    alice = jid("15550007777")
    with hanging_proxy() as proxy:
        engine = make(proxy=proxy.url)
        engine.engine.connect()
        place = LocationMessage(
            degreesLatitude=1.5,
            degreesLongitude=2.5,
            contextInfo=ContextInfo(stanzaID="3EB0Q", mentionedJID=["15550002222@s.whatsapp.net"]),
        )
        engine.inject(message_event("", sender=alice, message_id="3EB0L", locationMessage=place))
        key = MessageKey(remoteJID="15550007777@s.whatsapp.net", ID="3EB0L")
        reaction = ReactionMessage(key=key, text="👍")
        engine.inject(message_event("", sender=alice, message_id="R", reactionMessage=reaction))
        revoke = ProtocolMessage(key=key, type=ProtocolMessage.REVOKE)
        engine.inject(message_event("", sender=alice, message_id="D", protocolMessage=revoke))
        group = jid("120363000000000001", "g.us")
        info = GroupInfo(JID=group, GroupName=GroupName(Name="Team"), OwnerJID=alice)
        engine.inject(JoinedGroup(Sender=alice, GroupInfo=info))
        engine.inject(GroupInfoEvent(JID=group, Sender=alice, Name=GroupName(Name="Team 2")))
        engine.inject(PresenceEv(From=alice, Unavailable=False))
        (message,) = engine.wait_for(Inbound)
        assert (message.message_type, message.data, message.quoted_message_id) == (
            "location",
            {"location": {"latitude": 1.5, "longitude": 2.5, "name": None, "address": None}},
            "3EB0Q",
        )
        assert message.mentions == ("15550002222@s.whatsapp.net",)
        (reacted,) = engine.wait_for(Reaction)
        assert (reacted.message_id, reacted.emoji, reacted.sender) == (
            "3EB0L",
            "👍",
            "15550007777@s.whatsapp.net",
        )
        assert engine.wait_for(Revocation)[0].message_id == "3EB0L"
        joined = engine.wait_for(GroupJoined)[0]
        assert (joined.group.subject, joined.reason) == ("Team", "added")
        settings = engine.wait_for(GroupSettings)[0]
        assert (settings.changes, settings.by) == (
            {"subject": "Team 2"},
            "15550007777@s.whatsapp.net",
        )
        assert engine.wait_for(Presence)[0].state == "available"
        # Reactions, revocations and group changes stay in the child's spool until the
        # instance has recorded them (presence is not kept: nothing to lose).
        kinds = {type(frame).__name__ for frame in spooled(engine.dir)}
        assert {"Reacted", "Revoked", "GroupJoined", "GroupChanged"} <= kinds
        for report in (reacted, engine.of(Revocation)[0], joined, settings):
            assert report.ack is not None
            report.ack()
        wait_until(lambda: {"Reacted", "Revoked"}.isdisjoint(
            type(frame).__name__ for frame in spooled(engine.dir)
        ))  # fmt: skip
