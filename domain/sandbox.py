"""The sandbox network's own records: its groups, as WhatsApp's servers would keep them,
and what it passes between nodes (reports for an instance paired elsewhere).

A sandbox group is shared by the instances in it, so it belongs to none of them: it is an
aggregate of its own in the event store (and so survives a restart and is the same on
every node). Each member instance records its own view of it (GroupCreated, GroupJoined,
...) from what the sandbox engine reports.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.groups import GroupNotFound, NotGroupAdmin, NotGroupParticipant

_NAMESPACE = uuid5(NAMESPACE_URL, "whatsapp-api:sandbox-groups")


def sandbox_group_id(jid: str) -> UUID:
    return uuid5(_NAMESPACE, jid)


class SandboxGroup(Aggregate):
    """A group of the sandbox network: participants by phone number (digits) with their
    roles, settings, and the current invite code."""

    @staticmethod
    def create_id(jid: str) -> UUID:
        return sandbox_group_id(jid)

    class Created(Aggregate.Created):
        jid: str
        subject: str
        owner: str
        members: dict[str, str]
        created_at: int
        invite_code: str

    @event(Created)
    def __init__(
        self,
        jid: str,
        subject: str,
        owner: str,
        members: dict[str, str],
        created_at: int,
        invite_code: str,
    ) -> None:
        self.jid = jid
        self.subject = subject
        self.description = ""
        self.owner = owner
        self.members = dict(members)  # phone -> member | admin | superadmin
        self.created_at = created_at
        self.invite_code = invite_code
        self.announce = False
        self.locked = False

    # -- checks -------------------------------------------------------------------------

    def check_member(self, phone: str) -> None:
        if phone not in self.members:
            raise NotGroupParticipant(f"{phone} is not a participant of the group {self.jid}")

    def check_admin(self, phone: str) -> None:
        self.check_member(phone)
        if self.members[phone] == "member":
            raise NotGroupAdmin(f"only admins of the group {self.jid} can do this")

    def check_can_send(self, phone: str) -> None:
        self.check_member(phone)
        if self.announce and self.members[phone] == "member":
            raise NotGroupAdmin(f"only admins can send to the group {self.jid}")

    def check_can_edit_info(self, phone: str, changes: dict[str, Any]) -> None:
        """Subject and description: anyone unless locked; announce and locked: admins."""
        if self.locked or "announce" in changes or "locked" in changes:
            self.check_admin(phone)
        else:
            self.check_member(phone)

    def check_invite(self, code: str) -> None:
        if code != self.invite_code:
            raise GroupNotFound("this invite code is not valid (it may have been reset)")

    # -- changes ------------------------------------------------------------------------

    class ParticipantsChanged(Aggregate.Event):
        action: str
        phones: list[str]
        by: str

    @event(ParticipantsChanged)
    def change_participants(self, action: str, phones: list[str], by: str) -> None:
        for phone in phones:
            if action == "add":
                self.members[phone] = "member"
            elif action == "remove":
                self.members.pop(phone, None)
            elif action == "promote" and phone in self.members:
                self.members[phone] = "admin"
            elif action == "demote" and phone in self.members:
                self.members[phone] = "member"

    class SettingsChanged(Aggregate.Event):
        changes: dict[str, Any]
        by: str

    @event(SettingsChanged)
    def change_settings(self, changes: dict[str, Any], by: str) -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    class InviteReset(Aggregate.Event):
        invite_code: str
        by: str

    @event(InviteReset)
    def reset_invite(self, invite_code: str, by: str) -> None:
        self.invite_code = invite_code


class SandboxRelay(Aggregate):
    """One hand-over of the simulated network between nodes (one aggregate each, so that
    relays never contend): reports (a message, its receipts) for the instance paired as
    `to`, stored by the sender's node and delivered by whichever node runs the recipient."""

    class Relayed(Aggregate.Created):
        to: str
        reports: list[dict[str, Any]]

    @event(Relayed)
    def __init__(self, to: str, reports: list[dict[str, Any]]) -> None:
        self.to = to
        self.reports = reports
