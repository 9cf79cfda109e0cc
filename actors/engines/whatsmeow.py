"""The whatsmeow engine: real WhatsApp Web (multi-device) through neonize, one child process each.

The instance actor talks to this object; this object talks to a child process
(`whatsmeow_child`) over msgpack frames. If the child dies (a Go panic aborts it),
the instance sees ConnectionClosed with reason `engine_crashed` and the child is
started again after a capped, jittered backoff. Connection attempts in a row are
capped too (every neonize connect leaks a SQLite handle), after which the instance
is disconnected with reason `reconnect_limit` until someone asks it to reconnect.
Session state lives in `<session_dir>/session.db`, so a paired instance reconnects
after a server restart without a new QR code.
"""

from __future__ import annotations

import itertools
import logging
import random
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from actors.engines.base import (
    Banned,
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
from actors.engines.capabilities import NumberCheck, Pairing
from actors.engines.frames import Channel

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_BACKOFF = 60.0
REQUEST_TIMEOUT = 60.0
QR_WATCHDOG = 180.0  # first code lives 60 s, then 20 s each: well past the last one


class WhatsmeowEngine(Engine, Pairing, NumberCheck):
    """An instance on WhatsApp Web, its neonize client isolated in a child process."""

    def __init__(
        self,
        session_dir: Path,
        uploads_dir: Path,
        max_file_size: int,
        proxy: str | None,
        emit: Emit,
        retry_base: float = 1.0,
    ) -> None:
        self.retry_base = retry_base
        self.session_dir = Path(session_dir)
        self.uploads_dir = Path(uploads_dir)
        self.max_file_size = max_file_size
        self.proxy = proxy
        self.emit = emit
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count(1)
        self._wanted = False  # should a connection be up?
        self._attempts = 0
        self._last_qr = 0.0
        self._timer: threading.Timer | None = None
        self.connected = False
        self._keepalive_ok = True

    # -- the engine interface -----------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            self._wanted = True
            self._attempts = 0
            self._start_child()
            self._request_async("connect", proxy=self.proxy)

    def disconnect(self) -> None:
        with self._lock:
            self._wanted = False
            self._cancel_timer()
            self._stop_child()

    def logout(self) -> None:
        with self._lock:
            if self._channel is not None and self.connected:
                try:
                    self._request("logout", timeout=20)
                except EngineError as error:
                    log.warning(
                        "logout on WhatsApp failed (%s); removing the session anyway", error
                    )
            self.disconnect()
            (self.session_dir / "session.db").unlink(missing_ok=True)
        self.emit(LoggedOut("logout"))

    def forget(self) -> None:
        self.disconnect()
        shutil.rmtree(self.session_dir, ignore_errors=True)

    def send_text(self, to: str, text: str) -> Sent:
        answer = self._request("send_text", to=to, text=text)
        return Sent(answer["id"], answer["timestamp"])

    def send_media(self, to: str, media: Media, caption: str) -> Sent:
        answer = self._request(
            "send_media",
            to=to,
            path=media.path,
            kind=media.kind,
            caption=caption,
            filename=media.filename,
            mimetype=media.mimetype,
        )
        return Sent(answer["id"], answer["timestamp"])

    def healthy(self) -> bool:
        process = self._process
        return (
            self.connected and process is not None and process.poll() is None and self._keepalive_ok
        )

    def session_valid(self) -> bool:
        return (self.session_dir / "session.db").exists()

    # -- capabilities: Pairing, NumberCheck ----------------------------------------------

    def pairing_code(self, phone: str) -> str:
        """Pair by phone number instead of QR: the code to type on the phone."""
        if self.connected:
            raise EngineError("this instance is already paired", "already_paired")
        return str(self._request("pair_phone", phone=phone, timeout=30))

    def check(self, phone: str) -> bool:
        """Whether a number has WhatsApp."""
        return bool(self._request("check", phone=phone, timeout=30))

    def ping(self) -> dict[str, Any]:
        """The child's pid and neonize version (proves the library loads)."""
        with self._lock:
            self._start_child()
        return self._request("ping", timeout=30)

    # -- the child process -------------------------------------------------------------

    def _start_child(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self.session_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "actors.engines.whatsmeow_child",
                str(self.session_dir / "session.db"),
                str(self.uploads_dir),
                str(self.max_file_size),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(self.session_dir / "engine.log").open("ab"),
        )
        assert process.stdin is not None and process.stdout is not None
        channel = Channel(process.stdout, process.stdin)
        self._process, self._channel = process, channel
        threading.Thread(
            target=self._read, args=(process, channel), daemon=True, name=f"whatsmeow-{process.pid}"
        ).start()

    def _stop_child(self) -> None:
        process, channel = self._process, self._channel
        self._process = self._channel = None
        self.connected = False
        if process is None:
            return
        try:
            if channel is not None:
                channel.send({"op": "stop"})
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            process.kill()
            process.wait()

    def _read(self, process: subprocess.Popen[bytes], channel: Channel) -> None:
        """Turn the child's frames into reports and replies; notice when it dies."""
        try:
            while (frame := channel.receive()) is not None:
                if "re" in frame:
                    future = self._pending.pop(frame["re"], None)
                    if future is not None:
                        if frame["ok"]:
                            future.set_result(frame.get("result"))
                        else:
                            future.set_exception(EngineError(frame.get("error", "engine error")))
                else:
                    self._report(frame)
        except (OSError, ValueError) as error:
            log.warning("whatsmeow child %s: bad frame (%s)", process.pid, error)
        process.wait()
        with self._lock:
            if self._process is not process:
                return  # stopped on purpose
            self._process = self._channel = None
            self.connected = False
            for future in self._pending.values():
                future.set_exception(
                    EngineError("the WhatsApp engine crashed", "engine_crashed", 503)
                )
            self._pending.clear()
            if self._wanted:
                self._retry("engine_crashed")

    def _report(self, frame: dict[str, Any]) -> None:
        kind = frame.get("ev")
        if kind == "qr":
            self._last_qr = time.monotonic()
            self.emit(QrCode(frame["code"]))
            self._watch_qr()
        elif kind in ("connected", "paired"):
            if kind == "connected":
                self.connected = True
                self._attempts = 0
                self.emit(Connected(frame.get("phone"), frame.get("push_name")))
        elif kind == "pair_failed":
            self.emit(Disconnected(f"pairing failed: {frame.get('error')}", will_reconnect=False))
        elif kind == "disconnected":
            self.connected = False
            if frame.get("will_reconnect") and self._wanted:
                self._retry(frame["reason"])
            else:
                self._wanted = False
                self.emit(Disconnected(frame["reason"], will_reconnect=False))
        elif kind == "logged_out":
            self.connected = False
            self._wanted = False
            (self.session_dir / "session.db").unlink(missing_ok=True)
            self.emit(LoggedOut(frame.get("reason", "logged_out")))
        elif kind == "banned":
            self.emit(Banned(str(frame.get("reason", "unknown")), int(frame.get("expire", 0))))
        elif kind == "inbound":
            self.emit(
                Inbound(
                    message_id=frame["id"],
                    sender=frame["sender"],
                    push_name=frame.get("push_name"),
                    message_type=frame["type"],
                    body=frame.get("body", ""),
                    media=frame.get("media"),
                    timestamp=int(frame["timestamp"]),
                )
            )
        elif kind == "keepalive":
            self._keepalive_ok = bool(frame.get("ok"))
        elif kind == "receipt":
            self.emit(Receipt(frame["id"], frame["status"], frame["chat"]))

    def _retry(self, reason: str) -> None:
        """Report the loss and reconnect after a capped, jittered backoff; after
        MAX_ATTEMPTS failures in a row, stop and say so (never go quiet)."""
        with self._lock:
            if self._attempts >= MAX_ATTEMPTS:
                self._wanted = False
                self._stop_child()
                self.emit(Disconnected("reconnect_limit", will_reconnect=False))
                return
            self._attempts += 1
            self.emit(Disconnected(reason, will_reconnect=True))
            delay = min(MAX_BACKOFF, self.retry_base * 2**self._attempts) * random.uniform(0.5, 1.0)
            self._cancel_timer()
            self._timer = threading.Timer(delay, self._reconnect)
            self._timer.daemon = True
            self._timer.start()

    def _reconnect(self) -> None:
        with self._lock:
            if not self._wanted:
                return
            self._start_child()
            self._request_async("connect", proxy=self.proxy)

    def _watch_qr(self) -> None:
        """When QR codes run out, whatsmeow goes quiet: end the pairing clearly."""

        def expire() -> None:
            with self._lock:
                if (
                    self._wanted
                    and not self.connected
                    and time.monotonic() - self._last_qr >= QR_WATCHDOG
                ):
                    self._wanted = False
                    self._stop_child()
                    self.emit(Disconnected("qr_expired", will_reconnect=False))

        with self._lock:
            self._cancel_timer()
            self._timer = threading.Timer(QR_WATCHDOG, expire)
            self._timer.daemon = True
            self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _request_async(self, op: str, **args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        channel = self._channel
        if channel is None:
            future.set_exception(
                EngineError("the WhatsApp engine is not running", "instance_not_connected")
            )
            return future
        request_id = next(self._ids)
        self._pending[request_id] = future
        try:
            channel.send({"op": op, "id": request_id, "args": args})
        except (OSError, ValueError):
            self._pending.pop(request_id, None)
            future.set_exception(
                EngineError("the WhatsApp engine is not running", "engine_crashed", 503)
            )
        return future

    def _request(self, op: str, timeout: float = REQUEST_TIMEOUT, **args: Any) -> Any:
        future = self._request_async(op, **args)
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            raise EngineError(
                f"the WhatsApp engine did not answer '{op}' in {timeout:g} s", "engine_timeout", 503
            ) from None
