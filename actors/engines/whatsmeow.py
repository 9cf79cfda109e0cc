"""The whatsmeow engine: real WhatsApp Web (multi-device) through neonize, one child each.

The instance actor talks to this object; this object talks to a child process
(`whatsmeow_child`, forked by the fork server) over frames. Each connection attempt
gets a fresh child: when neonize's connect() gives up or the child dies, the instance
is `reconnecting` (ConnectionClosed with `retry_at`) and a new child starts after a
capped, jittered backoff, for as long as the instance should be connected. whatsmeow's
own reconnects (after a dropped socket) happen inside the child and cost no attempt.

What whatsmeow treats as final ends the child and the attempts: a logout, a temporary ban
(the session check reconnects it when the ban expires), the session replaced by another
client, a QR pairing that ran out of codes, and a client version WhatsApp refuses (405),
which also holds every other instance back until neonize is upgraded (a marker file
beside the sessions, keyed by neonize's version).

Session state lives in `<session_dir>/session.db`, so a paired instance reconnects after
a server restart without a new QR code.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import shutil
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from actors.engines import whatsmeow_frames as f
from actors.engines.base import (
    NO_OPTIONS,
    Banned,
    ClientOutdated,
    Connected,
    Disconnected,
    Emit,
    Engine,
    EngineError,
    Inbound,
    LoggedOut,
    Media,
    MediaSaved,
    OutcomeUnknown,
    QrCode,
    Receipt,
    SendOptions,
    Sent,
    SentElsewhere,
    Undecryptable,
    media_id,
)
from actors.engines.capabilities import NumberCheck, Pairing
from actors.engines.frames import Channel
from actors.engines.startgate import StartGate, Ticket
from actors.engines.whatsmeow_capabilities import (
    REQUEST_TIMEOUT,
    SEND_TIMEOUT,
    WhatsmeowFeatures,
    presence,
    refusal,
    reply,
    reports,
)

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
MEDIA_SEND_TIMEOUT = 420.0
QR_GRACE = 10.0  # after a code's lifetime, before deciding that no new code is coming
STOP_TIMEOUT = 20.0  # a stopping child closes its socket, drains neonize, finishes a download
KILL_WAIT = 10.0
UNLINK_WAIT = 15.0  # logging out of an instance that is not connected: connect first
KEEPALIVE_BACKSTOP = 600.0  # whatsmeow reconnects after 3 minutes of failed keep-alives
RESOLVED_FOR, UNKNOWN_FOR = 24 * 3600.0, 600.0
RESOLVED_MEMORY = 10_000


class ChildLike(Protocol):
    pid: int
    channel: Channel[f.Report]

    def wait(self, timeout: float | None = None) -> bool: ...
    def poll(self) -> int | None: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...


class Launcher(Protocol):
    def spawn(
        self, session_dir: Path, uploads_dir: Path, max_size: int, log_path: Path
    ) -> ChildLike: ...


def backoff(attempt: int, base: float) -> float:
    """Seconds before attempt `attempt` (1, 2, ...): base x 2^(attempt-1), at most
    MAX_BACKOFF, less up to half at random (so that instances do not retry in step)."""
    return min(MAX_BACKOFF, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def neonize_version() -> str:
    try:
        return version("neonize")
    except PackageNotFoundError:
        return "unknown"


class OutdatedMark:
    """WhatsApp refused this neonize (405, client outdated): remembered beside the sessions,
    so that no instance tries again until neonize changes (or the file is removed)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def refused(self) -> str | None:
        """The refused version, if it is the one installed."""
        try:
            recorded = self.path.read_text().strip()
        except OSError:
            return None
        if recorded == neonize_version():
            return recorded
        self.path.unlink(missing_ok=True)  # upgraded since: try again
        return None

    def record(self) -> str:
        installed = neonize_version()
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(installed + "\n")
        return installed


class _Child:
    """One child process: its requests in flight, and the thread that reads its frames."""

    def __init__(self, process: ChildLike) -> None:
        self.process = process
        self.pending: dict[int, tuple[Future[Any], bool]] = {}
        self.ids = itertools.count(1)
        self.gone = False
        self.lock = threading.Lock()

    def request(self, command: Any, sending: bool) -> Future[Any]:
        future: Future[Any] = Future()
        with self.lock:
            if self.gone:
                future.set_exception(_ChildGone())
                return future
            request_id = next(self.ids)
            self.pending[request_id] = (future, sending)
        try:
            self.process.channel.send(command(request_id))
        except (OSError, ValueError):
            with self.lock:
                self.pending.pop(request_id, None)
            future.set_exception(_ChildGone())
        return future

    def answer(self, reply: f.Reply) -> None:
        with self.lock:
            entry = self.pending.pop(reply.re, None)
        if entry is None:
            return
        future = entry[0]
        if reply.ok:
            future.set_result(reply.result)
        elif reply.code == "send_outcome_unknown":
            future.set_exception(
                OutcomeUnknown(f"WhatsApp did not confirm the send: {reply.error}")
            )
        else:
            future.set_exception(refusal(reply.code, reply.error))

    def end(self) -> None:
        with self.lock:
            self.gone = True
            pending, self.pending = self.pending, {}
        for future, _ in pending.values():
            future.set_exception(_ChildGone())

    def send(self, frame: f.Frame) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.channel.send(frame)


class _ChildGone(Exception):
    """The child stopped before it answered."""


class WhatsmeowEngine(Engine, Pairing, NumberCheck, WhatsmeowFeatures):
    """An instance on WhatsApp Web, its neonize client isolated in a child process."""

    def __init__(
        self,
        session_dir: Path,
        uploads_dir: Path,
        max_file_size: int,
        proxy: str | None,
        emit: Emit,
        launcher: Launcher,
        gate: StartGate | None = None,
        priority: float = 0.0,
        retry_base: float = 1.0,
        outdated: OutdatedMark | None = None,
    ) -> None:
        self.session_dir = Path(session_dir)
        self.uploads_dir = Path(uploads_dir)
        self.max_file_size = max_file_size
        self.proxy = proxy
        self.emit = emit
        self.launcher = launcher
        self.gate = gate
        self.priority = priority
        self.retry_base = retry_base
        self.outdated = outdated or OutdatedMark(self.session_dir.parent / ".whatsmeow-outdated")
        self._lock = threading.RLock()
        self._child: _Child | None = None
        self._leaving: _Child | None = None  # the last child told to stop
        self._ticket: Ticket | None = None
        self._timer: threading.Timer | None = None
        self._wanted = False  # should a connection be up?
        self._attempt = 0
        self._qr_serial = 0
        self._keepalive_failing_since: float | None = None
        self._resolved: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._settled = threading.Condition(self._lock)
        self.connected = False
        self.pairing = False  # a QR code is showing

    def _emit(self, event: Any) -> None:
        """Report to the instance; if it is gone (restarting), what matters is still in the
        child's spool, unacknowledged, and the next child reports it again."""
        try:
            self.emit(event)
        except Exception as error:
            log.info(
                "whatsmeow %s: report %s not delivered (%s)",
                self.session_dir.name,
                type(event).__name__,
                error,
            )

    # -- the engine interface -----------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            refused = self.outdated.refused()
            if refused is not None:
                self._wanted = False
                self._emit(ClientOutdated(f"neonize {refused}"))
                return
            self._wanted = True
            self._attempt = 0
            self._cancel_timer()
            if self._child is not None and self.connected:
                return
            self._detach_child()
            self._queue_start()

    def disconnect(self) -> None:
        with self._lock:
            self._wanted = False
            self._cancel_timer()
            child = self._detach_child()
        self._finish(child)

    def logout(self) -> bool | None:
        unlinked = self._unlink()
        self.disconnect()
        self._forget_session()
        self._emit(LoggedOut("logout"))
        return unlinked

    def forget(self) -> None:
        self._unlink()
        self.disconnect()
        shutil.rmtree(self.session_dir, ignore_errors=True)

    def send_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Sent:
        jid = self._resolve(to)
        answer = self._request(
            lambda i: f.SendText(id=i, to=jid, text=text, **reply(options)), SEND_TIMEOUT, True
        )
        return Sent(answer["id"], answer["timestamp"], chat=jid, message_type=answer["type"])

    def send_media(
        self, to: str, media: Media, caption: str, options: SendOptions = NO_OPTIONS
    ) -> Sent:
        jid = self._resolve(to)
        answer = self._request(
            lambda i: f.SendMedia(
                id=i,
                to=jid,
                path=media.path,
                caption=caption,
                filename=media.filename,
                mimetype=media.mimetype,
                **reply(options),
            ),
            MEDIA_SEND_TIMEOUT,
            True,
        )
        return Sent(answer["id"], answer["timestamp"], chat=jid, message_type=answer["type"])

    def healthy(self) -> bool:
        with self._lock:
            child = self._child
            failing = self._keepalive_failing_since
        return (
            self.connected
            and child is not None
            and child.process.poll() is None
            and (failing is None or time.monotonic() - failing < KEEPALIVE_BACKSTOP)
        )

    def session_valid(self) -> bool:
        return (self.session_dir / "session.db").exists()

    # -- capabilities: Pairing, NumberCheck ----------------------------------------------

    def pairing_code(self, phone: str) -> str:
        """Pair by phone number instead of QR: the code to type on the phone."""
        if self.connected:
            raise EngineError("this instance is already paired", "already_paired")
        if not self.pairing:
            raise EngineError(
                "a pairing code can be asked for once a QR code is showing", "not_pairing"
            )
        return str(self._request(lambda i: f.PairPhone(id=i, phone=phone), REQUEST_TIMEOUT))

    def check(self, phone: str) -> bool:
        """Whether a number has WhatsApp (asked with its +, as whatsmeow requires)."""
        return self._lookup(phone) is not None

    def ping(self) -> dict[str, Any]:
        """The child's pid and neonize version (proves the library loads)."""
        with self._lock:
            if self._child is None:
                self._start_child()
        return dict(self._request(lambda i: f.Ping(id=i), REQUEST_TIMEOUT, needs_connection=False))

    # -- children -------------------------------------------------------------------

    def _queue_start(self) -> None:
        if self._ticket is not None:
            self._ticket.settle()
        if self.gate is None:
            self._ticket = Ticket(self.priority, lambda t: None)
            self._start(self._ticket)
        else:
            self._ticket = self.gate.submit(self.priority, self._start)

    def _start(self, ticket: Ticket, waited: bool = False) -> None:
        with self._lock:
            if ticket is not self._ticket or not self._wanted or self._child is not None:
                ticket.settle()
                return
            leaving = self._leaving
            if not waited and leaving is not None and leaving.process.poll() is None:
                # One child per session at a time: two whatsmeow clients on one session.db
                # race its schema upgrade ("table whatsmeow_device already exists") and
                # would hold two connections for one device.
                threading.Thread(
                    target=self._start_when_gone, args=(leaving, ticket), daemon=True
                ).start()
                return
            try:
                child = self._start_child()
            except Exception as error:
                log.error("whatsmeow child for %s did not start: %s", self.session_dir.name, error)
                ticket.settle()
                self._retry(f"engine did not start: {error}")
                return
            child.send(f.Connect(proxy=self.proxy))

    def _start_when_gone(self, leaving: _Child, ticket: Ticket) -> None:
        if not leaving.process.wait(STOP_TIMEOUT + KILL_WAIT):
            log.error("whatsmeow child %s outlived its kill", leaving.process.pid)
        self._start(ticket, waited=True)

    def _start_child(self) -> _Child:
        self.session_dir.mkdir(parents=True, exist_ok=True)
        process = self.launcher.spawn(
            self.session_dir, self.uploads_dir, self.max_file_size, self.session_dir / "engine.log"
        )
        child = _Child(process)
        self._child = child
        self.connected = self.pairing = False
        self._keepalive_failing_since = None
        threading.Thread(
            target=self._read, args=(child,), name=f"whatsmeow-{process.pid}", daemon=True
        ).start()
        return child

    def _detach_child(self) -> _Child | None:
        """Forget the current child and tell it to stop; its reader carries on until it
        exits (what it still reports about messages is kept, its state is not)."""
        child, self._child = self._child, None
        self.connected = self.pairing = False
        self._settle()
        if child is not None:
            self._leaving = child
            child.send(f.Stop())
            threading.Thread(target=self._finish, args=(child,), daemon=True).start()
        return child

    @staticmethod
    def _finish(child: _Child | None) -> None:
        """Wait for a stopping child to exit; kill it if it does not in time."""
        if child is None:
            return
        if not child.process.wait(STOP_TIMEOUT):
            log.warning("whatsmeow child %s did not stop in time; killing it", child.process.pid)
            child.process.kill()
            child.process.wait(KILL_WAIT)

    def _read(self, child: _Child) -> None:
        """Turn a child's frames into reports and replies; notice when it ends."""
        try:
            while (frame := child.process.channel.receive()) is not None:
                if isinstance(frame, f.Reply):
                    child.answer(frame)
                else:
                    self._on_frame(child, frame)
        except (OSError, ValueError) as error:
            log.warning("whatsmeow child %s: bad frame (%s)", child.process.pid, error)
            child.process.kill()
        child.end()
        child.process.wait(STOP_TIMEOUT)
        child.process.close()
        code = child.process.poll()
        with self._lock:
            if self._child is not child:
                return  # stopped on purpose
            log.warning("whatsmeow child %s exited unexpectedly (%s)", child.process.pid, code)
            self._child = None
            self.connected = self.pairing = False
            if self._wanted:
                self._retry("engine_crashed")

    # -- what a child reports --------------------------------------------------------

    def _on_frame(self, child: _Child, frame: f.Frame) -> None:
        if isinstance(frame, f.DATA):
            self._on_data(child, frame)  # from a stopping child too: nothing is dropped
            return
        with self._lock:
            if child is not self._child:
                return  # a stopped child's view of the connection is out of date
            self._on_state(child, frame)

    def _on_data(self, child: _Child, frame: Any) -> None:
        seq = frame.seq
        ack = lambda: child.send(f.Committed(seq=seq))  # noqa: E731
        if isinstance(frame, f.Message):
            media = None
            if frame.media is not None:
                media = {
                    "mimetype": frame.media.mimetype,
                    "size": frame.media.size,
                    "filename": frame.media.filename,
                    "status": frame.media.status,
                }
            if frame.from_me:
                self._emit(
                    SentElsewhere(
                        message_id=frame.id,
                        to=frame.chat,
                        message_type=frame.type,
                        body=frame.body,
                        media=media,
                        timestamp=frame.timestamp,
                        origin=frame.origin or "phone",
                        spool_seq=seq,
                        ack=ack,
                    )
                )
            else:
                self._emit(
                    Inbound(
                        message_id=frame.id,
                        # In a group the participant wrote it and the group is the chat.
                        sender=frame.participant or frame.chat,
                        push_name=frame.push_name,
                        message_type=frame.type,
                        body=frame.body,
                        media=media,
                        timestamp=frame.timestamp,
                        chat=frame.chat if frame.participant else None,
                        quoted_message_id=frame.quoted,
                        mentions=tuple(frame.mentions),
                        data=frame.data,
                        phone=frame.phone,
                        lid=frame.lid,
                        spool_seq=seq,
                        ack=ack,
                    )
                )
        elif isinstance(frame, f.Receipt):
            last = len(frame.ids) - 1
            for n, message_id in enumerate(frame.ids):
                self._emit(
                    Receipt(
                        message_id,
                        frame.status,
                        frame.chat,
                        participant=frame.participant,
                        phone=frame.phone,
                        lid=frame.lid,
                        spool_seq=seq if n == last else None,
                        ack=ack if n == last else None,
                    )
                )
        elif isinstance(frame, f.Undecryptable):
            self._emit(
                Undecryptable(
                    message_id=frame.id,
                    sender=frame.chat,
                    participant=frame.participant,
                    phone=frame.phone,
                    lid=frame.lid,
                    unavailable=frame.unavailable,
                    timestamp=frame.timestamp,
                    spool_seq=seq,
                    ack=ack,
                )
            )
        elif isinstance(frame, f.MediaResult):
            media = {"status": frame.status, "size": frame.size}
            if frame.path is not None:
                media["id"] = media_id(frame.path)  # events name files by id, never by path
            if frame.mimetype is not None:
                media["mimetype"] = frame.mimetype
            if frame.error is not None:
                media["error"] = frame.error
            self._emit(MediaSaved(frame.id, media, spool_seq=seq, ack=ack))
        else:
            for report in reports(frame, ack) or ():
                self._emit(report)

    def _on_state(self, child: _Child, frame: f.Frame) -> None:
        """A report about the connection from the current child (the lock is held)."""
        match frame:
            case f.Qr(code=code, lifetime=lifetime):
                self.pairing = True
                self._settle()
                self._emit(QrCode(code))
                self._watch_qr(child, lifetime)
            case f.QrEnded(reason=reason):
                if not self.connected:
                    gone = "qr_expired" if reason == "timeout" else f"pairing ended: {reason}"
                    self._end(Disconnected(gone, will_reconnect=False))
            case f.Paired(phone=phone):
                log.info("whatsmeow %s paired as %s", self.session_dir.name, phone)
            case f.PairFailed(error=error):
                self._end(Disconnected(f"pairing failed: {error}", will_reconnect=False))
            case f.Connected(phone=phone, push_name=push_name, lid=lid):
                self.connected, self.pairing = True, False
                with contextlib.suppress(OSError):
                    self._paired_mark.write_text((phone or "") + "\n")
                self._attempt = 0
                self._keepalive_failing_since = None
                self._cancel_timer()
                self._settle()
                self._emit(Connected(phone, push_name, lid=lid))
            case f.Disconnected():
                # whatsmeow reconnects by itself (client.go: autoReconnect).
                self.connected = False
                self._emit(Disconnected("connection_lost", will_reconnect=True))
            case f.ConnectFailure(reason=reason, message=message):
                self._retry(f"connect_failure: {message or reason}")
            case f.ClientOutdated():
                refused = self.outdated.record()
                log.error(
                    "WhatsApp refuses neonize %s (405, client outdated): no whatsmeow instance "
                    "connects until it is upgraded (pip install -U neonize) and the server restarted",
                    refused,
                )
                self._end(ClientOutdated(f"neonize {refused}"))
            case f.StreamReplaced():
                self._end(Disconnected("stream_replaced", will_reconnect=False))
            case f.LoggedOut(reason=reason):
                self._forget_session()
                self._end(LoggedOut(f"logged_out: {reason}"))
            case f.TemporaryBan(code=code, expire=expire):
                self._end(Banned(code, expire))
            case f.StreamError(code=code):
                log.warning("whatsmeow %s: stream error %s", self.session_dir.name, code)
            case f.KeepAlive(ok=ok):
                if ok:
                    self._keepalive_failing_since = None
                elif self._keepalive_failing_since is None:
                    self._keepalive_failing_since = time.monotonic()
            case f.SessionEnded(error=error):
                self.connected = self.pairing = False
                if self._wanted:
                    self._retry(error or "connection ended")
            case f.Seen():
                self._emit(presence(frame))
            case f.Ready():
                pass

    def _end(self, event: Any) -> None:
        """Something whatsmeow treats as final: stop the child and say why."""
        self._wanted = False
        self._cancel_timer()
        self._detach_child()
        self._emit(event)

    def _retry(self, reason: str) -> None:
        """Report the loss and try again with a fresh child after a capped, jittered backoff."""
        self._detach_child()
        self._cancel_timer()
        if not self._wanted:
            return
        self._attempt += 1
        delay = backoff(self._attempt, self.retry_base)
        self._emit(Disconnected(reason, will_reconnect=True, retry_at=time.time() + delay))
        self._timer = threading.Timer(delay, self._after_backoff)
        self._timer.daemon = True
        self._timer.start()

    def _after_backoff(self) -> None:
        with self._lock:
            if self._wanted and self._child is None:
                self._queue_start()

    def _settle(self) -> None:
        if self._ticket is not None:
            self._ticket.settle()
        self._settled.notify_all()

    def _watch_qr(self, child: _Child, lifetime: float) -> None:
        """When the codes run out whatsmeow goes quiet: end the pairing a little after the
        last code's lifetime if no new code came."""
        self._qr_serial += 1
        serial = self._qr_serial

        def expire() -> None:
            with self._lock:
                if self._child is child and serial == self._qr_serial and not self.connected:
                    self._end(Disconnected("qr_expired", will_reconnect=False))

        self._cancel_timer()
        self._timer = threading.Timer(lifetime + QR_GRACE, expire)
        self._timer.daemon = True
        self._timer.start()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- requests ------------------------------------------------------------------

    def _request(
        self, command: Any, timeout: float, sending: bool = False, needs_connection: bool = True
    ) -> Any:
        with self._lock:
            child = self._child
            up = self.connected if sending else self.connected or self.pairing
            if child is None or (needs_connection and not up):
                raise EngineError("the WhatsApp connection is not open", "instance_not_connected")
        future = child.request(command, sending)
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            if sending:
                raise OutcomeUnknown(f"WhatsApp did not answer the send in {timeout:g} s") from None
            raise EngineError(
                f"the WhatsApp engine did not answer in {timeout:g} s", "engine_timeout", 503
            ) from None
        except _ChildGone:
            if sending:
                raise OutcomeUnknown("the WhatsApp engine stopped during the send") from None
            raise EngineError("the WhatsApp engine stopped", "engine_crashed", 503) from None

    def _resolve(self, to: str) -> str:
        """The JID to send to: a phone number is looked up first (cached), as whatsmeow
        acknowledges sends to numbers without WhatsApp that then never arrive."""
        user, _, server = to.partition("@")
        if server not in ("", "s.whatsapp.net"):
            return to  # a group, a LID: addressed as they are
        jid = self._lookup(user)
        if jid is None:
            raise EngineError(f"+{user} is not on WhatsApp", "not_on_whatsapp", 404)
        return jid

    def _lookup(self, phone: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            cached = self._resolved.get(phone)
            if cached is not None and cached[1] > now:
                self._resolved.move_to_end(phone)
                return cached[0]
        if not self.connected:
            raise EngineError("the WhatsApp connection is not open", "instance_not_connected")
        answers = self._request(lambda i: f.Resolve(id=i, phones=[phone]), REQUEST_TIMEOUT)
        found = next((a for a in answers if a.get("exists") and a.get("jid")), None)
        jid = found["jid"] if found else None
        with self._lock:
            self._resolved[phone] = (jid, now + (RESOLVED_FOR if jid else UNKNOWN_FOR))
            while len(self._resolved) > RESOLVED_MEMORY:
                self._resolved.popitem(last=False)
        return jid

    @property
    def _paired_mark(self) -> Path:
        """Written when a session has been seen connected: there is a device to unlink."""
        return self.session_dir / "paired"

    def _forget_session(self) -> None:
        self._paired_mark.unlink(missing_ok=True)
        (self.session_dir / "session.db").unlink(missing_ok=True)

    def _unlink(self) -> bool | None:
        """Tell WhatsApp to unlink this device (connecting first if need be): True if it
        did, False if it could not be reached, None if there was no paired session."""
        if not self._paired_mark.exists():
            return None
        leaving = self._leaving
        if leaving is not None:
            leaving.process.wait(STOP_TIMEOUT + KILL_WAIT)  # so that the start is not put off
        with self._lock:
            if self._child is None:
                self._wanted = True
                self._ticket = Ticket(self.priority, lambda t: None)
                self._start(self._ticket, waited=True)
            deadline = time.monotonic() + UNLINK_WAIT
            while not (self.connected or self.pairing) and self._child is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._settled.wait(remaining)
            if self.pairing:
                return None  # showing a QR code: nothing is linked
            if not self.connected:
                return False
        try:
            self._request(lambda i: f.Logout(id=i), REQUEST_TIMEOUT)
            return True
        except EngineError as error:
            log.warning("unlinking %s on WhatsApp failed: %s", self.session_dir.name, error)
            return False
