"""One actor per instance: it owns the engine and serialises every command.

Engine reports arrive as messages (`tell`) and become domain events; commands
arrive as proxy calls. Every command answers only after its events are durable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from uuid import UUID

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.bridge import BridgedActor
from actors.engines.base import (
    Banned,
    Connected,
    Contacts,
    Disconnected,
    Emit,
    Engine,
    EngineEvent,
    Inbound,
    LoggedOut,
    Media,
    QrCode,
    Receipt,
    Sent,
)
from actors.engines.capabilities import (
    CloudWebhookReceiver,
    NumberCheck,
    Pairing,
    SandboxControls,
)
from domain.instance import Instance

log = logging.getLogger(__name__)

EngineFactory = Callable[[Instance, Emit], Engine]


class Committer:
    """What an instance actor needs of the event store (handed down by the app)."""

    def submit(self, events: Any, snapshot: Any = None) -> Future[list[int]]: ...

    def reset(self, originator_id: Any) -> None: ...


T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A command's result, and the commit of its events (None: nothing to store).

    The actor does not wait for the commit (it goes on with its next message); the
    caller awaits `commit` before answering, so nothing is acknowledged before it
    is durable.
    """

    value: T
    commit: Future[list[int]] | None = None

    @property
    def position(self) -> int:
        """The position of the last stored event, once durable (0: nothing stored)."""
        return self.commit.result(timeout=60)[-1] if self.commit is not None else 0


@dataclass(frozen=True)
class _CommitFailed:
    error: BaseException
    epoch: int  # the actor's reload count when the failed batch was queued


class InstanceActor(BridgedActor):
    """Drives one instance's engine and records what happens as events."""

    def __init__(
        self,
        instance_id: UUID,
        load: Callable[[UUID], Instance],
        committer: Committer,
        engine_factory: EngineFactory,
        snapshot_interval: int,
        on_crash: Callable[[UUID, BaseException], None],
    ) -> None:
        super().__init__()
        self.instance_id = instance_id
        self._load = load
        self._committer = committer
        self._engine_factory = engine_factory
        self._snapshot_interval = snapshot_interval
        self._on_crash = on_crash
        self.instance: Instance
        self.engine: Engine
        self._last_commit: Future[list[int]] | None = None
        self._qr_seen_at = 0.0
        self._epoch = 0  # reloads from the store after a failed commit

    # -- lifecycle ------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.instance = self._load(self.instance_id)
            self.engine = self._engine_factory(self.instance, self.actor_ref.tell)
            if not self.instance.deleted and self.instance.status not in ("logged_out", "disabled"):
                self._connect("start")
        except Exception as error:
            # pykka stops an actor whose on_start fails without calling on_failure:
            # report the crash here, or the supervisor would never restart the instance.
            log.error("instance %s did not start: %s", self.instance_id, error)
            try:
                if hasattr(self, "engine"):
                    self.engine.disconnect()
            finally:
                self._on_crash(self.instance_id, error)
            raise

    def on_stop(self) -> None:
        try:
            self.engine.disconnect()
        except Exception:
            log.exception("instance %s: engine did not disconnect cleanly", self.instance_id)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        log.error("instance %s crashed: %s", self.instance_id, exception_value)
        try:
            self.engine.disconnect()
        finally:
            self._on_crash(self.instance_id, exception_value)

    # -- engine reports -------------------------------------------------------------

    def on_receive(self, message: EngineEvent) -> None:
        """An engine report: record it as a domain event."""
        if isinstance(message, _CommitFailed):
            self._commit_failed(message)
            return
        if self.instance.deleted or self.instance.disabled:
            return  # a stopped engine's last words change nothing
        match message:
            case QrCode(code):
                self._qr_seen_at = time.monotonic()
                self.instance.receive_qr(code)
            case Connected(phone, push_name):
                self.instance.open_connection(phone, push_name)
            case Disconnected(reason, will_reconnect):
                self.instance.close_connection(reason, will_reconnect)
            case Banned(reason, expire):
                self.instance.ban(reason, int(time.time()) + expire)
            case LoggedOut(reason):
                if self.instance.status == "logged_out":
                    return  # already recorded by the logout command
                self.instance.log_out(reason)
            case Inbound() as m:
                self.instance.record_received(
                    message_id=m.message_id,
                    sender=m.sender,
                    push_name=m.push_name,
                    message_type=m.message_type,
                    body=m.body,
                    media=m.media,
                    received_at=m.timestamp,
                )
            case Receipt(message_id, status, remote_jid):
                self.instance.record_status(message_id, status, remote_jid, from_me=True)
            case Contacts(contacts):
                self.instance.sync_contacts(contacts)
            case _:
                log.warning("instance %s: unknown engine report %r", self.instance_id, message)
                return
        self._record()

    # -- commands (proxy calls) -------------------------------------------------------

    def send_text(
        self, to: str, text: str, idempotency_key: str | None, fingerprint: str | None = None
    ) -> Outcome[str]:
        """Send text to a JID; answer with the message id once MessageSent is stored.
        `fingerprint` identifies the request, so a reused idempotency key is told apart."""
        return self._send(
            to,
            (idempotency_key, fingerprint),
            lambda: self.engine.send_text(to, text),
            "text",
            text,
            None,
        )

    def send_media(
        self,
        to: str,
        media: Media,
        caption: str,
        idempotency_key: str | None,
        fingerprint: str | None = None,
    ) -> Outcome[str]:
        """Send a file we hold to a JID; answer once MessageSent is stored. A send the
        idempotency key made already answers with its message, and the file this request
        brought (used by no message) is removed."""
        return self._send(
            to,
            (idempotency_key, fingerprint),
            lambda: self.engine.send_media(to, media, caption),
            media.kind,
            caption,
            media.describe(),
            unused=media.path,
        )

    def check_send(self, idempotency_key: str | None, fingerprint: str | None) -> str | None:
        """Before a send fetches or keeps a file: the message id an earlier send with this
        key produced (IdempotencyKeyReused if it was another request), or None when a send
        can go ahead now (InstanceNotConnected if it cannot)."""
        earlier = self.instance.sent_for_key(idempotency_key, fingerprint)
        if earlier is None:
            self.instance.check_connected()
        return earlier

    def update(self, changes: dict[str, Any]) -> Outcome[tuple[int, dict[str, Any]]]:
        """Change settings (name, webhook, engine settings); the value is the webhook
        settings as of this change, with the version they are from."""
        self.instance.update(changes)
        if "name" in changes and hasattr(self.engine, "push_name"):
            self.engine.push_name = changes["name"]
        commit = self._record()
        if changes.get("engine_settings"):
            # New credentials or proxy: a new engine, connected afresh.
            self.engine.disconnect()
            self.engine = self._engine_factory(self.instance, self.actor_ref.tell)
            if not self.instance.disabled:
                commit = self._connect("settings_changed")
        return Outcome(self._webhook_delivery(), commit)

    def disable(self, reason: str) -> Outcome[tuple[int, dict[str, Any]]]:
        """Stop the engine and keep it stopped (the owner was deactivated); the value is
        the webhook settings from now on (off), with the version they are from."""
        self.instance.check_not_deleted()
        if self.instance.disabled:
            return Outcome(self._webhook_delivery())
        self.engine.disconnect()
        self.instance.disable(reason)
        return Outcome(self._webhook_delivery(), self._record())

    def enable(self) -> Outcome[tuple[int, dict[str, Any]]]:
        """Start again after `disable` (the owner was reactivated); the value as for disable."""
        self.instance.check_not_deleted()
        if not self.instance.disabled:
            return Outcome(self._webhook_delivery())
        self.instance.enable()
        commit = self._record()
        if self.instance.status != "logged_out":
            commit = self._connect("enabled")
        return Outcome(self._webhook_delivery(), commit)

    def reconnect(self) -> Outcome[None]:
        """Drop the connection, if any, and connect again."""
        self.instance.check_enabled()
        self.engine.disconnect()
        if self.instance.status == "connected":
            self.instance.close_connection("reconnect_requested", will_reconnect=True)
        return Outcome(None, self._connect("reconnect"))

    def logout(self) -> Outcome[None]:
        """Unlink the WhatsApp session."""
        self.instance.check_enabled()
        self.engine.logout()
        # The engine reports LoggedOut; record it now so the answer reflects it.
        if self.instance.status != "logged_out":
            self.instance.log_out("logout")
        return Outcome(None, self._record())

    def delete(self) -> Outcome[None]:
        """Mark the instance deleted, then forget its session; the actor then stops.

        `Deleted` is durable before a file is touched: a crash in between leaves a deleted
        instance whose files the next start removes (`remove_deleted_sessions`), never an
        instance that lives on without its pairing."""
        self.instance.check_not_deleted()
        self.engine.disconnect()
        self.instance.delete()
        commit = self._record()
        assert commit is not None
        commit.result(timeout=60)  # raises if it was not stored: then nothing is removed
        self.engine.forget()
        self.actor_ref.stop(block=False)
        return Outcome(None, commit)

    # -- what some engines can do (actors/engines/capabilities.py) ---------------------

    def pairing_code(self, phone: str) -> str:
        """A code to link the device by typing it on the phone with this number."""
        return Pairing.of(*self._live_engine()).pairing_code(phone)

    def check_number(self, phone: str) -> bool:
        """Whether a phone number has WhatsApp."""
        return NumberCheck.of(*self._live_engine()).check(phone)

    def verify_cloud_subscription(self, mode: str | None, token: str | None) -> bool:
        """Whether Meta's webhook subscription check matches this instance."""
        return CloudWebhookReceiver.of(*self._live_engine()).verify_subscription(mode, token)

    def receive_cloud_webhook(self, body: bytes, signature: str | None) -> int:
        """A signed delivery of Meta's webhook; return how many reports it made."""
        return CloudWebhookReceiver.of(*self._live_engine()).handle_webhook(body, signature)

    def sandbox_scan(self, phone: str | None) -> str:
        """Sandbox: the phone scans the QR code; return the paired number."""
        return SandboxControls.of(*self._live_engine()).scan(phone)

    def sandbox_inbound(self, sender_phone: str, text: str, push_name: str | None) -> str:
        """Sandbox: a text from an outside number arrives; return its message id."""
        return SandboxControls.of(*self._live_engine()).inbound(sender_phone, text, push_name)

    def sandbox_drop(self) -> None:
        """Sandbox: the connection drops (it comes back by itself)."""
        SandboxControls.of(*self._live_engine()).drop()

    # -- scheduled checks (proxy calls from the scheduler) --------------------------

    def expire_qr(self, max_age: float) -> bool:
        """Drop a QR code shown longer than `max_age` seconds ago without a scan."""
        if self.instance.qr_code is None or time.monotonic() - self._qr_seen_at < max_age:
            return False
        self.instance.expire_qr()
        self._record()
        return True

    def check_connection(self) -> bool:
        """A connection that says it is up but is dead is reconnected; True if it was."""
        if self.instance.deleted or self.instance.status != "connected" or self.engine.healthy():
            return False
        log.warning("instance %s: connected but dead; reconnecting", self.instance_id)
        self.engine.disconnect()
        self.instance.close_connection("dead_session", will_reconnect=True)
        self._connect("dead_session")
        return True

    def check_session(self) -> str | None:
        """An expired ban reconnects; an unusable session is marked logged out."""
        instance = self.instance
        if instance.deleted:
            return None
        if instance.status == "banned" and time.time() >= getattr(instance, "banned_until", 0):
            self._connect("ban_expired")
            return "ban_expired"
        if instance.status == "connected" and not self.engine.session_valid():
            self.engine.disconnect()
            instance.log_out("session_invalid")
            self._record()
            return "session_invalid"
        return None

    def position(self) -> int:
        """The position of the last event this actor stored (reports handled before
        this call are included, since the mailbox is processed in order)."""
        if self._last_commit is None:
            return 0
        try:
            return self._last_commit.result(timeout=30)[-1]
        except Exception:
            return 0

    def state(self) -> dict[str, Any]:
        """The live connection state."""
        return {
            "ready": self.instance.ready,
            "status": self.instance.status,
            "hasQr": self.instance.qr_code is not None,
            "qrCode": self.instance.qr_code,
        }

    # -- inside -----------------------------------------------------------------------

    def _webhook_delivery(self) -> tuple[int, dict[str, Any]]:
        return self.instance.version, self.instance.webhook_delivery()

    def _commit_failed(self, message: _CommitFailed) -> None:
        """The aggregate ran ahead of the store: carry on from what is stored.

        The reset goes into the commit queue after everything this actor queued, so none
        of that can be stored later; failures of batches queued before this reload are
        covered by it (same epoch). If only message events were lost (a full disk refuses
        sends), the engine is still what the stored aggregate says, and the actor keeps
        running: the next command is refused or stored on its own. If the connection state
        was lost too, the engine ran ahead: crash, and the supervisor restarts this actor,
        which reconnects the engine.
        """
        if message.epoch != self._epoch:
            return
        self._epoch += 1
        self._committer.reset(self.instance_id)
        running = self.state()
        self.instance = self._load(self.instance_id)
        if self.state() != running:
            raise RuntimeError(
                f"events of instance {self.instance_id} were not stored: {message.error}"
            )
        log.error(
            "instance %s: events were not stored (%s); carrying on from the stored state",
            self.instance_id,
            message.error,
        )

    def _live_engine(self) -> tuple[Engine, str]:
        """The engine and its name, for a capability's `of` (not once deleted or disabled)."""
        self.instance.check_enabled()
        return self.engine, self.instance.engine

    def _send(
        self,
        to: str,
        idempotency: tuple[str | None, str | None],
        send: Callable[[], Sent],
        kind: str,
        body: str,
        media: dict[str, Any] | None,
        unused: str | None = None,
    ) -> Outcome[str]:
        key, fingerprint = idempotency
        earlier = self.instance.sent_for_key(key, fingerprint)
        if earlier is not None:
            if unused is not None:
                Path(unused).unlink(missing_ok=True)
            return Outcome(earlier)
        self.instance.check_connected()
        sent = send()
        self.instance.record_sent(
            message_id=sent.message_id,
            to=to,
            message_type=kind,
            body=body,
            media=media,
            sent_at=sent.timestamp,
            idempotency_key=key,
            idempotency_fingerprint=fingerprint,
        )
        return Outcome(sent.message_id, self._record())

    def _connect(self, reason: str) -> Future[list[int]] | None:
        self.instance.request_connection(reason)
        commit = self._record()
        self.engine.connect()
        return commit

    def _record(self) -> Future[list[int]] | None:
        """Queue pending events for the group commit without waiting for it.

        Batches of one aggregate are stored in the order they were queued. If one
        fails, the committer refuses this aggregate's later ones and the actor is
        told, and restarts from the store (see GroupCommitter and on_receive).
        """
        before = self.instance.version - len(self.instance.pending_events)
        events = self.instance.collect_events()
        if not events:
            return None
        snapshot = None
        if before // self._snapshot_interval != self.instance.version // self._snapshot_interval:
            snapshot = Instance.Snapshot.take(self.instance)
        commit = self._committer.submit(events, snapshot)
        me, epoch = self.actor_ref, self._epoch

        def failed(done: Future[list[int]]) -> None:
            error = done.exception()
            if error is not None and me.is_alive():
                me.tell(_CommitFailed(error, epoch))

        commit.add_done_callback(failed)
        self._last_commit = commit
        return commit


class InstanceProxy(ActorMemberMixin, pykka.ActorProxy[InstanceActor]):
    """An instance actor as callers hold it: every call answers with a future (typed as
    in pykka's examples/proxy_typing.py)."""

    send_text = proxy_method(InstanceActor.send_text)
    send_media = proxy_method(InstanceActor.send_media)
    update = proxy_method(InstanceActor.update)
    reconnect = proxy_method(InstanceActor.reconnect)
    logout = proxy_method(InstanceActor.logout)
    delete = proxy_method(InstanceActor.delete)
    pairing_code = proxy_method(InstanceActor.pairing_code)
    check_number = proxy_method(InstanceActor.check_number)
    verify_cloud_subscription = proxy_method(InstanceActor.verify_cloud_subscription)
    receive_cloud_webhook = proxy_method(InstanceActor.receive_cloud_webhook)
    sandbox_scan = proxy_method(InstanceActor.sandbox_scan)
    sandbox_inbound = proxy_method(InstanceActor.sandbox_inbound)
    sandbox_drop = proxy_method(InstanceActor.sandbox_drop)
    expire_qr = proxy_method(InstanceActor.expire_qr)
    check_connection = proxy_method(InstanceActor.check_connection)
    check_session = proxy_method(InstanceActor.check_session)
    position = proxy_method(InstanceActor.position)
    state = proxy_method(InstanceActor.state)
