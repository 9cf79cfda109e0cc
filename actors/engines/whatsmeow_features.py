"""Everything else WhatsApp does, on whatsmeow: what the child reads out of neonize's
events and what it asks neonize to send.

Inbound, a neonize MessageEv is not always a new message: it may be a reaction, an edit,
a revocation or a poll vote naming an earlier one (`map_update`). A new message may quote
one and mention people, or be a location, contact cards or a poll (`content`). Receipts
in a group name the participant; presence, typing and group notifications are reports of
their own. Outbound, the messages handed to neonize's `send_message` are built the way
whatsmeow's own builders build them (send.go, msgsecret.go; cited beside each), so that
they can be checked without a connection.

This module is below `whatsmeow_child` (which imports it) and imports neonize lazily, as
the child does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from actors.engines import whatsmeow_frames as f

USER_SERVER, LID_SERVER, GROUP_SERVER = "s.whatsapp.net", "lid", "g.us"


def jid_text(jid: Any) -> str | None:
    """`user@server` without the device part (whatsmeow's ToNonAD), None when empty."""
    if jid is None or not jid.User:
        return None
    return f"{jid.User}@{jid.Server}"


def seconds(timestamp: int) -> int:
    """Message times come in milliseconds (goneonize EncodeMessageInfo: UnixMilli)."""
    value = int(timestamp)
    return value // 1000 if value > 10**11 else value


def digits(jid: str | None) -> str | None:
    return jid.split("@", 1)[0] if jid else None


class PeopleLike(Protocol):
    def person(self, main: Any, alt: Any) -> tuple[str | None, str | None]: ...

    def source(self, source: Any) -> tuple[str, str | None, str | None, str | None] | None: ...


# -- what a message carries -----------------------------------------------------------

# The parts of a message that carry a ContextInfo (the quoted message, the mentions).
_CONTEXT_PARTS = (
    "extendedTextMessage",
    "imageMessage",
    "videoMessage",
    "audioMessage",
    "documentMessage",
    "stickerMessage",
    "locationMessage",
    "contactMessage",
    "contactsArrayMessage",
    "pollCreationMessage",
    "pollCreationMessageV2",
    "pollCreationMessageV3",
)
POLL_PARTS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3")


def context(message: Any) -> tuple[str | None, list[str]]:
    """(id of the quoted message, JIDs mentioned) of a message: its ContextInfo's
    stanzaID and mentionedJID (WAWebProtobufsE2E.proto, ContextInfo)."""
    for part in _CONTEXT_PARTS:
        if message.HasField(part) and getattr(message, part).HasField("contextInfo"):
            info = getattr(message, part).contextInfo
            return info.stanzaID or None, list(info.mentionedJID)
    return None, []


def vcard_phone(vcard: str) -> str | None:
    """The first number of a vCard: its `waid` parameter (WhatsApp writes
    `TEL;type=CELL;waid=15551234567:+1 555-123-4567`), else the TEL value's digits."""
    for line in vcard.splitlines():
        name, _, value = line.partition(":")
        if not name.upper().startswith(("TEL", "ITEM1.TEL")) and ".TEL" not in name.upper():
            continue
        for parameter in name.split(";"):
            key, _, found = parameter.partition("=")
            if key.lower() == "waid" and found.isdigit():
                return found
        number = "".join(c for c in value if c.isdigit())
        if number:
            return number
    return None


def content(message: Any) -> tuple[str, str, dict[str, Any]] | None:
    """(type, body, data) of a location, contact cards or a poll; None for anything else.
    `data` has the shape every engine reports (`{"location": {...}}`, `{"contacts":
    [...]}`, `{"poll": {...}}`)."""
    if message.HasField("locationMessage"):
        place = message.locationMessage
        location = {
            "latitude": place.degreesLatitude,
            "longitude": place.degreesLongitude,
            "name": place.name or None,
            "address": place.address or None,
        }
        return "location", place.name or "", {"location": location}
    cards: list[Any] = []
    if message.HasField("contactMessage"):
        cards = [message.contactMessage]
    elif message.HasField("contactsArrayMessage"):
        cards = list(message.contactsArrayMessage.contacts)
    if cards:
        described = [{"name": c.displayName, "phone": vcard_phone(c.vcard)} for c in cards]
        return "contacts", ", ".join(c["name"] for c in described), {"contacts": described}
    for part in POLL_PARTS:
        if message.HasField(part):
            poll = getattr(message, part)
            options = [o.optionName for o in poll.options]
            # selectableOptionsCount 0 means any number (whatsmeow BuildPollCreation).
            multiple = poll.selectableOptionsCount != 1
            data = {"question": poll.name, "options": options, "multipleAnswers": multiple}
            return "poll", poll.name, {"poll": data}
    return None


def text_of(message: Any) -> str:
    """The text of a message (an edit's new content), or its caption."""
    if message.conversation:
        return str(message.conversation)
    if message.HasField("extendedTextMessage"):
        return str(message.extendedTextMessage.text)
    for part in ("imageMessage", "videoMessage", "documentMessage"):
        if message.HasField(part):
            return str(getattr(message, part).caption)
    return ""


# -- polls: option names by hash ------------------------------------------------------


class PollOptions:
    """The options of the polls this session has seen, by poll message id, so that a vote
    (which names options by their SHA-256 only: whatsmeow msgsecret.go, HashPollOptions)
    can be reported by name. Kept in the session directory, the most recent polls only."""

    def __init__(self, path: Path, size: int = 2000) -> None:
        self.path = path
        self.size = size
        self._lock = threading.Lock()
        self._polls: OrderedDict[str, list[str]] = OrderedDict()
        with contextlib.suppress(OSError, ValueError):
            for poll_id, options in json.loads(path.read_text()).items():
                self._polls[str(poll_id)] = [str(o) for o in options]

    def remember(self, poll_id: str, options: Iterable[str]) -> None:
        with self._lock:
            self._polls[poll_id] = list(options)
            self._polls.move_to_end(poll_id)
            while len(self._polls) > self.size:
                self._polls.popitem(last=False)
            temporary = self.path.with_suffix(".tmp")
            with contextlib.suppress(OSError):
                temporary.write_text(json.dumps(self._polls))
                os.replace(temporary, self.path)

    def names(self, poll_id: str, hashes: Iterable[bytes]) -> list[str] | None:
        """The options these hashes name; None if the poll or one of them is unknown."""
        with self._lock:
            options = self._polls.get(poll_id)
        if options is None:
            return None
        by_hash = {hashlib.sha256(o.encode()).digest(): o for o in options}
        names = [by_hash.get(bytes(h)) for h in hashes]
        return None if None in names else [n for n in names if n is not None]


# -- media to fetch again --------------------------------------------------------------


class Retries:
    """The media messages whose file was not fetched when they arrived (the download
    failed, or there was no session to download with), kept in the session directory so
    that the file can be fetched when it is asked for: whatsmeow downloads from the
    message's own keys and path (download.go, DownloadAny). The latest `size` only."""

    def __init__(self, directory: Path, size: int = 500) -> None:
        self.directory = directory
        self.size = size

    def _file(self, message_id: str) -> Path:
        name = hashlib.sha256(message_id.encode()).hexdigest()[:32]
        return self.directory / name

    def save(self, job: f.PendingDownload) -> None:
        from actors.engines.frames import encode

        with contextlib.suppress(OSError):
            self.directory.mkdir(mode=0o700, exist_ok=True)
            self._file(job.id).write_bytes(encode(job))
            kept = sorted(self.directory.iterdir(), key=lambda p: p.stat().st_mtime)
            for old in kept[: max(0, len(kept) - self.size)]:
                old.unlink(missing_ok=True)

    def load(self, message_id: str) -> f.PendingDownload | None:
        import msgspec

        from actors.engines.frames import read_record

        try:
            with self._file(message_id).open("rb") as stored:
                data = read_record(stored)
        except (OSError, ValueError):
            return None
        if data is None:
            return None
        try:
            job = msgspec.msgpack.decode(data, type=f.PendingDownload)
        except msgspec.DecodeError:
            return None
        return job if job.id == message_id else None

    def drop(self, message_id: str) -> None:
        self._file(message_id).unlink(missing_ok=True)


# -- updates to earlier messages ------------------------------------------------------

Decrypt = Callable[[Any], list[bytes]]


def map_update(
    event: Any, people: PeopleLike, polls: PollOptions | None, decrypt: Decrypt | None
) -> f.Frame | bool:
    """A MessageEv that changes an earlier message, as a frame: a reaction (key.ID names
    the message; an empty text removes it), an edit (a protocolMessage MESSAGE_EDIT, which
    whatsmeow unwraps from editedMessage: events.go, UnwrapRaw), a revocation (REVOKE), a
    poll vote (pollUpdateMessage, decrypted with the poll's secret). True for another
    protocol message (nothing to report); False when it is not an update at all."""
    message = event.Message
    is_update = message.HasField("reactionMessage") or message.HasField("pollUpdateMessage")
    if not is_update and not message.HasField("protocolMessage"):
        return False
    info = event.Info
    where = people.source(info.MessageSource)
    if where is None:
        return True
    chat, participant, phone, lid = where
    from_me = bool(info.MessageSource.IsFromMe)
    who: dict[str, Any] = dict(
        chat=chat,
        sender=None if from_me else participant or chat,
        phone=phone,
        lid=lid,
        from_me=from_me,
    )
    if message.HasField("reactionMessage"):
        reaction = message.reactionMessage
        if not reaction.key.ID:
            return True
        at = seconds(reaction.senderTimestampMS) if reaction.senderTimestampMS else None
        return f.Reacted(
            id=reaction.key.ID,
            emoji=reaction.text,
            timestamp=at or seconds(info.Timestamp),
            **who,
        )
    if message.HasField("pollUpdateMessage"):
        update = message.pollUpdateMessage
        poll_id = update.pollCreationMessageKey.ID
        if not poll_id or decrypt is None or polls is None:
            return True
        try:
            hashes = decrypt(event)
        except Exception:
            return True  # not our poll's secret (a poll from before pairing): unreadable
        options = polls.names(poll_id, hashes)
        if options is None:
            return True
        return f.Voted(id=poll_id, options=options, timestamp=seconds(info.Timestamp), **who)
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ProtocolMessage

    protocol = message.protocolMessage
    if not protocol.key.ID:
        return True
    if protocol.type == ProtocolMessage.REVOKE:
        return f.Revoked(id=protocol.key.ID, timestamp=seconds(info.Timestamp), **who)
    if protocol.type == ProtocolMessage.MESSAGE_EDIT:
        at = seconds(protocol.timestampMS) if protocol.timestampMS else seconds(info.Timestamp)
        return f.Edited(
            id=protocol.key.ID, body=text_of(protocol.editedMessage), timestamp=at, **who
        )
    return True


# -- receipts, presence, groups -------------------------------------------------------


def receipt_person(event: Any, people: PeopleLike) -> tuple[str | None, str | None, str | None]:
    """(participant, phone digits, lid) of a receipt in a group: whatsmeow's Receipt names
    the reader in its MessageSource's Sender (receipt.go, parseReceipt); None outside groups."""
    source = event.MessageSource
    if not source.IsGroup:
        return None, None, None
    phone, lid = people.person(source.Sender, source.SenderAlt)
    return phone or lid, digits(phone), lid


def map_presence(event: Any, people: PeopleLike) -> f.Seen | None:
    """A PresenceEv (someone's online state; LastSeen in seconds, 0 when hidden)."""
    phone, lid = people.person(event.From, None)
    jid = phone or lid
    if jid is None:
        return None
    state = "unavailable" if event.Unavailable else "available"
    last_seen = int(event.LastSeen) or None
    return f.Seen(jid=jid, state=state, last_seen=last_seen, phone=digits(phone), lid=lid)


def map_chat_presence(event: Any, people: PeopleLike) -> f.Seen | None:
    """A ChatPresenceEv: typing (COMPOSING; with AUDIO media, recording) or PAUSED."""
    from neonize.proto.Neonize_pb2 import ChatPresence

    source = event.MessageSource
    phone, lid = people.person(source.Sender, source.SenderAlt)
    jid = phone or lid
    if jid is None or source.IsFromMe:
        return None
    if event.State == ChatPresence.COMPOSING:
        state = "recording" if event.Media == ChatPresence.AUDIO else "composing"
    else:
        state = "paused"
    chat = jid_text(source.Chat) if source.IsGroup else None
    return f.Seen(jid=jid, state=state, chat=chat, phone=digits(phone), lid=lid)


def participant(p: Any, people: PeopleLike) -> dict[str, Any]:
    """A GroupParticipant as the engine reports one: {id, phone, lid, role}."""
    # The server names a participant by JID and, when it can, its other form too.
    other = p.PhoneNumber if jid_text(p.PhoneNumber) else p.LID if jid_text(p.LID) else None
    phone, lid = people.person(p.JID, other)
    role = "superadmin" if p.IsSuperAdmin else "admin" if p.IsAdmin else "member"
    return {"id": jid_text(p.JID) or "", "phone": digits(phone), "lid": lid, "role": role}


def group(info: Any, people: PeopleLike) -> dict[str, Any]:
    """A neonize GroupInfo as `domain.groups.Group.describe()` has it."""
    return {
        "id": jid_text(info.JID) or "",
        "subject": info.GroupName.Name,
        "description": info.GroupTopic.Topic,
        "owner": jid_text(info.OwnerJID),
        "announce": bool(info.GroupAnnounce.IsAnnounce),
        "locked": bool(info.GroupLocked.isLocked),
        "created_at": seconds(info.GroupCreated) if info.GroupCreated else 0,
        "participants": [participant(p, people) for p in info.Participants],
    }


class Requested:
    """Groups this account changed through the API lately: the instance recorded those
    changes when it made them, so WhatsApp's notification of the same change is not
    reported again (changes made from the phone are)."""

    JOINING = "*join"

    def __init__(self, window: float = 120.0) -> None:
        self.window = window
        self._at: dict[str, float] = {}
        self._lock = threading.Lock()

    def mark(self, key: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._at = {k: t for k, t in self._at.items() if now - t < self.window}
            self._at[key] = now

    def __contains__(self, key: object) -> bool:
        with self._lock:
            at = self._at.get(str(key))
        return at is not None and time.monotonic() - at < self.window


def map_joined(
    event: Any, people: PeopleLike, requested: Requested | None = None
) -> f.GroupJoined | None:
    """JoinedGroupEv: we are in a group (whatsmeow group.go, handleGroupCreate; Reason
    "invite" when we used a link). A group we created ourselves (CreateKey set) or joined
    through the API was recorded then."""
    if event.CreateKey:
        return None
    if requested is not None and event.Reason == "invite" and Requested.JOINING in requested:
        return None
    reason = "invite" if event.Reason == "invite" else "added"
    by = jid_text(event.Sender) if event.HasField("Sender") else None
    return f.GroupJoined(group=group(event.GroupInfo, people), reason=reason, by=by)


def map_group_info(
    event: Any, people: PeopleLike, me: set[str], requested: Requested | None = None
) -> f.GroupChanged | None:
    """GroupInfoEvent: settings and participants changed (whatsmeow group.go,
    parseGroupNotification). `me` holds this account's JIDs, to tell that we left."""
    by = jid_text(event.Sender) if event.HasField("Sender") else None
    group_id = jid_text(event.JID) or ""
    if requested is not None and by in me and group_id in requested:
        return None
    changes: dict[str, Any] = {}
    if event.HasField("Name") and event.Name.Name:
        changes["subject"] = event.Name.Name
    if event.HasField("Topic"):
        changes["description"] = "" if event.Topic.TopicDeleted else event.Topic.Topic
    if event.HasField("Announce"):
        changes["announce"] = bool(event.Announce.IsAnnounce)
    if event.HasField("Locked"):
        changes["locked"] = bool(event.Locked.isLocked)

    def people_of(jids: Any) -> list[dict[str, Any]]:
        out = []
        for jid in jids:
            phone, lid = people.person(jid, None)
            out.append({"id": jid_text(jid) or "", "phone": digits(phone), "lid": lid})
        return out

    moves = {
        "add": people_of(event.Join),
        "remove": people_of(event.Leave),
        "promote": people_of(event.Promote),
        "demote": people_of(event.Demote),
    }
    left = None
    if any(p["id"] in me or p["lid"] in me for p in moves["remove"]):
        left = "left" if by in me else "removed"
    moves = {k: v for k, v in moves.items() if v}
    if not changes and not moves:
        return None
    return f.GroupChanged(group_id=group_id, changes=changes, moves=moves, left=left, by=by)


# -- what WhatsApp answers ------------------------------------------------------------

# whatsmeow errors.go: the errors of group calls, and the IQ errors of any query
# ("info query returned status 403: forbidden"), as the codes the API answers with.
_ERRORS = (
    ("that group does not exist", "group_not_found"),
    ("you're not participating in that group", "not_group_participant"),
    ("that group invite link is not valid", "invalid_invite"),
    ("that group invite link has been revoked", "invalid_invite"),
    ("status 403", "not_group_admin"),
    ("status 404", "group_not_found"),
)


def error_code(error: str) -> str:
    """The API's code for a neonize error's text ("" when it is no known refusal)."""
    for text, code in _ERRORS:
        if text in error:
            return code
    return ""


# The error attribute of each participant in the answer to a participant change (whatsmeow
# group.go, parseParticipant): 409 already in the group, 404 not in it, 403 the person's
# privacy settings refuse (an invite is needed), 408 they left recently, 401 blocked.
_PARTICIPANT_ERRORS = {0: "ok", 409: "already_participant", 404: "not_participant"}


def participant_status(error: int) -> str:
    return _PARTICIPANT_ERRORS.get(int(error), "not_allowed")


# -- what goes out --------------------------------------------------------------------


def quoted_context(quoted: f.Quoted | None, mentions: list[str], me: str | None) -> Any | None:
    """The ContextInfo of a reply and its mentions, as neonize's `_make_quoted_message`
    builds it: stanzaID, the author as participant (ours when we wrote it), the quoted
    message itself (here, its text: what the recipient's app shows in the reply)."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, Message

    if quoted is None and not mentions:
        return None
    info = ContextInfo(mentionedJID=mentions)
    if quoted is not None:
        info.stanzaID = quoted.id
        author = quoted.author or me
        if author:
            info.participant = author
        info.quotedMessage.CopyFrom(Message(conversation=quoted.body))
    return info


def with_context(message: Any, info: Any | None) -> Any:
    """`message` with `info` set on its content part; a plain conversation becomes an
    extendedTextMessage, which is the part that carries one."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ExtendedTextMessage, Message

    if info is None:
        return message
    if message.conversation:
        message = Message(extendedTextMessage=ExtendedTextMessage(text=message.conversation))
    for part in _CONTEXT_PARTS:
        if message.HasField(part):
            getattr(message, part).contextInfo.MergeFrom(info)
            return message
    return message


def location_message(place: f.SendLocation) -> Any:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import LocationMessage, Message

    return Message(
        locationMessage=LocationMessage(
            degreesLatitude=place.latitude,
            degreesLongitude=place.longitude,
            name=place.name or None,
            address=place.address or None,
        )
    )


def vcard(name: str, phone: str) -> str:
    """A vCard for one number, as WhatsApp writes them (the waid parameter is what makes
    the app offer "Message" on the card)."""
    clean = name.replace("\r", " ").replace("\n", " ").replace(";", ",")
    return (
        "BEGIN:VCARD\nVERSION:3.0\n"
        f"N:;{clean};;;\nFN:{clean}\n"
        f"TEL;type=CELL;type=VOICE;waid={phone}:+{phone}\n"
        "END:VCARD"
    )


def contacts_message(cards: list[f.Card]) -> Any:
    """One card as a contactMessage, several as a contactsArrayMessage (what the app sends)."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        ContactMessage,
        ContactsArrayMessage,
        Message,
    )

    built = [ContactMessage(displayName=c.name, vcard=vcard(c.name, c.phone)) for c in cards]
    if len(built) == 1:
        return Message(contactMessage=built[0])
    return Message(
        contactsArrayMessage=ContactsArrayMessage(
            displayName=f"{len(built)} contacts", contacts=built
        )
    )


def poll_message(question: str, options: list[str], multiple: bool) -> Any:
    """whatsmeow msgsecret.go, BuildPollCreation: the options, SelectableOptionsCount (0:
    any number), and a random 32-byte MessageSecret, from which the voters' keys derive
    (whatsmeow stores it when the message is sent, so that votes can be decrypted)."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message, PollCreationMessage

    poll = PollCreationMessage(
        name=question,
        options=[PollCreationMessage.Option(optionName=o) for o in options],
        selectableOptionsCount=0 if multiple else 1,
    )
    message = Message(pollCreationMessage=poll)
    message.messageContextInfo.messageSecret = os.urandom(32)
    return message


def message_key(target: f.Target, own: set[str]) -> Any:
    """whatsmeow send.go, BuildMessageKey: FromMe unless the author is someone else, and
    then, outside one-to-one chats, the author as Participant."""
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey

    key = MessageKey(remoteJID=target.chat, fromMe=True, ID=target.id)
    if not target.from_me and target.author and target.author not in own:
        key.fromMe = False
        if not target.chat.endswith(("@" + USER_SERVER, "@" + LID_SERVER)):
            key.participant = target.author
    return key


def reaction_message(target: f.Target, emoji: str, own: set[str]) -> Any:
    """whatsmeow send.go, BuildReaction: the message's key, the emoji ("" removes it) and
    the time in milliseconds."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message, ReactionMessage

    return Message(
        reactionMessage=ReactionMessage(
            key=message_key(target, own),
            text=emoji,
            senderTimestampMS=int(time.time() * 1000),
        )
    )


def edit_message(target: f.Target, text: str) -> Any:
    """neonize builder.py, build_edit (whatsmeow send.go, BuildEdit): a MESSAGE_EDIT
    protocol message inside editedMessage, keyed by our message."""
    from neonize.builder import build_edit
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    return build_edit(to_jid(target.chat), target.id, Message(conversation=text))


def revoke_message(target: f.Target, own: set[str]) -> Any:
    """whatsmeow send.go, BuildRevoke: a REVOKE protocol message with the message's key."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message, ProtocolMessage

    return Message(
        protocolMessage=ProtocolMessage(type=ProtocolMessage.REVOKE, key=message_key(target, own))
    )


def poll_info(target: f.Target, own_jid: str | None) -> Any:
    """The MessageInfo whatsmeow's BuildPollVote takes: chat, id, who sent the poll, and
    whether it was us (the key of the vote: msgsecret.go, getKeyFromInfo)."""
    from neonize.proto.Neonize_pb2 import MessageInfo, MessageSource

    author = own_jid if target.from_me else (target.author or target.chat)
    return MessageInfo(
        ID=target.id,
        MessageSource=MessageSource(
            Chat=to_jid(target.chat),
            Sender=to_jid(author or target.chat),
            IsFromMe=target.from_me,
            IsGroup=target.chat.endswith("@" + GROUP_SERVER),
        ),
    )


def to_jid(text: str) -> Any:
    from neonize.utils.jid import build_jid

    user, _, server = text.partition("@")
    return build_jid(user, server or USER_SERVER)
