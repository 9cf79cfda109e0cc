"""A simulated WhatsApp network inside the server, for development, demos and tests.

Instances pair by "scanning" their QR code through the sandbox API, then do with each
other what WhatsApp lets accounts do: message one another by phone number or LID, in
one-to-one chats and in groups, reply, mention, react, edit, delete for everyone, vote in
polls, show presence and mark messages read. Each recipient instance gets what it would
get from WhatsApp (the message, the reaction, the group change), and the sender gets a
delivered receipt from each recipient that is online, and a read receipt when the
recipient marks the message read. Numbers no sandbox instance owns receive nothing and
never acknowledge.

Nothing the sandbox keeps lives only in memory or on one node's disk: the paired number
and LID are the instance's ConnectionOpened event (a paired instance reconnects after a
restart without a new QR, as a real session would), and groups are `SandboxGroup`
aggregates in the event store (`sandbox_network.py`). Who is online is the live state of
the connections, like a socket's.

Addressing follows WhatsApp's: a chat opened by a LID stays in LID mode, where each side
sees the other by LID and no phone number; a chat by phone number shows both.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.engines.base import (
    NO_OPTIONS,
    Connected,
    ContactCard,
    Disconnected,
    Edit,
    Emit,
    Engine,
    EngineError,
    EngineEvent,
    GroupJoined,
    GroupLeft,
    GroupParticipants,
    GroupSettings,
    Identity,
    Inbound,
    Location,
    LoggedOut,
    Media,
    Poll,
    PollVote,
    Presence,
    QrCode,
    Reaction,
    Receipt,
    Revocation,
    SendOptions,
    Sent,
)
from actors.engines.capabilities import (
    ContactCards,
    Edits,
    Groups,
    IdentityLookup,
    Locations,
    MediaDownload,
    Polls,
    PresenceUpdates,
    Reactions,
    ReadReceipts,
    Replies,
    Revocations,
    SandboxControls,
)
from actors.engines.sandbox_network import SandboxNetwork, new_invite_code
from domain.groups import Group, GroupChanges, ParticipantResult
from domain.instance import Instance
from domain.messages import MessageRef
from domain.phone import USER_SERVER, is_group, is_lid
from domain.sandbox import SandboxGroup

RECONNECT_DELAY = 0.2


def sandbox_engine(network: SandboxNetwork, instance: Instance, emit: Emit) -> SandboxEngine:
    """The engine of a sandbox instance, paired as its events say (a logout unpairs)."""
    paired = instance.status != "logged_out" and instance.phone is not None
    return SandboxEngine(
        network,
        instance.name,
        emit,
        instance.phone if paired else None,
        instance.lid if paired else None,
    )


def new_message_id() -> str:
    return "SB" + secrets.token_hex(9).upper()


class SandboxEngine(
    Engine,
    SandboxControls,
    Replies,
    Locations,
    ContactCards,
    Polls,
    Reactions,
    Edits,
    Revocations,
    MediaDownload,
    PresenceUpdates,
    ReadReceipts,
    Groups,
    IdentityLookup,
):
    """One instance's place in the sandbox network. `phone` and `lid` are the pairing
    the instance recorded (None: not paired, a QR code is shown)."""

    def __init__(
        self,
        network: SandboxNetwork,
        push_name: str,
        emit: Emit,
        phone: str | None = None,
        lid: str | None = None,
    ) -> None:
        self.network = network
        self.push_name = push_name
        self.emit = emit
        self.paired: tuple[str, str | None] | None = (phone, lid) if phone else None
        self.phone: str | None = None  # online as
        self.lid: str | None = None
        self.qr: str | None = None
        self.unlinked = False  # the phone removed this device (see `unlink`)
        self._lock = threading.Lock()
        self._reconnect: threading.Timer | None = None

    @classmethod
    def for_instance(cls, network: SandboxNetwork, instance: Instance, emit: Emit) -> SandboxEngine:
        """The engine of a stored instance, paired as its events say (a logout unpairs)."""
        return sandbox_engine(network, instance, emit)

    # -- the connection -------------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            self._online_or_qr()

    def _online_or_qr(self) -> None:
        if self.paired is None:
            self.qr = "sandbox@" + secrets.token_urlsafe(24)
            self.emit(QrCode(self.qr))
            return
        phone, lid = self.paired
        self.lid = self.network.join(phone, self, lid)
        self.phone = phone
        self.qr = None
        self.emit(Connected(phone, self.push_name, lid=self.lid))

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

    def healthy(self) -> bool:
        phone = self.phone
        return phone is not None and self.network.find(phone) is self

    def session_valid(self) -> bool:
        return self.paired is not None and not self.unlinked

    def unlink(self) -> None:
        """(Tests.) The phone removes this linked device: the session is no longer valid,
        which the session check finds and records as a logout."""
        self.unlinked = True

    # -- what the sandbox API plays -------------------------------------------------------

    def scan(self, phone: str | None, lid: str | None = None) -> str:
        """The phone scans the current QR code: pair as `phone` (made up if None), known to
        WhatsApp as `lid` (derived from the number if None)."""
        with self._lock:
            if self.qr is None:
                raise EngineError("this instance is not waiting for a QR scan", "not_pairing")
            phone = phone or "1555" + "".join(secrets.choice("0123456789") for _ in range(7))
            self.lid = self.network.join(phone, self, lid)
            self.phone = phone
            self.paired = (phone, self.lid)
            self.qr = None
        self.emit(Connected(phone, self.push_name, lid=self.lid))
        return phone

    def inbound(
        self, sender_phone: str, text: str, push_name: str | None, lid: str | None = None
    ) -> str:
        """A message from an outside number (or LID) arrives."""
        self._require_online()
        message_id = new_message_id()
        if is_lid(sender_phone):
            sender, phone, lid = sender_phone, None, sender_phone
        else:
            sender, phone = f"{sender_phone}@{USER_SERVER}", sender_phone
        self.emit(
            Inbound(
                message_id=message_id,
                sender=sender,
                push_name=push_name,
                message_type="text",
                body=text,
                media=None,
                timestamp=int(time.time()),
                phone=phone,
                lid=lid,
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

    # -- sends --------------------------------------------------------------------------------

    def send_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Sent:
        return self._send(to, "text", text, options)

    def send_media(
        self, to: str, media: Media, caption: str, options: SendOptions = NO_OPTIONS
    ) -> Sent:
        return self._send(to, media.kind, caption, options, media=media.describe())

    def send_location(self, to: str, location: Location, options: SendOptions) -> Sent:
        data = {"location": location.describe()}
        return self._send(to, "location", location.name or "", options, data=data)

    def send_contacts(self, to: str, cards: tuple[ContactCard, ...], options: SendOptions) -> Sent:
        data = {"contacts": [card.describe() for card in cards]}
        return self._send(to, "contacts", ", ".join(c.name for c in cards), options, data=data)

    def send_poll(self, to: str, poll: Poll, options: SendOptions) -> Sent:
        return self._send(to, "poll", poll.question, options, data={"poll": poll.describe()})

    def _send(
        self,
        to: str,
        kind: str,
        body: str,
        options: SendOptions,
        media: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Sent:
        me = self._require_online()
        sent = Sent(new_message_id(), int(time.time()))

        def message(chat: str | None, sender: str, phone: str | None, lid: str | None) -> Inbound:
            return Inbound(
                message_id=sent.message_id,
                sender=sender,
                push_name=self.push_name,
                message_type=kind,
                body=body,
                media=media,
                timestamp=sent.timestamp,
                chat=chat,
                quoted_message_id=options.quoted.message_id if options.quoted else None,
                mentions=options.mentions,
                data=data,
                phone=phone,
                lid=lid,
            )

        if is_group(to):
            group = self.network.groups.get(to)
            group.check_can_send(me)
            members = [p for p in group.members if p != me]
            for phone in members:
                if self._deliver_to(phone, message(to, self._jid(), me, self.lid)):
                    person = self.network.participant(phone, "member")
                    self.emit(
                        Receipt(
                            sent.message_id,
                            "delivered",
                            to,
                            participant=person.id,
                            phone=phone,
                            lid=person.lid,
                        )
                    )
            return Sent(
                sent.message_id,
                sent.timestamp,
                recipients=tuple(f"{p}@{USER_SERVER}" for p in members),
            )
        their_phone, their_lid = self.network.person(to)
        if is_lid(to):  # LID mode: neither side sees the other's number
            seen, their_phone = message(None, self._jid(lid_mode=True), None, self.lid), None
        else:
            seen = message(None, self._jid(), me, self.lid)
        number = self.network.phone_of(to)
        if number is not None and self._deliver_to(number, seen):
            self.emit(Receipt(sent.message_id, "delivered", to, phone=their_phone, lid=their_lid))
        return Sent(sent.message_id, sent.timestamp, phone=their_phone, lid=their_lid)

    # -- acting on messages -----------------------------------------------------------------

    def vote(self, poll: MessageRef, options: tuple[str, ...]) -> Sent:
        return self._tell_chat(
            poll,
            lambda chat, us, phone, lid, ts: PollVote(
                poll.message_id, chat, us, options, ts, phone=phone, lid=lid
            ),
        )

    def react(self, message: MessageRef, emoji: str) -> Sent:
        return self._tell_chat(
            message,
            lambda chat, us, phone, lid, ts: Reaction(
                message.message_id, chat, us, emoji, ts, phone=phone, lid=lid
            ),
        )

    def edit(self, message: MessageRef, text: str) -> Sent:
        return self._tell_chat(
            message,
            lambda chat, us, phone, lid, ts: Edit(
                message.message_id, chat, us, text, ts, phone=phone, lid=lid
            ),
        )

    def revoke(self, message: MessageRef) -> Sent:
        return self._tell_chat(
            message,
            lambda chat, us, phone, lid, ts: Revocation(
                message.message_id, chat, us, ts, phone=phone, lid=lid
            ),
        )

    def _tell_chat(
        self,
        message: MessageRef,
        report: Callable[[str, str, str | None, str | None, int], EngineEvent],
    ) -> Sent:
        """Tell the other members of `message`'s chat what we did to it, each as it sees
        the chat and us."""
        me = self._require_online()
        sent = Sent(new_message_id(), int(time.time()))
        if is_group(message.chat):
            group = self.network.groups.get(message.chat)
            group.check_member(me)
            for phone in group.members:
                if phone != me:
                    self._deliver_to(
                        phone, report(message.chat, self._jid(), me, self.lid, sent.timestamp)
                    )
            return sent
        lid_mode = is_lid(message.chat)
        us = self._jid(lid_mode)
        number = self.network.phone_of(message.chat)
        if number is not None:
            self._deliver_to(
                number, report(us, us, None if lid_mode else me, self.lid, sent.timestamp)
            )
        return sent

    def download(self, message: MessageRef) -> Media:
        media = message.media or {}
        path = media.get("path")
        if not path and media.get("id") and self.network.uploads is not None:
            path = str(self.network.uploads / str(media["id"]))
        if not path or not Path(path).is_file():
            raise EngineError(f"message {message.message_id} has no media", "no_media", 404)
        return Media(
            path=path,
            filename=media.get("filename") or Path(path).name,
            mimetype=media.get("mimetype") or "application/octet-stream",
            size=int(media.get("size") or Path(path).stat().st_size),
        )

    def send_presence(self, state: str, to: str | None) -> None:
        me = self._require_online()
        if to is None:  # available / unavailable: everyone online sees it
            last_seen = int(time.time()) if state == "unavailable" else None
            for engine in self.network.online():
                if engine is not self:
                    engine._deliver(Presence(self._jid(), state, last_seen, me, self.lid))
            return
        if is_group(to):
            group = self.network.groups.get(to)
            group.check_member(me)
            for phone in group.members:
                if phone != me:
                    self._deliver_to(phone, Presence(self._jid(), state, None, me, self.lid))
            return
        lid_mode = is_lid(to)
        number = self.network.phone_of(to)
        if number is not None:
            self._deliver_to(
                number,
                Presence(self._jid(lid_mode), state, None, None if lid_mode else me, self.lid),
            )

    def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        """Each author gets a read receipt for its message (from us, in a group)."""
        me = self._require_online()
        for message in messages:
            if message.from_me:
                continue
            author = self.network.phone_of(message.sender or message.chat)
            if author is None:
                continue
            if is_group(chat):
                self._deliver_to(
                    author,
                    Receipt(
                        message.message_id,
                        "read",
                        chat,
                        participant=self._jid(),
                        phone=me,
                        lid=self.lid,
                    ),
                )
            else:
                lid_mode = is_lid(chat)
                self._deliver_to(
                    author,
                    Receipt(
                        message.message_id,
                        "read",
                        self._jid(lid_mode),
                        phone=None if lid_mode else me,
                        lid=self.lid,
                    ),
                )

    def lookup_identity(self, jid: str) -> Identity:
        self._require_online()
        phone, lid = self.network.person(jid)
        return Identity(phone, lid)

    # -- groups ---------------------------------------------------------------------------

    def create_group(self, subject: str, participants: tuple[str, ...]) -> Group:
        me = self._require_online()
        members = {me: "superadmin"}
        for jid in participants:
            phone = self.network.phone_of(jid)
            if phone is not None and phone != me:
                members[phone] = "member"
        stored = self.network.groups.create(subject, self._jid(), members)
        group = self.network.group(stored)
        for phone in members:
            if phone != me:
                self._deliver_to(phone, GroupJoined(group, "added", self._jid()))
        return group

    def group_info(self, group_id: str) -> Group:
        me = self._require_online()
        stored = self.network.groups.get(group_id)
        stored.check_member(me)
        return self.network.group(stored)

    def update_group(self, group_id: str, changes: GroupChanges) -> Group:
        me = self._require_online()
        wanted = changes.describe()

        def change(group: SandboxGroup) -> None:
            group.check_can_edit_info(me, wanted)
            if wanted:
                group.change_settings(wanted, by=me)

        stored = self.network.groups.change(group_id, change)
        if wanted:
            self._tell_members(stored, me, GroupSettings(group_id, wanted, self._jid()))
        return self.network.group(stored)

    def change_participants(
        self, group_id: str, action: str, participants: tuple[str, ...]
    ) -> tuple[ParticipantResult, ...]:
        me = self._require_online()
        results: list[ParticipantResult] = []
        done: list[str] = []

        def change(group: SandboxGroup) -> None:
            group.check_admin(me)
            results.clear()
            done.clear()
            for jid in participants:
                phone = self.network.phone_of(jid)
                status = _participant_status(group, action, phone, me)
                results.append(ParticipantResult(jid, status))
                if status == "ok" and phone is not None:
                    done.append(phone)
            if done:
                group.change_participants(action, list(done), by=me)

        before = self.network.groups.get(group_id)
        stored = self.network.groups.change(group_id, change)
        group = self.network.group(stored)
        if done:
            people = tuple(
                self.network.participant(p, stored.members.get(p, "member")) for p in done
            )
            update = GroupParticipants(group_id, action, people, self._jid())
            for phone in set(before.members) | set(stored.members):
                if phone == me:
                    continue
                if action == "add" and phone in done:
                    self._deliver_to(phone, GroupJoined(group, "added", self._jid()))
                elif action == "remove" and phone in done:
                    self._deliver_to(phone, GroupLeft(group_id, "removed", self._jid()))
                else:
                    self._deliver_to(phone, update)
        return tuple(results)

    def invite_code(self, group_id: str, reset: bool) -> str:
        me = self._require_online()
        if not reset:
            stored = self.network.groups.get(group_id)
            stored.check_admin(me)
            return stored.invite_code

        def change(group: SandboxGroup) -> None:
            group.check_admin(me)
            group.reset_invite(new_invite_code(group_id), by=me)

        return self.network.groups.change(group_id, change).invite_code

    def join_group(self, code: str) -> Group:
        me = self._require_online()
        found = self.network.groups.by_invite(code)
        if me in found.members:
            return self.network.group(found)

        def change(group: SandboxGroup) -> None:
            group.check_invite(code)
            group.change_participants("add", [me], by=me)

        stored = self.network.groups.change(found.jid, change)
        joined = (self.network.participant(me, "member"),)
        self._tell_members(stored, me, GroupParticipants(stored.jid, "add", joined, self._jid()))
        return self.network.group(stored)

    def leave_group(self, group_id: str) -> None:
        me = self._require_online()

        def change(group: SandboxGroup) -> None:
            group.check_member(me)
            group.change_participants("remove", [me], by=me)

        stored = self.network.groups.change(group_id, change)
        gone = (self.network.participant(me, "member"),)
        self._tell_members(stored, me, GroupParticipants(group_id, "remove", gone, self._jid()))

    # -- inside -----------------------------------------------------------------------------

    def _jid(self, lid_mode: bool = False) -> str:
        """How others name us: our LID in LID mode, else our phone JID."""
        if lid_mode and self.lid:
            return self.lid
        return f"{self.phone}@{USER_SERVER}"

    def _tell_members(self, group: SandboxGroup, me: str, report: EngineEvent) -> None:
        for phone in group.members:
            if phone != me:
                self._deliver_to(phone, report)

    def _deliver_to(self, phone: str, report: EngineEvent) -> bool:
        """Deliver to the instance paired as `phone`: True if it is online on this node (a
        report for one on another node is relayed, and its receipt comes back later)."""
        return self.network.deliver(phone, report)

    def _deliver(self, report: EngineEvent) -> bool:
        if self.phone is None:
            return False
        self.emit(report)
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


def _participant_status(group: SandboxGroup, action: str, phone: str | None, me: str) -> str:
    """What WhatsApp answers for one participant of a change."""
    if phone is None:
        return "not_on_whatsapp"
    present = phone in group.members
    if action == "add":
        return "already_participant" if present else "ok"
    if not present:
        return "not_participant"
    if group.members[phone] == "superadmin":
        return "not_allowed"  # the group's creator is not removed or demoted (it may leave)
    return "ok"
