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

from actors.engines.base import Engine, EngineError, Media, Sent


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
    def scan(self, phone: str | None) -> str:
        """The phone scans the current QR code: pair as `phone` (made up if None);
        return the paired number."""

    @abstractmethod
    def inbound(self, sender_phone: str, text: str, push_name: str | None) -> str:
        """A text from an outside number arrives; return its message id."""

    @abstractmethod
    def drop(self) -> None:
        """The connection drops; it comes back by itself shortly after."""
