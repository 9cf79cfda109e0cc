"""What some engines can do beyond the interface every engine has (`base.Engine`).

An engine declares a capability by inheriting it (`class SandboxEngine(Engine,
SandboxControls)`); the instance actor asks for it with `Pairing.of(engine, name)`, an
`isinstance` check, and an engine without it answers `400 unsupported_by_engine` naming
the engine. A new engine-specific operation is a new capability here, a method on the
instance actor that requires it, and the engines that have it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from typing import ClassVar, Self

from actors.engines.base import (
    ContactCard,
    Engine,
    EngineError,
    Identity,
    Location,
    Media,
    Poll,
    SendOptions,
    Sent,
    Template,
)
from domain.groups import Group, GroupChanges, ParticipantResult
from domain.messages import MessageRef


class Capability(ABC):
    """An optional part of an engine."""

    action: ClassVar[str]  # what it lets an engine do, as the error message says it

    @classmethod
    def of(cls, engine: Engine, engine_name: str) -> Self:
        """`engine` as this capability; 400 unsupported_by_engine naming the engine if it
        lacks it."""
        if not isinstance(engine, cls):
            raise EngineError(
                f"The {engine_name} engine cannot {cls.action}", "unsupported_by_engine", 400
            )
        return engine


class Pairing(Capability):
    """Link a device by a code typed on the phone instead of a QR scan (whatsmeow)."""

    action = "make pairing codes"

    @abstractmethod
    def pairing_code(self, phone: str) -> str:
        """The code to type on the phone with this number."""


class NumberCheck(Capability):
    """Ask the network whether a phone number has WhatsApp (whatsmeow)."""

    action = "check whether a number has WhatsApp"

    @abstractmethod
    def check(self, phone: str) -> bool:
        """Whether `phone` (digits) has WhatsApp."""


class ConcurrentSends(Capability):
    """Start a send without holding the instance's actor while the network answers, so
    that several are in flight at once (cloud: a Graph round trip per message)."""

    action = "send several messages at once"

    @abstractmethod
    def start_text(self, to: str, text: str) -> Future[Sent]:
        """Check and start a text send; the future holds the network's answer."""

    @abstractmethod
    def start_media(self, to: str, media: Media, caption: str) -> Future[Sent]:
        """Check and start sending a file we hold; the future holds the network's answer."""


class SandboxControls(Capability):
    """Play the world around a sandbox instance: the phone that scans, an outside
    sender, a dropped line (sandbox)."""

    action = "simulate a scan, an inbound message or a dropped connection"

    @abstractmethod
    def scan(self, phone: str | None, lid: str | None = None) -> str:
        """The phone scans the current QR code: pair as `phone` (made up if None), known
        as `lid` (derived from the number if None); return the paired number."""

    @abstractmethod
    def inbound(
        self, sender_phone: str, text: str, push_name: str | None, lid: str | None = None
    ) -> str:
        """A text from an outside number (or a LID: `…@lid`) arrives, from `lid` too when
        given; return its message id."""

    @abstractmethod
    def drop(self) -> None:
        """The connection drops; it comes back by itself shortly after."""


# -- everything else WhatsApp does (SPEC: "Everything else WhatsApp does") ---------------
#
# A message already sent or received is named by a `MessageRef` (domain.messages), taken
# from the read models by the caller: the engine gets the chat, the author and the
# content it needs to address it (whatsmeow's reactions and replies name the author).
# Every send returns `Sent`, as the base sends do, and takes `SendOptions` where a send
# can quote and mention.


class Replies(Capability):
    """Every send may quote a message of its chat and mention people (`SendOptions`):
    an engine with this capability honours `options` in all its sends."""

    action = "reply to a message or mention people"


class Locations(Capability):
    action = "send locations"

    @abstractmethod
    def send_location(self, to: str, location: Location, options: SendOptions) -> Sent:
        """Send a pin at a place."""


class ContactCards(Capability):
    action = "send contact cards"

    @abstractmethod
    def send_contacts(self, to: str, cards: tuple[ContactCard, ...], options: SendOptions) -> Sent:
        """Send 1 to 10 contact cards in one message."""


class Polls(Capability):
    action = "send polls or vote in them"

    @abstractmethod
    def send_poll(self, to: str, poll: Poll, options: SendOptions) -> Sent:
        """Send a poll of 2 to 12 options."""

    @abstractmethod
    def vote(self, poll: MessageRef, options: tuple[str, ...]) -> Sent:
        """Vote in `poll` (replacing any earlier vote; no options withdraws it)."""


class Templates(Capability):
    action = "send message templates"

    @abstractmethod
    def send_template(self, to: str, template: Template) -> Sent:
        """Send an approved template (how a business opens a conversation)."""


class Reactions(Capability):
    action = "react to messages"

    @abstractmethod
    def react(self, message: MessageRef, emoji: str) -> Sent:
        """React with one emoji; "" removes our reaction."""


class Edits(Capability):
    action = "edit messages"

    @abstractmethod
    def edit(self, message: MessageRef, text: str) -> Sent:
        """Replace the text of our own text message (the caller checked the window)."""


class Revocations(Capability):
    action = "delete messages for everyone"

    @abstractmethod
    def revoke(self, message: MessageRef) -> Sent:
        """Delete our own message for everyone."""


class MediaDownload(Capability):
    action = "download media"

    @abstractmethod
    def download(self, message: MessageRef) -> Media:
        """The file of a message with media, fetched into this server's uploads
        directory (`message.media` is what was recorded when it arrived)."""


class PresenceUpdates(Capability):
    action = "send presence"

    @abstractmethod
    def send_presence(self, state: str, to: str | None) -> None:
        """`available`/`unavailable` for the account (`to` None), or `composing`,
        `recording`, `paused` in the chat `to`."""


class ReadReceipts(Capability):
    action = "mark messages read"

    @abstractmethod
    def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        """Send read receipts for these received messages of `chat` to their senders."""


class Groups(Capability):
    """Create, read, change, join and leave groups. A change this account may not make
    raises EngineError `not_group_admin` (409), as WhatsApp answers 403."""

    action = "manage groups"

    @abstractmethod
    def create_group(self, subject: str, participants: tuple[str, ...]) -> Group:
        """A new group with us as its owner (superadmin) and these JIDs in it."""

    @abstractmethod
    def group_info(self, group_id: str) -> Group:
        """The group as WhatsApp has it now (EngineError `group_not_found`, 404)."""

    @abstractmethod
    def update_group(self, group_id: str, changes: GroupChanges) -> Group:
        """Change subject, description, announce or locked; the group after the change."""

    @abstractmethod
    def change_participants(
        self, group_id: str, action: str, participants: tuple[str, ...]
    ) -> tuple[ParticipantResult, ...]:
        """add, remove, promote or demote JIDs; the outcome for each."""

    @abstractmethod
    def invite_code(self, group_id: str, reset: bool) -> str:
        """The group's invite code; `reset` revokes the current one and makes another."""

    @abstractmethod
    def join_group(self, code: str) -> Group:
        """Join by an invite code (EngineError `invalid_invite`, 404, if it is not valid)."""

    @abstractmethod
    def leave_group(self, group_id: str) -> None:
        """Leave the group."""


class IdentityLookup(Capability):
    action = "look up phone numbers and LIDs"

    @abstractmethod
    def lookup_identity(self, jid: str) -> Identity:
        """The phone number and LID of the person `jid` names (a phone JID or a LID),
        as far as WhatsApp tells."""
