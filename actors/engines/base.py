"""The one small interface every engine (sandbox, whatsmeow, cloud) implements.

An engine reports what happens on its connection by calling `emit` with one of the
events below, from any thread; the instance actor turns them into domain events.
Commands are called from the instance actor's thread only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any


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
    """A message that arrived. `sender` is the chat (a person's phone JID when known, else
    their LID; a group's JID); `participant`, `phone` and `lid` say who wrote it. `body` is
    its text for a person, `data` its structured content by kind (see
    `Instance.MessageReceived`).

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
    participant: str | None = None
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
    message_id: str
    status: str
    remote_jid: str
    error: dict[str, Any] | None = None  # {code, title, details} of a `failed` status
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
    engine may resolve a phone number to another JID), and the kind it went out as."""

    message_id: str
    timestamp: int
    chat: str | None = None  # the JID the network delivered to, when it says (may differ)
    message_type: str | None = None  # the type it went out as, when the engine chose


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
    def send_text(self, to: str, text: str) -> Sent:
        """Send text to a JID; return the network's message id."""

    @abstractmethod
    def send_media(self, to: str, media: Media, caption: str) -> Sent:
        """Send a file we hold to a JID; return the network's message id."""
