"""One actor per instance: it owns the engine and serialises every command.

Engine reports arrive as messages (`tell`) and become domain events; commands
arrive as proxy calls. Every command answers only after its events are durable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.bridge import BridgedActor
from actors.engines.base import (
    NO_OPTIONS,
    Ack,
    Banned,
    ClientOutdated,
    Connected,
    ContactCard,
    Disconnected,
    Emit,
    Engine,
    EngineError,
    EngineEvent,
    Identity,
    Inbound,
    Location,
    LoggedOut,
    Media,
    OutcomeUnknown,
    Poll,
    QrCode,
    Reaction,
    Receipt,
    SendOptions,
    Sent,
    Template,
)
from actors.engines.capabilities import (
    ConcurrentSends,
    ContactCards,
    Edits,
    Groups,
    IdentityLookup,
    Locations,
    MediaDownload,
    NumberCheck,
    Pairing,
    Polls,
    PresenceUpdates,
    Reactions,
    ReadReceipts,
    Replies,
    Revocations,
    SandboxControls,
    Templates,
)
from actors.reports import KnownIdentities, record
from domain.groups import Group, GroupChanges, ParticipantResult
from domain.instance import IdempotencyKeyReused, Instance, InstanceError, SendOutcomeUnknown
from domain.messages import MessageRef
from domain.phone import is_group, is_lid, jid_number

log = logging.getLogger(__name__)

RECENT_REPORTS = 10_000  # reports recorded lately, by id, to drop a retried delivery's

EngineFactory = Callable[[Instance, Emit], Engine]


class Committer(Protocol):
    """What an instance actor needs of the event store (handed down by the app)."""

    def submit(self, events: Any) -> Future[list[int]]:
        """Queue events for storing (the store takes the snapshots it needs)."""
        ...

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
    # The command goes on outside the actor (a send on the network); its outcome, once
    # the actor has recorded it, comes here (and then `value` means nothing).
    later: Future[Outcome[T]] | None = None

    @property
    def position(self) -> int:
        """The position of the last stored event, once durable (0: nothing stored)."""
        return self.commit.result(timeout=60)[-1] if self.commit is not None else 0


_CONNECTION_REPORTS = (QrCode, Connected, Disconnected, ClientOutdated, Banned)


@dataclass(frozen=True)
class _CommitFailed:
    error: BaseException
    epoch: int  # the actor's reload count when the failed batch was queued


@dataclass(frozen=True)
class _BanOver:
    """A temporary ban's time is up."""


@dataclass(frozen=True)
class _SendFinished:
    """The network answered a send the actor started (`ConcurrentSends`)."""

    started: _Started
    sent: Sent | None
    error: BaseException | None


@dataclass(frozen=True)
class _Key:
    """A send's idempotency key (None: none), the fingerprint of its request, and the file
    it brought (removed if an earlier send with the key answers instead)."""

    name: str | None
    fingerprint: str | None = None
    unused: str | None = None

    def discard(self) -> None:
        """This request sends nothing: the file it brought is not needed."""
        if self.unused is not None:
            Path(self.unused).unlink(missing_ok=True)


@dataclass(frozen=True)
class _Started:
    to: str
    kind: str
    body: str
    media: dict[str, Any] | None
    key: _Key
    outcome: Future[Outcome[str]]


class InstanceActor(BridgedActor):
    """Drives one instance's engine and records what happens as events."""

    def __init__(
        self,
        instance_id: UUID,
        load: Callable[[UUID], Instance],
        committer: Committer,
        engine_factory: EngineFactory,
        on_crash: Callable[[UUID, BaseException], None],
    ) -> None:
        super().__init__()
        self.instance_id = instance_id
        self._load = load
        self._committer = committer
        self._engine_factory = engine_factory
        self._on_crash = on_crash
        self.instance: Instance
        self.engine: Engine
        self._last_commit: Future[list[int]] | None = None
        self._qr_seen_at = 0.0
        self._ban_timer: threading.Timer | None = None
        self._recent: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._in_flight: dict[str, _Started] = {}  # sends under way, by idempotency key
        self._epoch = 0  # reloads from the store after a failed commit
        self._identities = KnownIdentities()

    # -- lifecycle ------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.instance = self._load(self.instance_id)
            self.engine = self._engine_factory(self.instance, self.actor_ref.tell)
            if self.instance.status == "banned":
                self._wait_for_ban()
            elif not self.instance.deleted and self.instance.status not in (
                "logged_out",
                "disabled",
            ):
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
        if self._ban_timer is not None:
            self._ban_timer.cancel()
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
        if isinstance(message, _BanOver):
            if self.instance.status == "banned" and time.time() >= self.instance.banned_until:
                self._connect("ban_expired")
            return
        if isinstance(message, _CommitFailed):
            self._commit_failed(message)
            return
        if isinstance(message, _SendFinished):
            self._send_finished(message)
            return
        if self.instance.deleted or self.instance.disabled:
            return  # a stopped engine's last words change nothing
        ack: Ack | None = getattr(message, "ack", None)
        if self.instance.seen(getattr(message, "spool_seq", None)):
            if ack is not None:
                ack()  # a replay of something recorded already
            return
        commit = self._record() if self._apply(message) else None
        if ack is not None:
            # The engine may forget the report once it is durable here.
            if commit is None:
                ack()
            else:
                commit.add_done_callback(lambda done: done.exception() is None and ack())

    def _apply(self, message: EngineEvent) -> bool:
        """Apply one engine report to the aggregate; False if it changes nothing."""
        instance = self.instance
        if instance.status == "logged_out" and isinstance(message, _CONNECTION_REPORTS):
            # Reports the engine made while the logout unlinked the session (it may have
            # connected to do so); only a new connection request starts another session.
            return False
        match message:
            case QrCode(code):
                self._qr_seen_at = time.monotonic()
                instance.receive_qr(code)
            case Connected(phone, push_name, details, lid):
                instance.open_connection(phone, push_name, details, lid)
            case Disconnected(reason, will_reconnect, retry_at):
                instance.close_connection(reason, will_reconnect, retry_at)
            case ClientOutdated(client_version):
                if instance.status == "outdated":
                    return False
                instance.mark_outdated(client_version)
            case Banned(reason, expire):
                instance.ban(reason, int(time.time()) + expire)
                self._wait_for_ban()
            case LoggedOut(reason):
                if instance.status == "logged_out":
                    return False  # already recorded by the logout command
                instance.log_out(reason)
            case _:
                if not record(self.instance, message, self._identities):
                    log.warning("instance %s: unknown engine report %r", self.instance_id, message)
                    return False
        return True

    def record_reports(self, reports: list[EngineEvent]) -> Outcome[int]:
        """Reports that reached the server outside the engine (Meta's webhook, verified
        and parsed by the route) recorded like the engine's own; one this actor recorded
        lately (a retried delivery) is dropped. The value is how many were recorded;
        the caller answers once they are durable."""
        self.instance.check_not_deleted()
        recorded = 0
        for report in reports:
            key = _report_key(report)
            if key is not None and key in self._recent:
                continue
            if self._apply(report):
                recorded += 1
                if key is not None:
                    self._recent[key] = None
                    while len(self._recent) > RECENT_REPORTS:
                        self._recent.popitem(last=False)
        return Outcome(recorded, self._record())

    # -- commands (proxy calls) -------------------------------------------------------

    def send_text(
        self,
        to: str,
        text: str,
        idempotency_key: str | None,
        fingerprint: str | None = None,
        options: SendOptions = NO_OPTIONS,
    ) -> Outcome[str]:
        """Send text to a JID; answer with the message id once MessageSent is stored.
        `fingerprint` identifies the request, so a reused idempotency key is told apart."""
        engine = self.engine
        key = _Key(idempotency_key, fingerprint)
        if isinstance(engine, ConcurrentSends) and not options:
            return self._start(to, key, lambda: engine.start_text(to, text), "text", text, None)
        return self._send(
            to, key, options, lambda: self.engine.send_text(to, text, options), "text", text
        )

    def send_media(
        self,
        to: str,
        media: Media,
        caption: str,
        idempotency_key: str | None,
        fingerprint: str | None = None,
        options: SendOptions = NO_OPTIONS,
    ) -> Outcome[str]:
        """Send a file we hold to a JID; answer once MessageSent is stored. A send the
        idempotency key made already answers with its message, and the file this request
        brought (used by no message) is removed."""
        engine = self.engine
        key = _Key(idempotency_key, fingerprint, unused=media.path)
        if isinstance(engine, ConcurrentSends) and not options:
            return self._start(
                to,
                key,
                lambda: engine.start_media(to, media, caption),
                media.kind,
                caption,
                media.describe(),
            )
        return self._send(
            to,
            key,
            options,
            lambda: self.engine.send_media(to, media, caption, options),
            media.kind,
            caption,
            media=media.describe(),
        )

    def send_location(
        self,
        to: str,
        location: Location,
        idempotency_key: str | None,
        options: SendOptions = NO_OPTIONS,
        fingerprint: str | None = None,
    ) -> Outcome[str]:
        """Send a location; answer once MessageSent is stored."""
        engine = Locations.of(*self._live_engine())
        return self._send(
            to,
            _Key(idempotency_key, fingerprint),
            options,
            lambda: engine.send_location(to, location, options),
            "location",
            location.name or "",
            data={"location": location.describe()},
        )

    def send_contacts(
        self,
        to: str,
        cards: tuple[ContactCard, ...],
        idempotency_key: str | None,
        options: SendOptions = NO_OPTIONS,
        fingerprint: str | None = None,
    ) -> Outcome[str]:
        """Send contact cards; answer once MessageSent is stored."""
        engine = ContactCards.of(*self._live_engine())
        return self._send(
            to,
            _Key(idempotency_key, fingerprint),
            options,
            lambda: engine.send_contacts(to, cards, options),
            "contacts",
            ", ".join(card.name for card in cards),
            data={"contacts": [card.describe() for card in cards]},
        )

    def send_poll(
        self,
        to: str,
        poll: Poll,
        idempotency_key: str | None,
        options: SendOptions = NO_OPTIONS,
        fingerprint: str | None = None,
    ) -> Outcome[str]:
        """Send a poll; answer once MessageSent is stored."""
        engine = Polls.of(*self._live_engine())
        return self._send(
            to,
            _Key(idempotency_key, fingerprint),
            options,
            lambda: engine.send_poll(to, poll, options),
            "poll",
            poll.question,
            data={"poll": poll.describe()},
        )

    def send_template(
        self,
        to: str,
        template: Template,
        idempotency_key: str | None,
        fingerprint: str | None = None,
    ) -> Outcome[str]:
        """Send a message template; answer once MessageSent is stored."""
        engine = Templates.of(*self._live_engine())
        return self._send(
            to,
            _Key(idempotency_key, fingerprint),
            NO_OPTIONS,
            lambda: engine.send_template(to, template),
            "template",
            template.name,
            data={"template": template.describe()},
        )

    # -- acting on messages already sent or received ---------------------------------

    def vote(self, poll: MessageRef, options: tuple[str, ...]) -> Outcome[str]:
        """Vote in a poll (replacing our earlier vote; no options withdraws it)."""
        engine = Polls.of(*self._live_engine())
        poll.check_vote(list(options))
        self.instance.check_connected()
        sent = engine.vote(poll, options)
        self.instance.record_vote(
            message_id=poll.message_id,
            chat=poll.chat,
            voter=None,
            from_me=True,
            options=list(options),
            voted_at=sent.timestamp,
            **self._party(poll),
        )
        return Outcome(sent.message_id, self._record())

    def react(self, message: MessageRef, emoji: str) -> Outcome[str]:
        """React to a message with an emoji ("" removes our reaction)."""
        engine = Reactions.of(*self._live_engine())
        self.instance.check_connected()
        sent = engine.react(message, emoji)
        self.instance.record_reaction(
            message_id=message.message_id,
            chat=message.chat,
            sender=None,
            from_me=True,
            emoji=emoji,
            reacted_at=sent.timestamp,
            **self._party(message),
        )
        return Outcome(sent.message_id, self._record())

    def edit(self, message: MessageRef, text: str) -> Outcome[str]:
        """Replace the text of our own text message, within WhatsApp's edit window."""
        engine = Edits.of(*self._live_engine())
        message.check_editable(time.time())
        self.instance.check_connected()
        sent = engine.edit(message, text)
        self.instance.record_edit(
            message_id=message.message_id,
            chat=message.chat,
            sender=None,
            from_me=True,
            body=text,
            edited_at=sent.timestamp,
            **self._party(message),
        )
        return Outcome(sent.message_id, self._record())

    def revoke(self, message: MessageRef) -> Outcome[None]:
        """Delete our own message for everyone."""
        engine = Revocations.of(*self._live_engine())
        message.check_revocable()
        self.instance.check_connected()
        sent = engine.revoke(message)
        self.instance.record_revocation(
            message_id=message.message_id,
            chat=message.chat,
            sender=None,
            from_me=True,
            revoked_at=sent.timestamp,
            **self._party(message),
        )
        return Outcome(None, self._record())

    def download_media(self, message: MessageRef) -> Media:
        """Fetch the file of a message with media into the uploads directory."""
        engine = MediaDownload.of(*self._live_engine())
        return engine.download(message)

    def send_presence(self, state: str, to: str | None) -> None:
        """Show us available/unavailable, or composing/recording/paused in a chat."""
        engine = PresenceUpdates.of(*self._live_engine())
        self.instance.check_connected()
        engine.send_presence(state, to)

    def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> Outcome[None]:
        """Send read receipts for received messages of a chat; their unread count clears."""
        engine = ReadReceipts.of(*self._live_engine())
        self.instance.check_connected()
        engine.mark_read(chat, messages)
        party = self._party(messages[0]) if messages else {"phone": None, "lid": None}
        self.instance.record_read(chat=chat, message_ids=[m.message_id for m in messages], **party)
        return Outcome(None, self._record())

    # -- groups -------------------------------------------------------------------------

    def create_group(self, subject: str, participants: tuple[str, ...]) -> Outcome[Group]:
        """Create a group with us as its owner."""
        engine = Groups.of(*self._live_engine())
        self.instance.check_connected()
        group = engine.create_group(subject, participants)
        self.instance.record_group_created(group=group.describe())
        return Outcome(group, self._record())

    def group_info(self, group_id: str) -> Group:
        """The group as WhatsApp has it now."""
        engine = Groups.of(*self._live_engine())
        self.instance.check_connected()
        return engine.group_info(group_id)

    def update_group(self, group_id: str, changes: GroupChanges) -> Outcome[Group]:
        """Change a group's subject, description, announce or locked."""
        engine = Groups.of(*self._live_engine())
        self.instance.check_connected()
        group = engine.update_group(group_id, changes)
        if changes.describe():
            self.instance.record_group_settings(
                group_id=group_id, changes=changes.describe(), by=None
            )
        return Outcome(group, self._record())

    def change_participants(
        self, group_id: str, action: str, participants: tuple[str, ...]
    ) -> Outcome[tuple[ParticipantResult, ...]]:
        """Add, remove, promote or demote participants; the outcome for each."""
        engine = Groups.of(*self._live_engine())
        self.instance.check_connected()
        results = engine.change_participants(group_id, action, participants)
        done = [r.id for r in results if r.status == "ok"]
        if done:
            self.instance.record_group_participants(
                group_id=group_id,
                action=action,
                participants=[_person(jid) for jid in done],
                by=None,
            )
        return Outcome(results, self._record())

    def invite_code(self, group_id: str, reset: bool) -> str:
        """The group's invite code (`reset`: revoke it and make another)."""
        engine = Groups.of(*self._live_engine())
        self.instance.check_connected()
        return engine.invite_code(group_id, reset)

    def join_group(self, code: str) -> Outcome[Group]:
        """Join a group by its invite code."""
        engine = Groups.of(*self._live_engine())
        self.instance.check_connected()
        group = engine.join_group(code)
        self.instance.record_group_joined(group=group.describe(), reason="invite", by=None)
        return Outcome(group, self._record())

    def leave_group(self, group_id: str) -> Outcome[None]:
        """Leave a group."""
        engine = Groups.of(*self._live_engine())
        self.instance.check_connected()
        engine.leave_group(group_id)
        self.instance.record_group_left(group_id=group_id, reason="left", by=None)
        return Outcome(None, self._record())

    # -- who is who ---------------------------------------------------------------------

    def lookup_identity(self, jid: str) -> Outcome[Identity]:
        """The phone number and LID of the person `jid` names; a pair not known before is
        recorded (IdentityLearnt)."""
        engine = IdentityLookup.of(*self._live_engine())
        self.instance.check_connected()
        found = engine.lookup_identity(jid)
        self._identities.learn(self.instance, found.phone, found.lid)
        return Outcome(found, self._record())

    def check_send(self, idempotency_key: str | None, fingerprint: str | None) -> str | None:
        """Before a send fetches or keeps a file: the message id an earlier send with this
        key produced (IdempotencyKeyReused if it was another request, SendOutcomeUnknown if
        its outcome is unknown), or None when a send can go ahead now (InstanceNotConnected
        if it cannot)."""
        earlier = self.instance.check_send_key(idempotency_key, fingerprint)
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

    def logout(self) -> Outcome[bool | None]:
        """Unlink the WhatsApp session; the value says whether WhatsApp was told (None:
        nothing was linked), so that a caller knows to unlink the device by hand."""
        self.instance.check_enabled()
        unlinked = self.engine.logout()
        # The engine reports LoggedOut; record it now so the answer reflects it.
        if self.instance.status != "logged_out":
            self.instance.log_out("logout", unlinked)
        return Outcome(unlinked, self._record())

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

    def sandbox_scan(self, phone: str | None, lid: str | None = None) -> str:
        """Sandbox: the phone scans the QR code; return the paired number."""
        return SandboxControls.of(*self._live_engine()).scan(phone, lid)

    def sandbox_inbound(
        self, sender_phone: str, text: str, push_name: str | None, lid: str | None = None
    ) -> str:
        """Sandbox: a text from an outside number (or LID) arrives; return its message id."""
        return SandboxControls.of(*self._live_engine()).inbound(sender_phone, text, push_name, lid)

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
        if instance.status == "banned" and time.time() >= instance.banned_until:
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
        """The live connection state (with why it is not connected, and when it retries)."""
        instance = self.instance
        return {
            "ready": instance.ready,
            "status": instance.status,
            "hasQr": instance.qr_code is not None,
            "qrCode": instance.qr_code,
            "lastError": instance.last_error,
            "retryAt": instance.retry_at,
        }

    # -- inside -----------------------------------------------------------------------

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
        self._recent.clear()  # what it remembers may not have been stored
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

    def _webhook_delivery(self) -> tuple[int, dict[str, Any]]:
        return self.instance.version, self.instance.webhook_delivery()

    def _earlier(self, key: _Key) -> str | None:
        """The message an earlier send with this key produced (its request's file, if any,
        is then not needed); IdempotencyKeyReused if that send had another request,
        SendOutcomeUnknown if a send with it started and its outcome is unknown."""
        try:
            earlier = self.instance.check_send_key(key.name, key.fingerprint)
        except SendOutcomeUnknown:
            key.discard()
            raise
        if earlier is not None:
            key.discard()
        return earlier

    def _send(
        self,
        to: str,
        key: _Key,
        options: SendOptions,
        send: Callable[[], Sent],
        kind: str,
        body: str,
        *,
        media: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Outcome[str]:
        if options:
            Replies.of(*self._live_engine())  # 400 before anything is recorded
        earlier = self._begin_send(to, key, kind)
        if earlier is not None:
            return Outcome(earlier)
        try:
            sent = send()
        except EngineError as error:
            raise self._send_failed(key, error) from None
        self.instance.record_sent(
            message_id=sent.message_id,
            to=sent.chat or to,
            message_type=sent.message_type or kind,
            body=body,
            media=media,
            sent_at=sent.timestamp,
            idempotency_key=key.name,
            idempotency_fingerprint=key.fingerprint,
            quoted_message_id=options.quoted.message_id if options.quoted else None,
            mentions=list(options.mentions),
            data=data,
            phone=sent.phone,
            lid=sent.lid,
            recipients=list(sent.recipients),
        )
        self._identities.learn(self.instance, sent.phone, sent.lid)
        return Outcome(sent.message_id, self._record())

    @staticmethod
    def _party(message: MessageRef) -> dict[str, str | None]:
        """`phone` and `lid` of the other party of a message (its author, in a group), as
        the read models know them or as far as its JIDs tell."""
        person = _person(message.sender or message.chat, id_key=None)
        return {"phone": message.phone or person["phone"], "lid": message.lid or person["lid"]}

    def _start(
        self,
        to: str,
        key: _Key,
        start: Callable[[], Future[Sent]],
        kind: str,
        body: str,
        media: dict[str, Any] | None,
    ) -> Outcome[str]:
        """A send the engine runs without this actor: the actor goes on with its mailbox
        while the network answers, and records the message when it has (`_SendFinished`).
        A send with the idempotency key of one in flight shares its outcome."""
        flying = self._in_flight.get(key.name) if key.name is not None else None
        if flying is not None:
            if None not in (flying.key.fingerprint, key.fingerprint) and (
                flying.key.fingerprint != key.fingerprint
            ):
                raise IdempotencyKeyReused(
                    f"Idempotency-Key '{key.name}' is in use by a different request that is "
                    "being sent; use a new key for a new message"
                )
            key.discard()
            return Outcome("", later=flying.outcome)
        earlier = self._begin_send(to, key, kind)
        if earlier is not None:
            return Outcome(earlier)
        started = _Started(to, kind, body, media, key, Future())
        try:
            network = start()
        except EngineError as error:
            raise self._send_failed(key, error) from None
        if key.name is not None:
            self._in_flight[key.name] = started
        me = self.actor_ref

        def answered(done: Future[Sent]) -> None:
            error = done.exception()
            try:
                me.tell(_SendFinished(started, None if error else done.result(), error))
            except pykka.ActorDeadError as dead:
                started.outcome.set_exception(error or dead)

        network.add_done_callback(answered)
        return Outcome("", later=started.outcome)

    def _send_finished(self, finished: _SendFinished) -> None:
        started = finished.started
        if started.key.name is not None:
            self._in_flight.pop(started.key.name, None)
        if finished.sent is None:
            error = finished.error or RuntimeError("send failed")
            if isinstance(error, EngineError) and not self.instance.deleted:
                error = self._send_failed(started.key, error)
            started.outcome.set_exception(error)
            return
        sent = finished.sent
        # The network took the message: it is recorded whatever happened to the
        # connection meanwhile (not once the instance is deleted).
        try:
            self.instance.record_sent(
                message_id=sent.message_id,
                to=sent.chat or started.to,
                message_type=sent.message_type or started.kind,
                body=started.body,
                media=started.media,
                sent_at=sent.timestamp,
                idempotency_key=started.key.name,
                idempotency_fingerprint=started.key.fingerprint,
                accepted=True,
            )
        except InstanceError as error:
            started.outcome.set_exception(error)
            return
        started.outcome.set_result(Outcome(sent.message_id, self._record()))

    def _begin_send(self, to: str, key: _Key, kind: str) -> str | None:
        """Check a send before it goes out: the message id of an earlier send with its
        key (then nothing is sent), else None once a keyed send is durably started."""
        instance = self.instance
        earlier = self._earlier(key)
        if earlier is not None:
            return earlier
        instance.check_connected()
        self._check_addressable(to)
        if key.name:
            # Durable before the engine sends: after a crash the key is known to be in
            # flight, and a retry gets "outcome unknown" instead of a second message.
            instance.start_send(key.name, to, kind, key.fingerprint)
            self._durable(self._record())
        return None

    def _send_failed(self, key: _Key, error: EngineError) -> InstanceError | EngineError:
        """Record how a send ended without an answer; the error to give the caller."""
        instance = self.instance
        if isinstance(error, OutcomeUnknown):
            instance.lose_send(key.name, str(error))
            self._durable(self._record())
            return SendOutcomeUnknown(
                f"the send may or may not have reached WhatsApp: {error}", key.name
            )
        if key.name:
            # Refused: nothing went out, so the key may be used again.
            instance.fail_send(key.name, f"{error.code}: {error}")
            self._durable(self._record())
        return error

    def _check_addressable(self, to: str) -> None:
        server = to.partition("@")[2]
        if server not in self.engine.addressable:
            raise EngineError(
                f"The {self.instance.engine} engine cannot send to {server or to} chats",
                "unsupported_by_engine",
                400,
            )

    @staticmethod
    def _durable(commit: Future[list[int]] | None) -> None:
        if commit is not None:
            commit.result(timeout=60)

    def _wait_for_ban(self) -> None:
        """Connect again when a temporary ban ends (the session check is a backstop)."""
        if self._ban_timer is not None:
            self._ban_timer.cancel()
        delay = max(0.0, self.instance.banned_until - time.time()) + 1.0
        me = self.actor_ref
        self._ban_timer = threading.Timer(delay, lambda: me.tell(_BanOver()))
        self._ban_timer.daemon = True
        self._ban_timer.start()

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
        events = self.instance.collect_events()
        if not events:
            return None
        commit = self._committer.submit(events)
        me, epoch = self.actor_ref, self._epoch

        def failed(done: Future[list[int]]) -> None:
            error = done.exception()
            if error is not None and me.is_alive():
                me.tell(_CommitFailed(error, epoch))

        commit.add_done_callback(failed)
        self._last_commit = commit
        return commit


def _person(jid: str, id_key: str | None = "id") -> dict[str, str | None]:
    """`{id, phone, lid}` as far as a JID tells: a LID hides the number, a phone JID its LID;
    a group JID is neither."""
    person: dict[str, str | None] = {
        "phone": None if is_lid(jid) or is_group(jid) else jid_number(jid),
        "lid": jid if is_lid(jid) else None,
    }
    if id_key is not None:
        person[id_key] = jid
    return person


def _report_key(report: EngineEvent) -> tuple[str, ...] | None:
    """What makes a report the same as one recorded before (a retried delivery)."""
    if isinstance(report, Inbound):
        return ("message", report.message_id)
    if isinstance(report, Receipt):
        return ("status", report.message_id, report.status)
    if isinstance(report, Reaction):
        sender = report.sender or ""
        return ("reaction", report.message_id, sender, report.emoji, str(report.timestamp))
    return None


class InstanceProxy(ActorMemberMixin, pykka.ActorProxy[InstanceActor]):
    """An instance actor as callers hold it: every call answers with a future (typed as
    in pykka's examples/proxy_typing.py)."""

    send_text = proxy_method(InstanceActor.send_text)
    send_media = proxy_method(InstanceActor.send_media)
    send_location = proxy_method(InstanceActor.send_location)
    send_contacts = proxy_method(InstanceActor.send_contacts)
    send_poll = proxy_method(InstanceActor.send_poll)
    send_template = proxy_method(InstanceActor.send_template)
    vote = proxy_method(InstanceActor.vote)
    react = proxy_method(InstanceActor.react)
    edit = proxy_method(InstanceActor.edit)
    revoke = proxy_method(InstanceActor.revoke)
    download_media = proxy_method(InstanceActor.download_media)
    send_presence = proxy_method(InstanceActor.send_presence)
    mark_read = proxy_method(InstanceActor.mark_read)
    create_group = proxy_method(InstanceActor.create_group)
    group_info = proxy_method(InstanceActor.group_info)
    update_group = proxy_method(InstanceActor.update_group)
    change_participants = proxy_method(InstanceActor.change_participants)
    invite_code = proxy_method(InstanceActor.invite_code)
    join_group = proxy_method(InstanceActor.join_group)
    leave_group = proxy_method(InstanceActor.leave_group)
    lookup_identity = proxy_method(InstanceActor.lookup_identity)
    update = proxy_method(InstanceActor.update)
    reconnect = proxy_method(InstanceActor.reconnect)
    logout = proxy_method(InstanceActor.logout)
    delete = proxy_method(InstanceActor.delete)
    pairing_code = proxy_method(InstanceActor.pairing_code)
    check_number = proxy_method(InstanceActor.check_number)
    record_reports = proxy_method(InstanceActor.record_reports)
    sandbox_scan = proxy_method(InstanceActor.sandbox_scan)
    sandbox_inbound = proxy_method(InstanceActor.sandbox_inbound)
    sandbox_drop = proxy_method(InstanceActor.sandbox_drop)
    expire_qr = proxy_method(InstanceActor.expire_qr)
    check_connection = proxy_method(InstanceActor.check_connection)
    check_session = proxy_method(InstanceActor.check_session)
    position = proxy_method(InstanceActor.position)
    state = proxy_method(InstanceActor.state)
