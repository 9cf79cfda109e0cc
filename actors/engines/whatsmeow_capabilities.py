"""The whatsmeow engine's capabilities beyond sending text and files (SPEC: "Everything
else WhatsApp does"), and the reports its child's frames become.

Each command is one request to the child process (`whatsmeow_frames`), which asks
neonize (`whatsmeow_features` builds the messages as whatsmeow does). What neonize cannot
do is not declared, and the API answers `400 unsupported_by_engine`: message templates
(a Cloud API feature). Received files are fetched when their message arrives (`MediaSaved`)
and served from there; `download` fetches one whose download failed then.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from actors.engines import whatsmeow_frames as f
from actors.engines.base import (
    Ack,
    ContactCard,
    Edit,
    EngineError,
    EngineEvent,
    GroupJoined,
    GroupLeft,
    GroupParticipants,
    GroupSettings,
    Identity,
    Location,
    Media,
    Poll,
    PollVote,
    Presence,
    Reaction,
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
)
from domain.groups import Group, GroupChanges, Participant, ParticipantResult
from domain.messages import MessageRef

REQUEST_TIMEOUT = 30.0
# whatsmeow waits up to 75 s for each query a send makes (devices, prekeys) and for the
# server's ack (request.go: defaultRequestTimeout); media sends upload first.
SEND_TIMEOUT = 180.0
FETCH_TIMEOUT = 300.0  # a whole file, downloaded and decrypted in one piece


def target(message: MessageRef) -> f.Target:
    return f.Target(
        id=message.message_id, chat=message.chat, author=message.sender, from_me=message.from_me
    )


def reply(options: SendOptions) -> dict[str, Any]:
    """The `quoted` and `mentions` of a send frame."""
    quoted = None
    if options.quoted is not None:
        q = options.quoted
        quoted = f.Quoted(id=q.message_id, author=None if q.from_me else q.sender, body=q.body)
    return {"quoted": quoted, "mentions": list(options.mentions)}


def sent(answer: dict[str, Any], jid: str) -> Sent:
    return Sent(answer["id"], answer["timestamp"], chat=jid, message_type=answer["type"])


class WhatsmeowFeatures(
    Replies,
    Locations,
    ContactCards,
    Polls,
    Reactions,
    Edits,
    Revocations,
    PresenceUpdates,
    ReadReceipts,
    Groups,
    IdentityLookup,
    MediaDownload,
):
    """Mixed into `WhatsmeowEngine`, which provides `_request` and `_resolve`."""

    @abstractmethod
    def _request(
        self, command: Any, timeout: float, sending: bool = False, needs_connection: bool = True
    ) -> Any: ...

    @abstractmethod
    def _resolve(self, to: str) -> str: ...

    def _send(self, to: str, make: Callable[[int, str], f.Send]) -> Sent:
        jid = self._resolve(to)
        return sent(self._request(lambda i: make(i, jid), SEND_TIMEOUT, True), jid)

    def _act(self, make: Callable[[int], f.Request], chat: str) -> Sent:
        return sent(self._request(make, SEND_TIMEOUT, True), chat)

    def send_location(self, to: str, location: Location, options: SendOptions) -> Sent:
        return self._send(
            to,
            lambda i, jid: f.SendLocation(
                id=i,
                to=jid,
                latitude=location.latitude,
                longitude=location.longitude,
                name=location.name,
                address=location.address,
                **reply(options),
            ),
        )

    def send_contacts(self, to: str, cards: tuple[ContactCard, ...], options: SendOptions) -> Sent:
        frames = [f.Card(name=c.name, phone=c.phone) for c in cards]
        return self._send(
            to, lambda i, jid: f.SendContacts(id=i, to=jid, cards=frames, **reply(options))
        )

    def send_poll(self, to: str, poll: Poll, options: SendOptions) -> Sent:
        return self._send(
            to,
            lambda i, jid: f.SendPoll(
                id=i,
                to=jid,
                question=poll.question,
                options=list(poll.options),
                multiple=poll.multiple_answers,
                **reply(options),
            ),
        )

    def vote(self, poll: MessageRef, options: tuple[str, ...]) -> Sent:
        return self._act(
            lambda i: f.Vote(id=i, poll=target(poll), options=list(options)), poll.chat
        )

    def react(self, message: MessageRef, emoji: str) -> Sent:
        return self._act(lambda i: f.React(id=i, target=target(message), emoji=emoji), message.chat)

    def edit(self, message: MessageRef, text: str) -> Sent:
        return self._act(lambda i: f.Edit(id=i, target=target(message), text=text), message.chat)

    def revoke(self, message: MessageRef) -> Sent:
        return self._act(lambda i: f.Revoke(id=i, target=target(message)), message.chat)

    def send_presence(self, state: str, to: str | None) -> None:
        self._request(lambda i: f.SendPresence(id=i, state=state, to=to), REQUEST_TIMEOUT)

    def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        """One receipt per author (whatsmeow MarkRead takes the sender of the messages: in
        a group, each participant gets its own)."""
        by_author: dict[str, list[str]] = {}
        for m in messages:
            if not m.from_me:
                by_author.setdefault(m.sender or chat, []).append(m.message_id)
        for author, ids in by_author.items():
            self._request(
                lambda i, a=author, n=ids: f.MarkRead(id=i, chat=chat, sender=a, ids=n),
                REQUEST_TIMEOUT,
            )

    # -- groups -------------------------------------------------------------------------

    def create_group(self, subject: str, participants: tuple[str, ...]) -> Group:
        answer = self._request(
            lambda i: f.CreateGroup(id=i, subject=subject, participants=list(participants)),
            REQUEST_TIMEOUT,
        )
        return Group.of(answer)

    def group_info(self, group_id: str) -> Group:
        return Group.of(
            self._request(lambda i: f.GetGroup(id=i, group_id=group_id), REQUEST_TIMEOUT)
        )

    def update_group(self, group_id: str, changes: GroupChanges) -> Group:
        answer = self._request(
            lambda i: f.UpdateGroup(id=i, group_id=group_id, **changes.describe()),
            REQUEST_TIMEOUT,
        )
        return Group.of(answer)

    def change_participants(
        self, group_id: str, action: str, participants: tuple[str, ...]
    ) -> tuple[ParticipantResult, ...]:
        answer = self._request(
            lambda i: f.ChangeParticipants(
                id=i, group_id=group_id, action=action, participants=list(participants)
            ),
            REQUEST_TIMEOUT,
        )
        return tuple(ParticipantResult(a["id"], a["status"]) for a in answer)

    def invite_code(self, group_id: str, reset: bool) -> str:
        return str(
            self._request(
                lambda i: f.InviteCode(id=i, group_id=group_id, reset=reset), REQUEST_TIMEOUT
            )
        )

    def join_group(self, code: str) -> Group:
        return Group.of(self._request(lambda i: f.JoinGroup(id=i, code=code), REQUEST_TIMEOUT))

    def leave_group(self, group_id: str) -> None:
        self._request(lambda i: f.LeaveGroup(id=i, group_id=group_id), REQUEST_TIMEOUT)

    def download(self, message: MessageRef) -> Media:
        """A received file that was not fetched when it arrived (whatsmeow fetches each one
        then, up to MAX_FILE_SIZE): the child fetches it now from the message's keys."""
        answer = self._request(
            lambda i: f.FetchMedia(id=i, message_id=message.message_id), FETCH_TIMEOUT
        )
        if answer.get("status") != "saved" or not answer.get("path"):
            why = answer.get("error") or answer.get("status")
            raise EngineError(
                f"The file of message {message.message_id} could not be fetched: {why}",
                "no_media",
                404,
            )
        known = message.media or {}
        return Media(
            path=answer["path"],
            filename=known.get("filename") or Path(answer["path"]).name,
            mimetype=answer.get("mimetype") or known.get("mimetype") or "application/octet-stream",
            size=int(answer.get("size") or 0),
        )

    def lookup_identity(self, jid: str) -> Identity:
        answer = self._request(lambda i: f.LookupIdentity(id=i, jid=jid), REQUEST_TIMEOUT)
        return Identity(answer.get("phone"), answer.get("lid"))


# -- what the child reports -------------------------------------------------------------

# The status of a refused request, by the code the child gives it.
STATUS = {
    "instance_not_connected": 409,
    "not_group_admin": 409,
    "not_group_participant": 409,
    "group_not_found": 404,
    "invalid_invite": 404,
    "no_media": 404,
}


def reports(frame: f.Frame, ack: Ack) -> list[EngineEvent] | None:
    """The reports one of these frames becomes, the last one carrying `ack` (the child
    forgets the frame once it is recorded); None if it is not one of them."""
    out = _reports(frame)
    if out:
        last: Any = out[-1]  # one of the reports with an `ack`
        out[-1] = replace(last, ack=ack)
    return out


def _about(frame: f.Update, report: Callable[..., EngineEvent], *what: Any) -> EngineEvent:
    """A report about an earlier message: which, where, by whom, `what` it says, when."""
    return report(
        frame.id,
        frame.chat,
        frame.sender,
        *what,
        frame.timestamp,
        from_me=frame.from_me,
        phone=frame.phone,
        lid=frame.lid,
    )


def _reports(frame: f.Frame) -> list[EngineEvent] | None:
    match frame:
        case f.Reacted():
            return [_about(frame, Reaction, frame.emoji)]
        case f.Edited():
            return [_about(frame, Edit, frame.body)]
        case f.Revoked():
            return [_about(frame, Revocation)]
        case f.Voted():
            return [_about(frame, PollVote, tuple(frame.options))]
        case f.GroupJoined():
            return [GroupJoined(Group.of(frame.group), frame.reason, frame.by)]
        case f.GroupChanged():
            out: list[EngineEvent] = []
            if frame.changes:
                out.append(GroupSettings(frame.group_id, dict(frame.changes), frame.by))
            for action, people in frame.moves.items():
                out.append(
                    GroupParticipants(
                        frame.group_id,
                        action,
                        tuple(Participant(p["id"], p.get("phone"), p.get("lid")) for p in people),
                        frame.by,
                    )
                )
            if frame.left:
                out.append(GroupLeft(frame.group_id, frame.left, frame.by))
            return out
    return None


def presence(frame: f.Seen) -> Presence:
    return Presence(frame.jid, frame.state, frame.last_seen, phone=frame.phone, lid=frame.lid)


def refusal(code: str, error: str) -> EngineError:
    return EngineError(f"WhatsApp: {error}", code or "whatsapp_error", STATUS.get(code, 502))
