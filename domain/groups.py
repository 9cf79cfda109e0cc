"""WhatsApp groups as values: a group, its participants, and the changes made to them.

Events carry these as plain dicts (`describe()`), so that a stored event never depends
on a class that may change; `Group.of` reads one back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from domain.phone import phone_jid

ROLES = ("member", "admin", "superadmin")
PARTICIPANT_ACTIONS = ("add", "remove", "promote", "demote")
SETTINGS = ("subject", "description", "announce", "locked")

MAX_SUBJECT = 100
MAX_DESCRIPTION = 2048


class GroupError(Exception):
    """Base of the errors a group rule raises."""


class NotGroupAdmin(GroupError):
    """Only an admin may change this (WhatsApp answers 403)."""


class NotGroupParticipant(GroupError):
    """The instance is not (or no longer) a participant of the group."""


class GroupNotFound(GroupError):
    """No such group, or not one this instance knows."""


@dataclass(frozen=True)
class Participant:
    """A member of a group: `id` is the JID WhatsApp names it by (a phone JID or a LID);
    `phone` (digits) and `lid` (`…@lid`) are filled in whenever known."""

    id: str
    phone: str | None = None
    lid: str | None = None
    role: str = "member"

    @property
    def admin(self) -> bool:
        return self.role in ("admin", "superadmin")

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "phone": self.phone, "lid": self.lid, "role": self.role}


@dataclass(frozen=True)
class Group:
    """What a participant knows of a group. `created_at` is seconds since the epoch."""

    id: str
    subject: str
    owner: str | None
    created_at: int
    description: str = ""
    announce: bool = False  # only admins send
    locked: bool = False  # only admins edit the subject, description and settings
    participants: tuple[Participant, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "description": self.description,
            "owner": self.owner,
            "announce": self.announce,
            "locked": self.locked,
            "created_at": self.created_at,
            "participants": [p.describe() for p in self.participants],
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> Group:
        return cls(
            id=data["id"],
            subject=data["subject"],
            description=data.get("description", ""),
            owner=data.get("owner"),
            announce=bool(data.get("announce", False)),
            locked=bool(data.get("locked", False)),
            created_at=int(data.get("created_at", 0)),
            participants=tuple(Participant(**p) for p in data.get("participants", [])),
        )

    def participant(self, jid: str) -> Participant | None:
        """The participant named by `jid`, whether by its phone JID or its LID."""
        for p in self.participants:
            if jid in (p.id, p.lid) or (p.phone is not None and jid == phone_jid(p.phone)):
                return p
        return None

    def with_changes(self, changes: GroupChanges) -> Group:
        return replace(self, **changes.describe())


@dataclass(frozen=True)
class GroupChanges:
    """Settings to change; None leaves one as it is."""

    subject: str | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None

    def describe(self) -> dict[str, Any]:
        """Only what changes."""
        return {k: getattr(self, k) for k in SETTINGS if getattr(self, k) is not None}


@dataclass(frozen=True)
class ParticipantResult:
    """The outcome of one participant change: `status` is "ok" or why not
    ("not_on_whatsapp", "already_participant", "not_participant", "not_allowed")."""

    id: str
    status: str
