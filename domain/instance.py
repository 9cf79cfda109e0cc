"""The instance aggregate: one WhatsApp account of one user.

Message content lives in events and read models only. The aggregate keeps what
commands must check (lifecycle, connection, settings), a bounded memory of
idempotency keys and the sends still in flight, and the position in the engine's
inbound spool it has recorded up to, so its state does not grow with the number of
messages.

Connection status (SPEC §4): `connecting` (asked to connect), `qr` (showing a QR code),
`connected`, `reconnecting` (lost; the engine tries again, at `retry_at` when it
says), `disconnected` (given up until someone reconnects it), `logged_out`, `banned`
(until `retry_at`), `outdated` (WhatsApp refuses this client version) and `deleted`.
`last_error` says why it is not connected.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate, event

ENGINES = ("whatsmeow", "cloud", "sandbox")
IDEMPOTENCY_MEMORY = 1000

# A send with an idempotency key is recorded as started before the engine sends it; if
# its outcome is never learned (a timeout, a crash), the key stays here as unknown.
STARTED, UNKNOWN = "started", "unknown"


class InstanceError(Exception):
    """Base of the errors an instance command can raise."""


class InstanceDeleted(InstanceError):
    pass


class InstanceNotConnected(InstanceError):
    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status  # the instance's status when the command came


class SendOutcomeUnknown(InstanceError):
    """A send may or may not have reached WhatsApp; it is never repeated blindly."""

    def __init__(self, message: str, idempotency_key: str | None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


def _bounded(memory: dict[str, Any]) -> None:
    while len(memory) > IDEMPOTENCY_MEMORY:
        del memory[next(iter(memory))]


class IdempotencyKeyReused(InstanceError):
    """An Idempotency-Key came back with a different request than the one it first sent."""


class InstanceDisabled(InstanceError):
    """The instance's owner is deactivated: it stays stopped until they are reactivated."""


class Instance(Aggregate):
    """A WhatsApp account driven by one engine on behalf of one user."""

    # v2: connection status model (last_error, retry_at), sends in flight, spool position.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("last_error", None)
        state.setdefault("retry_at", None)
        state.setdefault("sends_in_flight", {})
        state.setdefault("spool_seq", 0)
        if state.get("status") == "connecting" and state.get("qr_code"):
            state["status"] = "qr"

    class ConnectionClosed(Aggregate.Event):
        """The connection ended; `retry_at` (epoch seconds) is when the engine tries again."""

        class_version = 2
        reason: str
        will_reconnect: bool
        retry_at: float | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["retry_at"] = None

    class LoggedOut(Aggregate.Event):
        """The session was unlinked; `unlinked` says whether WhatsApp was told (None: the
        phone or WhatsApp ended it, so there was nothing to tell)."""

        class_version = 2
        reason: str
        unlinked: bool | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["unlinked"] = None

    lid: str | None = None  # read from snapshots taken before instances had one

    class Created(Aggregate.Created):
        user_id: str
        name: str
        description: str
        engine: str
        webhook: dict[str, Any]
        engine_settings: dict[str, Any]

    @event(Created)
    def __init__(
        self,
        user_id: str,
        name: str,
        description: str,
        engine: str,
        webhook: dict[str, Any],
        engine_settings: dict[str, Any],
    ) -> None:
        self.user_id = user_id
        self.name = name
        self.description = description
        self.engine = engine
        self.webhook = dict(webhook)
        self.engine_settings = dict(engine_settings)
        self.status = "connecting"
        self.qr_code: str | None = None
        self.phone: str | None = None
        self.lid: str | None = None
        self.push_name: str | None = None
        self.deleted = False
        self.last_error: str | None = None
        self.retry_at: float | None = None
        # Insertion-ordered (a plain dict survives snapshot encoding), oldest first.
        # key -> [message id, fingerprint of the request] (a bare id: kept before
        # fingerprints were).
        self.idempotency: dict[str, Any] = {}
        # key -> [STARTED or UNKNOWN, fingerprint of the request]: keyed sends under way.
        self.sends_in_flight: dict[str, list[str | None]] = {}
        self.spool_seq = 0

    banned_until = 0  # until a ban is recorded (snapshots from before bans lack it)

    # -- checks -------------------------------------------------------------------

    def check_not_deleted(self) -> None:
        if self.deleted:
            raise InstanceDeleted(f"instance {self.id} is deleted")

    def check_enabled(self) -> None:
        self.check_not_deleted()
        if self.status == "disabled":
            raise InstanceDisabled(f"instance {self.id} is disabled (its owner is deactivated)")

    def check_connected(self) -> None:
        self.check_enabled()
        if self.status != "connected":
            raise InstanceNotConnected(
                f"instance {self.id} is not connected (status: {self.status})", self.status
            )

    @property
    def ready(self) -> bool:
        return self.status == "connected"

    @property
    def disabled(self) -> bool:
        return self.status == "disabled"

    def webhook_delivery(self) -> dict[str, Any]:
        """The webhook settings delivery goes by: none while the instance is disabled."""
        return {**self.webhook, "enabled": False} if self.disabled else dict(self.webhook)

    def sent_for_key(self, key: str | None, fingerprint: str | None = None) -> str | None:
        """The message id a send with this idempotency key already produced; raises
        IdempotencyKeyReused when the key sent a request with another fingerprint."""
        kept = self.idempotency.get(key) if key else None
        if kept is None:
            return None
        if isinstance(kept, str):  # remembered before fingerprints were kept
            return kept
        message_id, first = kept
        if first is not None and fingerprint is not None and first != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key '{key}' was used for a different request (message "
                f"{message_id}); use a new key for a new message"
            )
        return str(message_id)

    def check_send_key(self, key: str | None, fingerprint: str | None = None) -> str | None:
        """The message id of an earlier send with this key, None for a new key; raises
        SendOutcomeUnknown for a key whose send started but whose outcome is unknown, and
        IdempotencyKeyReused when the key was used by another request."""
        if not key:
            return None
        flying = self.sends_in_flight.get(key)
        if flying is not None:
            first = flying[1]
            if first is not None and fingerprint is not None and first != fingerprint:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key '{key}' was used for a different request, whose outcome "
                    "is unknown; use a new key for a new message"
                )
            raise SendOutcomeUnknown(
                f"a send with Idempotency-Key '{key}' was started and its outcome is "
                "unknown (it may have reached WhatsApp); it is not sent again",
                key,
            )
        return self.sent_for_key(key, fingerprint)

    def seen(self, spool_seq: int | None) -> bool:
        """Whether an engine report with this spool position is recorded already (a replay)."""
        return spool_seq is not None and spool_seq <= self.spool_seq

    # -- settings -----------------------------------------------------------------

    def update(self, changes: dict[str, Any]) -> None:
        self.check_not_deleted()
        if changes:
            self._updated(changes=changes)

    class Updated(Aggregate.Event):
        changes: dict[str, Any]

    @event(Updated)
    def _updated(self, changes: dict[str, Any]) -> None:
        for key in ("name", "description"):
            if key in changes:
                setattr(self, key, changes[key])
        self.webhook.update(changes.get("webhook", {}))
        self.engine_settings.update(changes.get("engine_settings", {}))

    def delete(self) -> None:
        self.check_not_deleted()
        self._deleted()

    class Deleted(Aggregate.Event):
        pass

    @event(Deleted)
    def _deleted(self) -> None:
        self.deleted = True
        self.status = "deleted"
        self.qr_code = None
        self.retry_at = None

    # -- owner deactivated and reactivated -----------------------------------------

    class Disabled(Aggregate.Event):
        reason: str

    @event(Disabled)
    def disable(self, reason: str) -> None:
        """Stopped because its owner was deactivated; status `disabled`, webhooks off."""
        self.enabled_status = self.status
        self.status = "disabled"
        self.qr_code = None

    def enable(self) -> None:
        """Its owner is active again: back to where it was (a logged-out session stays so)."""
        before = getattr(self, "enabled_status", "disconnected")
        self._enabled(status="logged_out" if before == "logged_out" else "disconnected")

    class Enabled(Aggregate.Event):
        status: str

    @event(Enabled)
    def _enabled(self, status: str) -> None:
        self.status = status

    # -- connection ---------------------------------------------------------------

    class ConnectionRequested(Aggregate.Event):
        reason: str

    @event(ConnectionRequested)
    def request_connection(self, reason: str) -> None:
        self.status = "connecting"
        self.retry_at = None

    class QrReceived(Aggregate.Event):
        qr_code: str

    @event(QrReceived)
    def receive_qr(self, qr_code: str) -> None:
        self.qr_code = qr_code
        self.status = "qr"
        self.retry_at = None

    class QrExpired(Aggregate.Event):
        pass

    @event(QrExpired)
    def expire_qr(self) -> None:
        self.qr_code = None
        if self.status == "qr":
            self.status = "disconnected"
            self.last_error = "qr_expired"

    class ConnectionOpened(Aggregate.Event):
        """The engine connected as `phone` (digits), known to WhatsApp also as `lid`
        (`…@lid`). `details`: what the engine says about the account (the Cloud API: the
        number's status, quality rating, messaging limit...)."""

        class_version = 3
        phone: str | None
        push_name: str | None
        details: dict[str, Any] | None
        lid: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["details"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["lid"] = None

    def open_connection(
        self,
        phone: str | None,
        push_name: str | None,
        details: dict[str, Any] | None = None,
        lid: str | None = None,
    ) -> None:
        self._connection_opened(phone=phone, push_name=push_name, details=details, lid=lid)

    @event(ConnectionOpened)
    def _connection_opened(
        self,
        phone: str | None,
        push_name: str | None,
        details: dict[str, Any] | None,
        lid: str | None,
    ) -> None:
        self.status = "connected"
        self.qr_code = None
        if phone and phone != self.phone:
            self.lid = None  # another number: its LID is another too
        self.phone = phone or self.phone
        self.lid = lid or self.lid
        self.push_name = push_name or self.push_name
        self.last_error = None
        self.retry_at = None

    @event(ConnectionClosed)
    def close_connection(
        self, reason: str, will_reconnect: bool, retry_at: float | None = None
    ) -> None:
        self.status = "reconnecting" if will_reconnect else "disconnected"
        self.qr_code = None
        self.last_error = reason
        self.retry_at = retry_at if will_reconnect else None

    @event(LoggedOut)
    def log_out(self, reason: str, unlinked: bool | None = None) -> None:
        self.status = "logged_out"
        self.qr_code = None
        self.phone = None
        self.last_error = reason
        self.retry_at = None
        self.lid = None

    class TemporarilyBanned(Aggregate.Event):
        reason: str
        expires_at: int

    @event(TemporarilyBanned)
    def ban(self, reason: str, expires_at: int) -> None:
        self.status = "banned"
        self.qr_code = None
        self.banned_until = expires_at
        self.last_error = f"banned: {reason}"
        self.retry_at = expires_at

    class ClientOutdated(Aggregate.Event):
        client_version: str

    @event(ClientOutdated)
    def mark_outdated(self, client_version: str) -> None:
        """WhatsApp refused this client version (405): nothing connects until an upgrade."""
        self.status = "outdated"
        self.qr_code = None
        self.last_error = f"client_outdated: WhatsApp refuses {client_version}"
        self.retry_at = None

    # -- messages -----------------------------------------------------------------
    #
    # Every message event names the chat and carries the other party's `phone` (digits)
    # and `lid` (`…@lid`) whenever either is known: the chat's for a one-to-one chat,
    # the participant's in a group. `data` is the structured content by kind: a
    # location (`{"location": {latitude, longitude, name, address}}`), contact cards
    # (`{"contacts": [{name, phone}]}`), a poll (`{"poll": {question, options,
    # multipleAnswers}}`), a template (`{"template": {name, language, components}}`),
    # and what the Cloud API adds to received messages (see MessageReceived).

    class MessageSent(Aggregate.Event):
        """We sent a message. `idempotency_fingerprint` identifies the request that sent
        it under `idempotency_key` (None before fingerprints were kept, version 1).
        `recipients`: the participants a group message went to (their receipts decide
        when it counts as delivered and read); empty otherwise. `origin` is `api` for
        sends through this server, `phone` or `linked_device` for messages the account
        sent elsewhere (seen by the engine); `spool_seq` the position in the engine's
        durable spool of such a message (both version 4)."""

        class_version = 4
        message_id: str
        to: str
        message_type: str
        body: str
        media: dict[str, Any] | None
        sent_at: int
        idempotency_key: str | None
        idempotency_fingerprint: str | None
        quoted_message_id: str | None
        mentions: list[str]
        data: dict[str, Any] | None
        phone: str | None
        lid: str | None
        recipients: list[str]
        origin: str
        spool_seq: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["idempotency_fingerprint"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state.update(
                quoted_message_id=None, mentions=[], data=None, phone=None, lid=None, recipients=[]
            )

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state.update(origin="api", spool_seq=None)

    def start_send(
        self, idempotency_key: str, to: str, message_type: str, fingerprint: str | None = None
    ) -> None:
        """Remember a keyed send before it goes out, so that a crash cannot make it twice."""
        self.check_connected()
        self._send_started(
            idempotency_key=idempotency_key,
            to=to,
            message_type=message_type,
            idempotency_fingerprint=fingerprint,
        )

    class SendStarted(Aggregate.Event):
        idempotency_key: str
        to: str
        message_type: str
        idempotency_fingerprint: str | None

    @event(SendStarted)
    def _send_started(
        self,
        idempotency_key: str,
        to: str,
        message_type: str,
        idempotency_fingerprint: str | None = None,
    ) -> None:
        self.sends_in_flight[idempotency_key] = [STARTED, idempotency_fingerprint]
        _bounded(self.sends_in_flight)

    class SendFailed(Aggregate.Event):
        idempotency_key: str
        reason: str

    @event(SendFailed)
    def fail_send(self, idempotency_key: str, reason: str) -> None:
        """The engine refused the send: nothing went out, so the key may be used again."""
        self.sends_in_flight.pop(idempotency_key, None)

    class SendOutcomeUnknown(Aggregate.Event):
        idempotency_key: str | None
        reason: str

    @event(SendOutcomeUnknown)
    def lose_send(self, idempotency_key: str | None, reason: str) -> None:
        """The send may or may not have gone out; its key is never sent again."""
        if idempotency_key:
            flying = self.sends_in_flight.get(idempotency_key) or [STARTED, None]
            self.sends_in_flight[idempotency_key] = [UNKNOWN, flying[1]]

    def record_sent(
        self,
        message_id: str,
        to: str,
        message_type: str,
        body: str,
        media: dict[str, Any] | None,
        sent_at: int,
        idempotency_key: str | None,
        idempotency_fingerprint: str | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        data: dict[str, Any] | None = None,
        phone: str | None = None,
        lid: str | None = None,
        recipients: list[str] | None = None,
        origin: str = "api",
        spool_seq: int | None = None,
        accepted: bool = False,
    ) -> None:
        """Record a sent message. `accepted`: the network has taken it already (a send
        that ran while the actor went on, or one whose key was recorded as started), so
        it is recorded whatever the connection's state is now; messages the account
        sent elsewhere (`origin` not `api`) too."""
        self.check_not_deleted()
        if not accepted and origin == "api" and idempotency_key not in self.sends_in_flight:
            self.check_connected()
        self._message_sent(
            message_id=message_id,
            to=to,
            message_type=message_type,
            body=body,
            media=media,
            sent_at=sent_at,
            idempotency_key=idempotency_key,
            idempotency_fingerprint=idempotency_fingerprint,
            quoted_message_id=quoted_message_id,
            mentions=list(mentions or []),
            data=data,
            phone=phone,
            lid=lid,
            recipients=list(recipients or []),
            origin=origin,
            spool_seq=spool_seq,
        )

    @event(MessageSent)
    def _message_sent(
        self,
        message_id: str,
        to: str,
        message_type: str,
        body: str,
        media: dict[str, Any] | None,
        sent_at: int,
        idempotency_key: str | None,
        idempotency_fingerprint: str | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        data: dict[str, Any] | None = None,
        phone: str | None = None,
        lid: str | None = None,
        recipients: list[str] | None = None,
        origin: str = "api",
        spool_seq: int | None = None,
    ) -> None:
        if idempotency_key:
            self.sends_in_flight.pop(idempotency_key, None)
            self.idempotency[idempotency_key] = [message_id, idempotency_fingerprint]
            _bounded(self.idempotency)
        self._advance(spool_seq)

    class MessageReceived(Aggregate.Event):
        """A message arrived. `sender` wrote it; `chat` is where (a group's JID in a group,
        else the sender's own). `body` is its text for a person (a caption, a button's
        title, a place's name...); `data` what a program needs, by kind (`location`,
        `contacts`, `poll`, and from the Cloud API `interactive`, `button`, `reaction`,
        `order`, `system`, `unsupported`, `context`, `referral`); `bsuid` the sender's
        business-scoped user id and `username` their WhatsApp username (Cloud API), when
        known. `spool_seq`: its position in the engine's durable spool (version 4)."""

        class_version = 4
        message_id: str
        sender: str
        push_name: str | None
        message_type: str
        body: str
        media: dict[str, Any] | None
        received_at: int
        data: dict[str, Any] | None
        bsuid: str | None
        username: str | None
        chat: str
        quoted_message_id: str | None
        mentions: list[str]
        phone: str | None
        lid: str | None
        spool_seq: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.update(data=None, bsuid=None, username=None)

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state.update(
                chat=state["sender"], quoted_message_id=None, mentions=[], phone=None, lid=None
            )

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state["spool_seq"] = None

    def record_received(
        self,
        message_id: str,
        sender: str,
        push_name: str | None,
        message_type: str,
        body: str,
        media: dict[str, Any] | None,
        received_at: int,
        data: dict[str, Any] | None = None,
        bsuid: str | None = None,
        username: str | None = None,
        chat: str | None = None,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        phone: str | None = None,
        lid: str | None = None,
        spool_seq: int | None = None,
    ) -> None:
        self._message_received(
            message_id=message_id,
            sender=sender,
            push_name=push_name,
            message_type=message_type,
            body=body,
            media=media,
            received_at=received_at,
            data=data,
            bsuid=bsuid,
            username=username,
            chat=chat or sender,
            quoted_message_id=quoted_message_id,
            mentions=list(mentions or []),
            phone=phone,
            lid=lid,
            spool_seq=spool_seq,
        )

    @event(MessageReceived)
    def _message_received(
        self,
        message_id: str,
        sender: str,
        push_name: str | None,
        message_type: str,
        body: str,
        media: dict[str, Any] | None,
        received_at: int,
        data: dict[str, Any] | None,
        bsuid: str | None,
        username: str | None,
        chat: str,
        quoted_message_id: str | None,
        mentions: list[str],
        phone: str | None,
        lid: str | None,
        spool_seq: int | None = None,
    ) -> None:
        self._advance(spool_seq)

    class MessageUndecryptable(Aggregate.Event):
        message_id: str
        sender: str
        participant: str | None
        phone: str | None
        lid: str | None
        unavailable: bool
        received_at: int
        spool_seq: int | None

    @event(MessageUndecryptable)
    def record_undecryptable(
        self,
        message_id: str,
        sender: str,
        participant: str | None,
        phone: str | None,
        lid: str | None,
        unavailable: bool,
        received_at: int,
        spool_seq: int | None = None,
    ) -> None:
        """A message arrived that could not be decrypted (WhatsApp asks the sender's phone
        to resend it; a receiver may ask the person to send it again). `sender` is the
        chat, `participant` who wrote it in a group."""
        self._advance(spool_seq)

    class MediaSaved(Aggregate.Event):
        message_id: str
        media: dict[str, Any]
        spool_seq: int | None

    @event(MediaSaved)
    def record_media(
        self,
        message_id: str,
        media: dict[str, Any],
        spool_seq: int | None = None,
    ) -> None:
        """A received message's media was downloaded (or could not be: `media.error`)."""
        self._advance(spool_seq)

    class MessageStatusChanged(Aggregate.Event):
        """A sent message's status moved (`sent`, `delivered`, `read`, `played`) or it
        `failed` after it was accepted; a failure carries `error`: `{code, title,
        details}` as the network said it. In a group, `participant` is who delivered or
        read it. `spool_seq`: its position in the engine's durable spool (version 4)."""

        class_version = 4
        message_id: str
        status: str
        remote_jid: str
        from_me: bool
        error: dict[str, Any] | None
        participant: str | None
        phone: str | None
        lid: str | None
        spool_seq: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["error"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state.update(participant=None, phone=None, lid=None)

        @staticmethod
        def upcast_v3_v4(state: dict[str, Any]) -> None:
            state["spool_seq"] = None

    def record_status(
        self,
        message_id: str,
        status: str,
        remote_jid: str,
        from_me: bool,
        error: dict[str, Any] | None = None,
        participant: str | None = None,
        phone: str | None = None,
        lid: str | None = None,
        spool_seq: int | None = None,
    ) -> None:
        self._status_changed(
            message_id=message_id,
            status=status,
            remote_jid=remote_jid,
            from_me=from_me,
            error=error,
            participant=participant,
            phone=phone,
            lid=lid,
            spool_seq=spool_seq,
        )

    @event(MessageStatusChanged)
    def _status_changed(
        self,
        message_id: str,
        status: str,
        remote_jid: str,
        from_me: bool,
        error: dict[str, Any] | None,
        participant: str | None,
        phone: str | None,
        lid: str | None,
        spool_seq: int | None = None,
    ) -> None:
        self._advance(spool_seq)

    class NoticeReceived(Aggregate.Event):
        kind: str
        details: dict[str, Any]

    @event(NoticeReceived)
    def receive_notice(self, kind: str, details: dict[str, Any]) -> None:
        """The network said something about the account that is not a message: the
        Cloud API's `account_update` (bans, restrictions, quality) and webhook-level
        `errors`."""

    class ContactsSynced(Aggregate.Event):
        contacts: list[dict[str, Any]]

    @event(ContactsSynced)
    def sync_contacts(self, contacts: list[dict[str, Any]]) -> None:
        pass

    def _advance(self, spool_seq: int | None) -> None:
        if spool_seq is not None and spool_seq > self.spool_seq:
            self.spool_seq = spool_seq

    # -- what happens to messages already sent or received --------------------------
    #
    # `sender` is who did it (None: this instance, from_me true), `chat` where the
    # message is. An empty emoji removes a reaction; an empty list of options withdraws
    # a vote (each vote replaces the voter's earlier one).

    class MessageReacted(Aggregate.Event):
        message_id: str
        chat: str
        sender: str | None
        from_me: bool
        emoji: str
        phone: str | None
        lid: str | None
        reacted_at: int

    @event(MessageReacted)
    def record_reaction(
        self,
        message_id: str,
        chat: str,
        sender: str | None,
        from_me: bool,
        emoji: str,
        phone: str | None,
        lid: str | None,
        reacted_at: int,
    ) -> None:
        pass

    class MessageEdited(Aggregate.Event):
        message_id: str
        chat: str
        sender: str | None
        from_me: bool
        body: str
        phone: str | None
        lid: str | None
        edited_at: int

    @event(MessageEdited)
    def record_edit(
        self,
        message_id: str,
        chat: str,
        sender: str | None,
        from_me: bool,
        body: str,
        phone: str | None,
        lid: str | None,
        edited_at: int,
    ) -> None:
        pass

    class MessageRevoked(Aggregate.Event):
        message_id: str
        chat: str
        sender: str | None
        from_me: bool
        phone: str | None
        lid: str | None
        revoked_at: int

    @event(MessageRevoked)
    def record_revocation(
        self,
        message_id: str,
        chat: str,
        sender: str | None,
        from_me: bool,
        phone: str | None,
        lid: str | None,
        revoked_at: int,
    ) -> None:
        pass

    class PollVoted(Aggregate.Event):
        message_id: str
        chat: str
        voter: str | None
        from_me: bool
        options: list[str]
        phone: str | None
        lid: str | None
        voted_at: int

    @event(PollVoted)
    def record_vote(
        self,
        message_id: str,
        chat: str,
        voter: str | None,
        from_me: bool,
        options: list[str],
        phone: str | None,
        lid: str | None,
        voted_at: int,
    ) -> None:
        pass

    class ChatRead(Aggregate.Event):
        chat: str
        message_ids: list[str]
        phone: str | None
        lid: str | None

    @event(ChatRead)
    def record_read(
        self, chat: str, message_ids: list[str], phone: str | None, lid: str | None
    ) -> None:
        """This instance marked messages of a chat read (read receipts went to the sender)."""

    # -- groups ---------------------------------------------------------------------
    #
    # `group` is a whole group as `domain.groups.Group.describe()` gives it; `by` is the
    # participant who made a change (None: this instance).

    class GroupCreated(Aggregate.Event):
        group: dict[str, Any]

    @event(GroupCreated)
    def record_group_created(self, group: dict[str, Any]) -> None:
        """This instance created a group."""

    class GroupJoined(Aggregate.Event):
        group: dict[str, Any]
        reason: str
        by: str | None

    @event(GroupJoined)
    def record_group_joined(self, group: dict[str, Any], reason: str, by: str | None) -> None:
        """This instance is in a group it was not in: `reason` is "added" (by `by`),
        "invite" (it joined by an invite code) or "sync" (the engine found it)."""

    class GroupLeft(Aggregate.Event):
        group_id: str
        reason: str
        by: str | None

    @event(GroupLeft)
    def record_group_left(self, group_id: str, reason: str, by: str | None) -> None:
        """This instance is no longer in a group: `reason` "left" or "removed" (by `by`)."""

    class GroupParticipantsChanged(Aggregate.Event):
        group_id: str
        action: str
        participants: list[dict[str, Any]]
        by: str | None

    @event(GroupParticipantsChanged)
    def record_group_participants(
        self, group_id: str, action: str, participants: list[dict[str, Any]], by: str | None
    ) -> None:
        """Participants were added, removed, promoted or demoted (`action`); each is
        `{id, phone, lid}`."""

    class GroupSettingsChanged(Aggregate.Event):
        group_id: str
        changes: dict[str, Any]
        by: str | None

    @event(GroupSettingsChanged)
    def record_group_settings(self, group_id: str, changes: dict[str, Any], by: str | None) -> None:
        """Some of subject, description, announce, locked changed (only those are given)."""

    # -- who is who -----------------------------------------------------------------

    class IdentityLearnt(Aggregate.Event):
        phone: str
        lid: str

    @event(IdentityLearnt)
    def learn_identity(self, phone: str, lid: str) -> None:
        """WhatsApp names the person with phone number `phone` (digits) also by `lid`
        (`…@lid`): from now on, and in what was recorded before, they are one party."""

    class PresenceUpdated(Aggregate.Event):
        jid: str
        state: str
        phone: str | None
        lid: str | None
        last_seen: int | None

    @event(PresenceUpdated)
    def record_presence(
        self, jid: str, state: str, phone: str | None, lid: str | None, last_seen: int | None
    ) -> None:
        """Someone's presence (available, unavailable, composing, recording, paused).
        Recorded only while webhooks want it (notifyPresence): see `wants_presence`."""

    @property
    def wants_presence(self) -> bool:
        """Presence updates are frequent and worthless once past; they are stored only to be
        delivered to a webhook that asked for them."""
        return bool(self.webhook.get("enabled")) and bool(self.webhook.get("notifyPresence"))
