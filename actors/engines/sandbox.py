"""A simulated WhatsApp network inside the server, for development, demos and tests.

Instances pair by "scanning" their QR code through the sandbox API, then message
each other by phone number: the recipient gets the message as received, the sender
gets a delivered and then a read receipt. Messages to numbers nobody in the sandbox
owns are sent but never acknowledged. The paired number is the instance's own, as its
events say (`ConnectionOpened` records it, `LoggedOut` forgets it): a paired instance
reconnects by itself after a restart, as a real session would, on whichever node runs it.

On several nodes each node's network holds the instances that node runs; a message to a
number paired on another node travels through the event store (`SandboxRelay`, wired in
by the server), and its receipts come back the same way.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Protocol

from actors.engines.base import (
    Connected,
    Disconnected,
    Emit,
    Engine,
    EngineError,
    Inbound,
    LoggedOut,
    Media,
    QrCode,
    Receipt,
    Sent,
)
from actors.engines.capabilities import SandboxControls
from domain.instance import Instance
from domain.phone import USER_SERVER, jid_number

RECONNECT_DELAY = 0.2


class Relay(Protocol):
    """Passes reports to numbers paired on other nodes (actors/engines/sandbox_relay.py)."""

    def send(self, phone: str, reports: list[Inbound | Receipt]) -> bool:
        """Pass `reports` on to the instance paired as `phone` elsewhere; False if no
        sandbox instance is paired as `phone`."""


class SandboxNetwork:
    """Who is online under which number (on this node), and the way to the others."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._online: dict[str, SandboxEngine] = {}
        self.relay: Relay | None = None  # several nodes

    def relayed(self, phone: str, reports: list[Inbound | Receipt]) -> None:
        """Reports another node passed on for `phone`: a message is delivered (and its
        receipts go back the same way), a receipt goes to the sender it is for."""
        engine = self.find(phone)
        if engine is None:
            return  # not online here (any more): like a number that is offline
        for report in reports:
            if isinstance(report, Inbound):
                if engine._deliver(report) and self.relay is not None:
                    me = f"{phone}@{USER_SERVER}"
                    self.relay.send(
                        jid_number(report.sender),
                        [
                            Receipt(report.message_id, "delivered", me),
                            Receipt(report.message_id, "read", me),
                        ],
                    )
            else:
                engine.emit(report)

    def join(self, phone: str, engine: SandboxEngine) -> None:
        with self._lock:
            holder = self._online.get(phone)
            if holder is not None and holder is not engine:
                raise EngineError(
                    f"number {phone} is already paired with another sandbox instance",
                    code="phone_in_use",
                )
            self._online[phone] = engine

    def leave(self, phone: str, engine: SandboxEngine) -> None:
        with self._lock:
            if self._online.get(phone) is engine:
                del self._online[phone]

    def find(self, phone: str) -> SandboxEngine | None:
        with self._lock:
            return self._online.get(phone)


def new_message_id() -> str:
    return "SB" + secrets.token_hex(9).upper()


class SandboxEngine(Engine, SandboxControls):
    """One instance's place in the sandbox network."""

    def __init__(
        self, network: SandboxNetwork, paired: str | None, push_name: str, emit: Emit
    ) -> None:
        """`paired`: the number the instance is paired as (its stored phone), if any."""
        self.network = network
        self.paired = paired
        self.push_name = push_name
        self.emit = emit
        self.phone: str | None = None  # online as this number
        self.qr: str | None = None
        self.unlinked = False  # the phone removed this device (see `unlink`)
        self._lock = threading.Lock()
        self._reconnect: threading.Timer | None = None

    @classmethod
    def for_instance(cls, network: SandboxNetwork, instance: Instance, emit: Emit) -> SandboxEngine:
        """The engine of a stored instance: paired as the number its events say, unless
        it logged out."""
        paired = instance.phone if instance.status != "logged_out" else None
        return cls(network, paired, instance.name, emit)

    # -- the engine interface -----------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            self._online_or_qr()

    def _online_or_qr(self) -> None:
        if self.paired is None:
            self.qr = "sandbox@" + secrets.token_urlsafe(24)
            self.emit(QrCode(self.qr))
            return
        self.network.join(self.paired, self)
        self.phone = self.paired
        self.qr = None
        self.emit(Connected(self.phone, self.push_name))

    def disconnect(self) -> None:
        with self._lock:
            self._cancel_reconnect()
            self._leave()
            self.qr = None

    def logout(self) -> None:
        with self._lock:
            self._cancel_reconnect()
            self._leave()
            self.qr = None
            self.paired = None
        self.emit(LoggedOut("logout"))

    def forget(self) -> None:
        self.disconnect()
        self.paired = None

    def send_text(self, to: str, text: str) -> Sent:
        return self._send(to, "text", text, None)

    def send_media(self, to: str, media: Media, caption: str) -> Sent:
        return self._send(to, media.kind, caption, media.describe())

    def healthy(self) -> bool:
        phone = self.phone
        return phone is not None and self.network.find(phone) is self

    def session_valid(self) -> bool:
        return not self.unlinked

    def unlink(self) -> None:
        """(Tests.) The phone removes this linked device: the session is no longer valid,
        which the session check finds and records as a logout."""
        self.unlinked = True

    # -- what the sandbox API plays -----------------------------------------------

    def scan(self, phone: str | None) -> str:
        """The phone scans the current QR code: pair as `phone` (made up if None)."""
        with self._lock:
            if self.qr is None:
                raise EngineError("this instance is not waiting for a QR scan", "not_pairing")
            phone = phone or "1555" + "".join(secrets.choice("0123456789") for _ in range(7))
            self.network.join(phone, self)
            self.paired = self.phone = phone
            self.qr = None
        self.emit(Connected(phone, self.push_name))
        return phone

    def inbound(self, sender_phone: str, text: str, push_name: str | None) -> str:
        """A message from an outside number arrives."""
        self._require_online()
        message_id = new_message_id()
        self.emit(
            Inbound(
                message_id=message_id,
                sender=f"{sender_phone}@{USER_SERVER}",
                push_name=push_name,
                message_type="text",
                body=text,
                media=None,
                timestamp=int(time.time()),
            )
        )
        return message_id

    def drop(self) -> None:
        """The connection drops; it comes back by itself shortly after."""
        with self._lock:
            self._require_online()
            self._leave()
            self._reconnect = threading.Timer(RECONNECT_DELAY, self._come_back)
            self._reconnect.daemon = True
            self._reconnect.start()
        self.emit(Disconnected("connection_lost", will_reconnect=True))

    # -- inside ---------------------------------------------------------------------

    def _send(self, to: str, kind: str, body: str, media: dict[str, Any] | None) -> Sent:
        sender = self._require_online()
        sent = Sent(new_message_id(), int(time.time()))
        message = Inbound(
            message_id=sent.message_id,
            sender=f"{sender}@{USER_SERVER}",
            push_name=self.push_name,
            message_type=kind,
            body=body,
            media=media,
            timestamp=sent.timestamp,
        )
        number = jid_number(to)
        recipient = self.network.find(number)
        if recipient is not None:
            if recipient._deliver(message):
                self.emit(Receipt(sent.message_id, "delivered", to))
                self.emit(Receipt(sent.message_id, "read", to))
        elif self.network.relay is not None:  # paired on another node, if anywhere
            self.network.relay.send(number, [message])
        return sent

    def _deliver(self, message: Inbound) -> bool:
        if self.phone is None:
            return False
        self.emit(message)
        return True

    def _come_back(self) -> None:
        with self._lock:
            self._reconnect = None
            if self.phone is None and self.paired is not None:
                self._online_or_qr()

    def _require_online(self) -> str:
        if self.phone is None:
            raise EngineError("the sandbox connection is not open", "instance_not_connected")
        return self.phone

    def _leave(self) -> None:
        if self.phone is not None:
            self.network.leave(self.phone, self)
            self.phone = None

    def _cancel_reconnect(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
            self._reconnect = None
