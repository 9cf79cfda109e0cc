"""Messages an instance already holds, and the rules for acting on them.

A reaction, an edit, a revocation, a vote, a reply or a read mark names a message the
instance sent or received. `MessageRef` is that message as the read models know it
(the aggregate keeps no message data); the checks here are WhatsApp's rules, raised as
the errors below and answered 404 or 409 by the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# WhatsApp lets the author edit a text message for 15 minutes after sending it.
EDIT_WINDOW_SECONDS = 15 * 60

# Message types whose text is the message (what an edit may replace).
TEXT_TYPES = frozenset({"text"})

MAX_POLL_OPTIONS = 12
MAX_CONTACT_CARDS = 10


class MessageError(Exception):
    """Base of the errors a message rule raises."""


class MessageNotFound(MessageError):
    """The instance never sent or received a message with this id (in this chat)."""


class NotOwnMessage(MessageError):
    """Only the author may edit or revoke a message."""


class NotEditable(MessageError):
    """Only text messages can be edited (and not once revoked)."""


class EditWindowClosed(MessageError):
    """The edit window (15 minutes after sending) has passed."""


class NotAPoll(MessageError):
    """A vote names a message that is not a poll."""


class InvalidVote(MessageError):
    """A vote names an option the poll does not have, or several in a one-answer poll."""


def changed_by_author(
    written_by_me: bool, author: tuple[str | None, ...], by_me: bool, by: tuple[str | None, ...]
) -> bool:
    """Whether an edit or a revocation of a message comes from its author: this account,
    for its own messages; else someone named (JID, phone digits, LID) as its author was.
    A change names its message by id alone, and anyone a message reached knows its id:
    WhatsApp's apps take a change only from the author (and a group admin's revocation)."""
    if written_by_me or by_me:
        return written_by_me and by_me
    names = {name for name in author if name}
    return any(name in names for name in by if name)


@dataclass(frozen=True)
class MessageRef:
    """A message the instance sent or received, as the read models hold it.

    `chat` is the chat it is in (a group's JID in a group); `sender` its author (the
    participant in a group, the other party in a one-to-one chat, None for our own).
    `sent_at` is seconds since the epoch. `data` is the structured content by kind
    (`{"poll": {question, options, multipleAnswers}}`...); `media` the stored file's
    description.
    """

    message_id: str
    chat: str
    sender: str | None
    from_me: bool
    message_type: str
    body: str
    sent_at: float
    data: dict[str, Any] | None = None
    media: dict[str, Any] | None = field(default=None, compare=False)
    revoked: bool = False
    phone: str | None = None  # the other party's (the author's, in a group), when known
    lid: str | None = None

    def check_editable(self, now: float) -> None:
        """An edit must be ours, of a text message, within the edit window."""
        if not self.from_me:
            raise NotOwnMessage(f"message {self.message_id} was not sent by this instance")
        if self.revoked or self.message_type not in TEXT_TYPES:
            raise NotEditable(
                f"message {self.message_id} is a {self.message_type} message; "
                "only text messages can be edited"
                if not self.revoked
                else f"message {self.message_id} was revoked"
            )
        if now - self.sent_at > EDIT_WINDOW_SECONDS:
            raise EditWindowClosed(
                f"message {self.message_id} was sent more than "
                f"{EDIT_WINDOW_SECONDS // 60} minutes ago and can no longer be edited"
            )

    def check_revocable(self) -> None:
        """Revoking for everyone is the author's alone."""
        if not self.from_me:
            raise NotOwnMessage(f"message {self.message_id} was not sent by this instance")

    def check_vote(self, options: list[str]) -> None:
        """A vote names options of this poll (at most one unless it allows several)."""
        poll = (self.data or {}).get("poll")
        if self.message_type != "poll" or not poll:
            raise NotAPoll(f"message {self.message_id} is not a poll")
        names = set(poll.get("options", []))
        unknown = [o for o in options if o not in names]
        if unknown:
            raise InvalidVote(
                f"the poll has no option {unknown[0]!r} (options: {', '.join(sorted(names))})"
            )
        if len(options) > 1 and not poll.get("multipleAnswers", False):
            raise InvalidVote("this poll takes one answer only")
