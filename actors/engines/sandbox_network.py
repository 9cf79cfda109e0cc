"""The simulated WhatsApp network the sandbox engines share: who is online under which
number and LID, and its groups (kept in the event store, through `SandboxGroups`).

Every sandbox number has a LID, as every WhatsApp account now has: the one its instance
paired with (`scan` with `{"phone", "lid"}`, recorded in ConnectionOpened), or else one
derived from the number, the same on every node and after every restart. Numbers no
sandbox instance has paired with are not on this WhatsApp: they have no LID.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from actors.engines.base import (
    Edit,
    EngineError,
    EngineEvent,
    Inbound,
    PollVote,
    Presence,
    Reaction,
    Receipt,
    Revocation,
)
from domain.groups import Group, GroupNotFound, Participant
from domain.phone import GROUP_SERVER, LID_SERVER, USER_SERVER, is_group, is_lid, jid_number
from domain.sandbox import SandboxGroup, sandbox_group_id

if TYPE_CHECKING:
    from actors.engines.sandbox import SandboxEngine


# What can travel between nodes: reports of plain fields (group changes carry the group
# as this node's sandbox knows it, and stay on the node that made them).
RELAYABLE = (Inbound, Receipt, Reaction, Edit, Revocation, PollVote, Presence)


def relayable(report: EngineEvent) -> bool:
    return isinstance(report, RELAYABLE)


def lid_for(phone: str) -> str:
    """The LID a sandbox number has unless it paired with one of its own."""
    digest = hashlib.sha256(f"sandbox-lid:{phone}".encode()).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**14 + 10**14}@{LID_SERVER}"


class SandboxGroups:
    """Sandbox groups, loaded from and saved to the event store (handed down by the app).

    One lock serialises changes in this process; a change made at the same time on
    another node meets the store's version check and is tried again once.
    """

    def __init__(self, load: Callable[[UUID], Any], save: Callable[[Sequence[Any]], Any]) -> None:
        self._load = load
        self._save = save
        self._lock = threading.RLock()

    def get(self, jid: str) -> SandboxGroup:
        try:
            group = self._load(sandbox_group_id(jid))
        except AggregateNotFoundError:
            raise GroupNotFound(f"no group {jid}") from None
        if not isinstance(group, SandboxGroup):
            raise GroupNotFound(f"no group {jid}")
        return group

    def create(self, subject: str, owner: str, members: dict[str, str]) -> SandboxGroup:
        jid = f"120363{secrets.randbelow(10**12):012d}@{GROUP_SERVER}"
        group = SandboxGroup(
            jid=jid,
            subject=subject,
            owner=owner,
            members=members,
            created_at=int(time.time()),
            invite_code=new_invite_code(jid),
        )
        self._save(group.collect_events())
        return group

    def change(self, jid: str, change: Callable[[SandboxGroup], None]) -> SandboxGroup:
        """Load the group, apply `change` (which checks and calls its commands), save."""
        with self._lock:
            for attempt in (1, 2):
                group = self.get(jid)
                change(group)
                try:
                    self._save(group.collect_events())
                except IntegrityError:
                    if attempt == 2:
                        raise
                    continue
                return group
        raise AssertionError("unreachable")

    def by_invite(self, code: str) -> SandboxGroup:
        """The group an invite code opens (GroupNotFound if it is not valid now)."""
        jid = invite_group(code)
        if jid is None:
            raise GroupNotFound("this invite code is not valid")
        group = self.get(jid)
        group.check_invite(code)
        return group


def new_invite_code(jid: str) -> str:
    """An invite code that names its group (so no index is needed) and a secret part."""
    raw = f"{jid_number(jid)}.{secrets.token_urlsafe(12)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invite_group(code: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    digits, _, secret = raw.partition(".")
    if not digits.isdigit() or not secret:
        return None
    return f"{digits}@{GROUP_SERVER}"


class Relay(Protocol):
    """Passes reports to numbers paired on other nodes (actors/engines/sandbox_relay.py)."""

    def send(self, phone: str, reports: list[EngineEvent]) -> bool:
        """Pass `reports` on to the instance paired as `phone` elsewhere; False if no
        sandbox instance is paired as `phone`."""


class SandboxNetwork:
    """Who is online under which number (on this node), the LIDs of the numbers, the
    groups, and the way to the other nodes (`relay`)."""

    def __init__(self, groups: SandboxGroups, uploads: Path | None = None) -> None:
        self.groups = groups
        self.uploads = uploads  # where the server keeps files (a sent one's `id` is its name)
        self.relay: Relay | None = None  # several nodes
        self._lock = threading.Lock()
        self._online: dict[str, SandboxEngine] = {}
        self._lids: dict[str, str] = {}  # phone -> LID, for every number paired here
        self._phones: dict[str, str] = {}  # LID -> phone

    def deliver(self, phone: str, report: EngineEvent) -> bool:
        """Deliver `report` to the instance paired as `phone`: True if it is online on this
        node; one on another node gets it through the relay (and answers the same way)."""
        engine = self.find(phone)
        if engine is not None:
            return engine._deliver(report)
        if self.relay is not None and relayable(report):
            self.relay.send(phone, [report])
        return False

    def relayed(self, phone: str, reports: list[EngineEvent]) -> None:
        """Reports another node passed on for `phone`: a message is delivered and its
        `delivered` receipt goes back the same way; anything else is delivered."""
        engine = self.find(phone)
        if engine is None:
            return  # not online here (any more): like a number that is offline
        for report in reports:
            if not engine._deliver(report) or not isinstance(report, Inbound):
                continue
            author = report.phone or (None if is_lid(report.sender) else jid_number(report.sender))
            if author is None or self.relay is None:
                continue
            me = f"{phone}@{USER_SERVER}"
            receipt = (
                Receipt(report.message_id, "delivered", report.chat, participant=me, phone=phone)
                if report.chat is not None and is_group(report.chat)
                else Receipt(report.message_id, "delivered", me, phone=phone, lid=engine.lid)
            )
            self.relay.send(author, [receipt])

    def join(self, phone: str, engine: SandboxEngine, lid: str | None = None) -> str:
        """Put `engine` online as `phone`; return the number's LID."""
        with self._lock:
            holder = self._online.get(phone)
            if holder is not None and holder is not engine:
                raise EngineError(
                    f"number {phone} is already paired with another sandbox instance",
                    code="phone_in_use",
                )
            own = lid or self._lids.get(phone) or lid_for(phone)
            other = self._phones.get(own)
            if other is not None and other != phone:
                raise EngineError(f"LID {own} belongs to another sandbox number", "lid_in_use")
            self._online[phone] = engine
            self._lids[phone] = own
            self._phones[own] = phone
            return own

    def leave(self, phone: str, engine: SandboxEngine) -> None:
        with self._lock:
            if self._online.get(phone) is engine:
                del self._online[phone]

    def find(self, phone: str) -> SandboxEngine | None:
        with self._lock:
            return self._online.get(phone)

    def online(self) -> list[SandboxEngine]:
        with self._lock:
            return list(self._online.values())

    def find_jid(self, jid: str) -> SandboxEngine | None:
        """The online engine of the person a phone JID or a LID names."""
        phone = self.phone_of(jid)
        return self.find(phone) if phone is not None else None

    def lid_of(self, phone: str) -> str | None:
        """The LID of a sandbox number (None for a number no instance paired with)."""
        with self._lock:
            return self._lids.get(phone)

    def phone_of(self, jid: str) -> str | None:
        """The number a JID names: its own digits, or, for a LID, the number known to have
        it (None when no sandbox number does)."""
        if not is_lid(jid):
            return jid_number(jid)
        with self._lock:
            return self._phones.get(jid)

    def person(self, jid: str) -> tuple[str | None, str | None]:
        """(phone, lid) of the person a JID names, as far as the network knows."""
        phone = self.phone_of(jid)
        if is_lid(jid):
            return phone, jid
        return phone, self.lid_of(phone) if phone else None

    def participant(self, phone: str, role: str) -> Participant:
        return Participant(f"{phone}@{USER_SERVER}", phone, self.lid_of(phone), role)

    def group(self, stored: SandboxGroup) -> Group:
        """A sandbox group as its participants see it."""
        return Group(
            id=stored.jid,
            subject=stored.subject,
            description=stored.description,
            owner=stored.owner,
            announce=stored.announce,
            locked=stored.locked,
            created_at=stored.created_at,
            participants=tuple(
                self.participant(phone, role) for phone, role in sorted(stored.members.items())
            ),
        )
