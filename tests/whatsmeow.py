"""Helpers for testing the whatsmeow engine offline.

Nobody can pair a phone in a test, so the tests build neonize's own event objects (the
protobuf messages neonize's Go side encodes from whatsmeow's events, see goneonize
utils/encoder.go) and push them through neonize's real dispatch: in this process
(`push`), or into a running child process through its test FIFO (`inject`, which the
child reads when WHATSMEOW_TEST_EVENTS=1). A child that must stay alive without a
network connects through `HangingProxy`, a local listener that accepts and never answers
(so neonize's connect() blocks, as on a hanging network).
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Self

from actors.engines.frames import encode
from actors.engines.whatsmeow_child import Injected

USER, LID, GROUP = "s.whatsapp.net", "lid", "g.us"


def jid(user: str, server: str = USER, device: int = 0) -> Any:
    from neonize.proto.Neonize_pb2 import JID

    return JID(User=user, Server=server, RawAgent=0, Device=device, Integrator=0, IsEmpty=False)


def empty_jid() -> Any:
    """What neonize's encoder sends for an absent JID (EncodeJidProto always sets one)."""
    from neonize.proto.Neonize_pb2 import JID

    return JID(User="", Server="", RawAgent=0, Device=0, Integrator=0, IsEmpty=True)


def message_event(
    text: str = "hello",
    *,
    chat: Any = None,
    sender: Any = None,
    sender_alt: Any = None,
    recipient_alt: Any = None,
    from_me: bool = False,
    group: bool = False,
    message_id: str = "3EB0ABC",
    push_name: str = "Zed",
    **message: Any,
) -> Any:
    """A neonize MessageEv as whatsmeow's parseMessageSource fills it (message.go)."""
    from neonize.proto.Neonize_pb2 import Message as MessageEv
    from neonize.proto.Neonize_pb2 import MessageInfo, MessageSource
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    sender = sender or jid("15550007777")
    source = MessageSource(
        Chat=chat or sender,
        Sender=sender,
        IsFromMe=from_me,
        IsGroup=group,
        SenderAlt=sender_alt or empty_jid(),
        RecipientAlt=recipient_alt or empty_jid(),
    )
    info = MessageInfo(
        MessageSource=source, ID=message_id, Pushname=push_name, Timestamp=1_700_000_000_123
    )
    if text and not message:
        message["conversation"] = text
    return MessageEv(Info=info, Message=Message(**message))


def push(client: Any, event: Any) -> None:
    """Through neonize's own dispatch: serialized bytes, a pointer, the event code."""
    from neonize.events import EVENT_TO_INT

    data = event.SerializePartialToString()
    buffer = ctypes.create_string_buffer(data, len(data) or 1)
    client.event.execute(0, ctypes.addressof(buffer), len(data), EVENT_TO_INT[type(event)])


def inject(session_dir: Path, pid: int, event: Any) -> None:
    """Push `event` (a neonize event, or a QR code string) into the running child `pid`."""
    from neonize.events import EVENT_TO_INT

    if isinstance(event, str):
        frame = Injected(code=-1, data=event.encode())
    else:
        frame = Injected(code=EVENT_TO_INT[type(event)], data=event.SerializePartialToString())
    inject_frame(session_dir, pid, frame)


def inject_frame(session_dir: Path, pid: int, frame: Injected) -> None:
    deadline = time.monotonic() + 10
    while (descriptor := _open_fifo(session_dir, pid)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"child {pid} does not read its test FIFO")
        time.sleep(0.02)
    try:
        os.write(descriptor, encode(frame))
    finally:
        os.close(descriptor)


def listens(session_dir: Path, pid: int) -> bool:
    """Whether child `pid` reads its test FIFO (made and opened: pushing would not block)."""
    descriptor = _open_fifo(session_dir, pid)
    if descriptor is not None:
        os.close(descriptor)
    return descriptor is not None


def _open_fifo(session_dir: Path, pid: int) -> int | None:
    # Never a blocking open: it would wait forever for a child that died (or is stopped).
    try:
        return os.open(session_dir / f"events-{pid}.fifo", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # not made yet, or nobody reads it (yet, or any more)
        return None


def children(session_dir: Path) -> list[int]:
    """Live whatsmeow children of one instance (their stderr is its engine.log)."""
    log = str(session_dir / "engine.log")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "fd" / "2") == log and process_state(int(entry.name)) != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return sorted(found)


def process_state(pid: int) -> str | None:
    """The one-letter state of a process (Z: a zombie), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """Every process under `root` (zombies included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = parent_of(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found, frontier = [], [root]
    while frontier:
        current = frontier.pop()
        for pid, parent in parents.items():
            if parent == current:
                found.append(pid)
                frontier.append(pid)
    return found


def zombies(root: int) -> list[int]:
    return [pid for pid in descendants(root) if process_state(pid) == "Z"]


class HangingProxy:
    """A SOCKS5/HTTP proxy address that accepts connections and never answers; it keeps
    the first bytes each client sent (a SOCKS5 greeting starts with 0x05)."""

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self.greetings: list[bytes] = []
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self._take(connection)

    def _take(self, connection: socket.socket) -> None:
        self._held.append(connection)
        connection.settimeout(5)
        try:
            self.greetings.append(connection.recv(64))
        except OSError:
            self.greetings.append(b"")

    def close(self) -> None:
        self._server.close()
        for connection in self._held:
            connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class RefusingProxy(HangingProxy):
    """A SOCKS5 proxy address that closes every connection at once: a child's connect()
    fails straight away, as it would offline, without looking anything up on the network
    (SOCKS5 leaves the name of WhatsApp's server to the proxy)."""

    def _take(self, connection: socket.socket) -> None:
        connection.close()


hanging_proxy = HangingProxy  # (with hanging_proxy() as proxy: ...)
refusing_proxy = RefusingProxy
