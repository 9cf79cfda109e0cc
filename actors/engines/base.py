"""The one small interface every engine (sandbox, whatsmeow, cloud) implements.

An engine reports what happens on its connection by calling `emit` with one of the
reports below, from any thread; the instance actor turns them into domain events.
Commands are called from the instance actor's thread only. What only some engines can
do is a capability (`capabilities.py`).

JIDs are WhatsApp's: `<digits>@s.whatsapp.net` (a phone), `<digits>@lid` (a LID),
`<digits>-<digits>@g.us` or `<digits>@g.us` (a group). A report that names a person
fills in `phone` (digits) and `lid` (`…@lid`) whenever the engine knows them, whichever
of the two the JID is; in a group, that person is the participant, not the group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from domain.groups import Group, Participant
from domain.messages import MessageRef


class EngineError(Exception):
    """The engine refused or failed a command; `code` says why, for the API,
    `details` (optional) what a program may act on, and `retry_after` when to try
    again."""

    def __init__(
        self,
        message: str,
        code: str = "engine_error",
        status: int = 409,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.details = details
        self.retry_after = retry_after  # seconds, for a 429 or 503 (Retry-After)


class OutcomeUnknown(EngineError):
    """A send was handed to the network but no answer came (a timeout, a crash): it may
    or may not have been delivered, so it must not be retried blindly."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "send_outcome_unknown", 202)


@dataclass(frozen=True)
class QrCode:
    code: str


@dataclass(frozen=True)
class Connected:
    phone: str | None
    push_name: str | None
    details: dict[str, Any] | None = None  # what the network says about the account
    lid: str | None = None  # the LID WhatsApp knows this account by


@dataclass(frozen=True)
class Disconnected:
    """The connection ended; with `will_reconnect` the engine tries again by itself, at
    `retry_at` (epoch seconds) when it knows when."""

    reason: str
    will_reconnect: bool
    retry_at: float | None = None


@dataclass(frozen=True)
class ClientOutdated:
    """WhatsApp refuses this client's version; nothing connects until it is upgraded."""

    client_version: str


@dataclass(frozen=True)
class LoggedOut:
    reason: str


@dataclass(frozen=True)
class Banned:
    """WhatsApp banned the account for a while (`expire`: seconds from now)."""

    reason: str
    expire: int


Ack = Callable[[], None]


@dataclass(frozen=True)
class Inbound:
    """A message arrived. `sender` wrote it (a person's phone JID when known, else their
    LID); `chat` is where (None: the sender's own chat; a group's JID in a group); `phone`
    and `lid` name the person who wrote it, whichever are known. `body` is its text for a
    person, `data` its structured content by kind (`{"location": {...}}`, `{"poll":
    {...}}`...; see `Instance.MessageReceived`).

    `spool_seq` is the report's position in the engine's durable spool, and `ack` tells the
    engine once the report is recorded (engines without a spool leave both None)."""

    message_id: str
    sender: str
    push_name: str | None
    message_type: str
    body: str
    media: dict[str, Any] | None
    timestamp: int
    data: dict[str, Any] | None = None
    bsuid: str | None = None  # the sender's business-scoped user id (Cloud API)
    username: str | None = None
    chat: str | None = None
    quoted_message_id: str | None = None
    mentions: tuple[str, ...] = ()
    phone: str | None = None
    lid: str | None = None
    spool_seq: int | None = None
    ack: Ack | None = None


@dataclass(frozen=True)
class SentElsewhere:
    """A message the account sent from its phone or another linked device."""

    message_id: str
    to: str
    message_type: str
    body: str
    media: dict[str, Any] | None
    timestamp: int
    origin: str
    spool_seq: int | None = None
    ack: Ack | None = None


@dataclass(frozen=True)
class Undecryptable:
    """A message arrived that could not be decrypted."""

    message_id: str
    sender: str
    participant: str | None
    phone: str | None
    lid: str | None
    unavailable: bool
    timestamp: int
    spool_seq: int | None = None
    ack: Ack | None = None


@dataclass(frozen=True)
class MediaSaved:
    """A received message's media is on disk (`media["id"]`, its name in the uploads
    directory), or failed (`media["error"]`)."""

    message_id: str
    media: dict[str, Any]
    spool_seq: int | None = None
    ack: Ack | None = None


@dataclass(frozen=True)
class Receipt:
    """Our message `message_id` in `remote_jid` was delivered, read or played (by
    `participant`, in a group)."""

    message_id: str
    status: str
    remote_jid: str
    error: dict[str, Any] | None = None  # {code, title, details} of a `failed` status
    participant: str | None = None
    phone: str | None = None
    lid: str | None = None
    spool_seq: int | None = None
    ack: Ack | None = None


@dataclass(frozen=True)
class Notice:
    """Something the network said about the account that is not a message (`kind`:
    `account_update`, `error`, ...), with its details."""

    kind: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Contacts:
    contacts: list[dict[str, Any]]


@dataclass(frozen=True)
class Reaction:
    """`sender` reacted to `message_id` in `chat` (`from_me`: this account did, from
    another device); an empty emoji removes the reaction."""

    message_id: str
    chat: str
    sender: str | None
    emoji: str
    timestamp: int
    from_me: bool = False
    phone: str | None = None
    lid: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class Edit:
    """The author of `message_id` replaced its text with `body`."""

    message_id: str
    chat: str
    sender: str | None
    body: str
    timestamp: int
    from_me: bool = False
    phone: str | None = None
    lid: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class Revocation:
    """The author of `message_id` deleted it for everyone."""

    message_id: str
    chat: str
    sender: str | None
    timestamp: int
    from_me: bool = False
    phone: str | None = None
    lid: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class PollVote:
    """`voter` now chooses `options` in the poll `message_id` (empty: withdrew)."""

    message_id: str
    chat: str
    voter: str | None
    options: tuple[str, ...]
    timestamp: int
    from_me: bool = False
    phone: str | None = None
    lid: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class GroupJoined:
    """This account is in `group`: `reason` "added" (by `by`), "invite" or "sync"."""

    group: Group
    reason: str
    by: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class GroupLeft:
    """This account is no longer in the group: `reason` "left" or "removed" (by `by`)."""

    group_id: str
    reason: str
    by: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class GroupParticipants:
    """`by` added, removed, promoted or demoted (`action`) these participants."""

    group_id: str
    action: str
    participants: tuple[Participant, ...]
    by: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class GroupSettings:
    """`by` changed some of subject, description, announce, locked (only those given)."""

    group_id: str
    changes: dict[str, Any]
    by: str | None = None
    ack: Ack | None = None  # an engine with a spool: tell it once recorded


@dataclass(frozen=True)
class Presence:
    """Someone's presence: available, unavailable, or in a chat composing, recording,
    paused. `last_seen`: seconds since the epoch, when known."""

    jid: str
    state: str
    last_seen: int | None = None
    phone: str | None = None
    lid: str | None = None


@dataclass(frozen=True)
class IdentityPair:
    """The person with phone number `phone` (digits) is also `lid` (`…@lid`)."""

    phone: str
    lid: str


EngineEvent = (
    QrCode
    | Connected
    | Disconnected
    | ClientOutdated
    | LoggedOut
    | Banned
    | Inbound
    | SentElsewhere
    | Undecryptable
    | MediaSaved
    | Receipt
    | Contacts
    | Reaction
    | Edit
    | Revocation
    | PollVote
    | GroupJoined
    | GroupLeft
    | GroupParticipants
    | GroupSettings
    | Presence
    | IdentityPair
    | Notice
)
Emit = Callable[[EngineEvent], None]


@dataclass(frozen=True)
class Media:
    """A file we already hold, to be sent."""

    path: str
    filename: str
    mimetype: str
    size: int
    url: str | None = None  # where it was fetched from, for engines that send by link
    digest: str | None = None  # SHA-256 of the content, when it was received here

    @property
    def kind(self) -> str:
        top = self.mimetype.split("/", 1)[0]
        return top if top in ("image", "video", "audio") else "document"

    def describe(self) -> dict[str, Any]:
        """What events say about the file: an id (its name under the uploads directory)
        and the name it was sent as; never where the server keeps it."""
        return {
            "id": media_id(self.path),
            "filename": self.filename,
            "mimetype": self.mimetype,
            "size": self.size,
        }


def media_id(path: str) -> str:
    """A stored file's id: its name in the uploads directory (no directory, no path)."""
    return PurePath(path).name


@dataclass(frozen=True)
class Sent:
    """What the network took: its message id and time, the chat it really went to (an
    engine may resolve a phone number to another JID), the kind it went out as, the
    recipient's `phone` and `lid` as far as the engine knows them, and in a group the
    participants it went to."""

    message_id: str
    timestamp: int
    chat: str | None = None  # the JID the network delivered to, when it says (may differ)
    message_type: str | None = None  # the type it went out as, when the engine chose
    phone: str | None = None
    lid: str | None = None
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendOptions:
    """What any send may add: a reply to a message of the same chat, and mentions
    (JIDs). An engine honours them only if it has the `Replies` capability."""

    quoted: MessageRef | None = None
    mentions: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.quoted is not None or bool(self.mentions)


NO_OPTIONS = SendOptions()


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "name": self.name,
            "address": self.address,
        }


@dataclass(frozen=True)
class ContactCard:
    """A contact card (vCard) for a person with one phone number (digits)."""

    name: str
    phone: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "phone": self.phone}


@dataclass(frozen=True)
class Poll:
    question: str
    options: tuple[str, ...]
    multiple_answers: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "options": list(self.options),
            "multipleAnswers": self.multiple_answers,
        }


@dataclass(frozen=True)
class Template:
    """A message template approved by Meta (Cloud API): its name, language code and the
    components that fill its parameters, as Meta's API takes them."""

    name: str
    language: str
    components: tuple[dict[str, Any], ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "language": self.language, "components": list(self.components)}


@dataclass(frozen=True)
class Identity:
    """Who a JID is: the phone number (digits) and the LID (`…@lid`), when known."""

    phone: str | None
    lid: str | None


class Engine(ABC):
    """A connection to a WhatsApp network on behalf of one instance."""

    # The JID servers this engine can send to (a person, a group, a LID).
    addressable: tuple[str, ...] = ("s.whatsapp.net", "g.us", "lid")

    @abstractmethod
    def connect(self) -> None:
        """Start connecting; outcomes (QR, connected, failure) arrive through emit."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close the connection without unlinking the session."""

    @abstractmethod
    def logout(self) -> bool | None:
        """Unlink the session; a later connect starts a new pairing. Returns whether the
        network was told (None: the engine has nothing to tell it)."""

    @abstractmethod
    def forget(self) -> None:
        """Disconnect and delete every trace of the session (instance deleted)."""

    def healthy(self) -> bool:
        """False when the connection claims to be up but is dead (checked by SOCKET_CHECK_CRON)."""
        return True

    def session_valid(self) -> bool:
        """False when the stored session can no longer be used (checked by AUTH_CHECK_CRON)."""
        return True

    @abstractmethod
    def send_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Sent:
        """Send text to a JID; return the network's message id. `options` is non-empty only
        for an engine with the `Replies` capability."""

    @abstractmethod
    def send_media(
        self, to: str, media: Media, caption: str, options: SendOptions = NO_OPTIONS
    ) -> Sent:
        """Send a file we hold to a JID; return the network's message id."""
