"""A simulated WhatsApp network inside the server, for development, demos and tests.

Instances pair by "scanning" their QR code through the sandbox API, then message
each other by phone number: the recipient gets the message as received, the sender
gets a delivered and then a read receipt. Messages to numbers nobody in the sandbox
owns are sent but never acknowledged. The paired number is kept in
`<session_dir>/sandbox-session.json`, so a paired instance reconnects by itself
after a restart, as a real session would.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

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
from domain.phone import USER_SERVER, jid_number

RECONNECT_DELAY = 0.2


class SandboxNetwork:
    """Who is online under which number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._online: dict[str, SandboxEngine] = {}

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
        self, network: SandboxNetwork, session_dir: Path, push_name: str, emit: Emit
    ) -> None:
        self.network = network
        self.session_file = Path(session_dir) / "sandbox-session.json"
        self.push_name = push_name
        self.emit = emit
        self.phone: str | None = None
        self.qr: str | None = None
        self._lock = threading.Lock()
        self._reconnect: threading.Timer | None = None

    # -- the engine interface -----------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            self._online_or_qr()

    def _online_or_qr(self) -> None:
        session = self._load_session()
        if session is None:
            self.qr = "sandbox@" + secrets.token_urlsafe(24)
            self.emit(QrCode(self.qr))
            return
        self.network.join(session["phone"], self)
        self.phone = session["phone"]
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
            self.session_file.unlink(missing_ok=True)
        self.emit(LoggedOut("logout"))

    def forget(self) -> None:
        self.disconnect()
        shutil.rmtree(self.session_file.parent, ignore_errors=True)

    def send_text(self, to: str, text: str) -> Sent:
        return self._send(to, "text", text, None)

    def send_media(self, to: str, media: Media, caption: str) -> Sent:
        return self._send(to, media.kind, caption, media.describe())

    def healthy(self) -> bool:
        phone = self.phone
        return phone is not None and self.network.find(phone) is self

    def session_valid(self) -> bool:
        return self.session_file.exists()

    # -- what the sandbox API plays -----------------------------------------------

    def scan(self, phone: str | None) -> str:
        """The phone scans the current QR code: pair as `phone` (made up if None)."""
        with self._lock:
            if self.qr is None:
                raise EngineError("this instance is not waiting for a QR scan", "not_pairing")
            phone = phone or "1555" + "".join(secrets.choice("0123456789") for _ in range(7))
            self.network.join(phone, self)
            self.session_file.parent.mkdir(parents=True, exist_ok=True)
            self.session_file.write_text(json.dumps({"phone": phone}))
            self.phone = phone
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
        recipient = self.network.find(jid_number(to))
        if recipient is not None and recipient._deliver(
            Inbound(
                message_id=sent.message_id,
                sender=f"{sender}@{USER_SERVER}",
                push_name=self.push_name,
                message_type=kind,
                body=body,
                media=media,
                timestamp=sent.timestamp,
            )
        ):
            self.emit(Receipt(sent.message_id, "delivered", to))
            self.emit(Receipt(sent.message_id, "read", to))
        return sent

    def _deliver(self, message: Inbound) -> bool:
        if self.phone is None:
            return False
        self.emit(message)
        return True

    def _come_back(self) -> None:
        with self._lock:
            self._reconnect = None
            if self.phone is None and self.session_file.exists():
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

    def _load_session(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.session_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
