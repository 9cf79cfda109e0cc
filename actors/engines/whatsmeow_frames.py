"""What the whatsmeow child process and the server say to each other: tagged msgspec Structs.

Reports (child -> server) describe what whatsmeow did; the ones that carry data a user
would miss (messages, receipts, media) have a `seq`: their position in the child's
durable spool, acknowledged by the server once recorded. Replies answer commands by id.
Commands (server -> child) are `Connect`, `Stop`, `Committed` and the requests.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Frame(msgspec.Struct, tag_field="t", kw_only=True, omit_defaults=True, frozen=True):
    """Base of every frame; the tag names the kind."""


# -- reports: connection -------------------------------------------------------------


class Ready(Frame, tag="ready", kw_only=True, frozen=True):
    pid: int
    neonize: str


class Qr(Frame, tag="qr", kw_only=True, frozen=True):
    """A pairing code to show; it is replaced after `lifetime` seconds."""

    code: str
    lifetime: float


class QrEnded(Frame, tag="qr_ended", kw_only=True, frozen=True):
    """whatsmeow's QR channel closed without a pairing (`timeout`: the codes ran out)."""

    reason: str


class Paired(Frame, tag="paired", kw_only=True, frozen=True):
    phone: str | None = None
    lid: str | None = None
    business_name: str | None = None
    platform: str | None = None


class PairFailed(Frame, tag="pair_failed", kw_only=True, frozen=True):
    error: str


class Connected(Frame, tag="connected", kw_only=True, frozen=True):
    phone: str | None = None
    lid: str | None = None
    push_name: str | None = None


class Disconnected(Frame, tag="disconnected", kw_only=True, frozen=True):
    """whatsmeow lost the socket; it reconnects by itself."""


class ConnectFailure(Frame, tag="connect_failure", kw_only=True, frozen=True):
    """WhatsApp refused the login; whatsmeow does not retry (except for 503)."""

    reason: str
    message: str = ""


class ClientOutdated(Frame, tag="client_outdated", kw_only=True, frozen=True):
    """WhatsApp refuses this whatsmeow version (405); whatsmeow does not retry."""


class StreamReplaced(Frame, tag="stream_replaced", kw_only=True, frozen=True):
    """Another client connected with this session; whatsmeow does not retry."""


class LoggedOut(Frame, tag="logged_out", kw_only=True, frozen=True):
    reason: str
    on_connect: bool = False


class TemporaryBan(Frame, tag="temporary_ban", kw_only=True, frozen=True):
    code: str
    expire: int


class StreamError(Frame, tag="stream_error", kw_only=True, frozen=True):
    code: str


class KeepAlive(Frame, tag="keepalive", kw_only=True, frozen=True):
    ok: bool


class SessionEnded(Frame, tag="session_ended", kw_only=True, frozen=True):
    """neonize's connect() returned: it could not connect (`error`), or the session ended."""

    error: str | None = None


# -- reports: data (spooled) ---------------------------------------------------------


class MediaInfo(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """A message's media as the sender described it; `status` is `pending` until the
    download ends (`saved`, `too_large`, `failed`) or `skipped` when it is not fetched."""

    mimetype: str | None = None
    size: int = 0
    filename: str | None = None
    status: str = "skipped"


class Message(Frame, tag="message", kw_only=True, frozen=True):
    """A message in a chat. `from_me`: the account sent it from its phone (`origin`
    `phone`) or another linked device (`linked_device`)."""

    id: str
    chat: str
    participant: str | None = None
    phone: str | None = None
    lid: str | None = None
    push_name: str | None = None
    type: str
    body: str = ""
    media: MediaInfo | None = None
    timestamp: int
    from_me: bool = False
    origin: str | None = None
    data: dict[str, Any] | None = None  # a location, contact cards, a poll (by kind)
    quoted: str | None = None  # the id of the message it replies to
    mentions: list[str] = []
    seq: int = 0


class Receipt(Frame, tag="receipt", kw_only=True, frozen=True):
    """`participant` (with `phone`, `lid`): who delivered or read it, in a group."""

    ids: list[str]
    status: str
    chat: str
    participant: str | None = None
    phone: str | None = None
    lid: str | None = None
    seq: int = 0


class Update(Frame, kw_only=True, frozen=True):
    """A change to the earlier message `id` of `chat`, by `sender` (None: this account,
    from another device; `from_me`)."""

    id: str
    chat: str
    sender: str | None = None
    phone: str | None = None
    lid: str | None = None
    from_me: bool = False
    timestamp: int
    seq: int = 0


class Reacted(Update, tag="reacted", kw_only=True, frozen=True):
    emoji: str  # "" removes the reaction


class Edited(Update, tag="edited", kw_only=True, frozen=True):
    body: str


class Revoked(Update, tag="revoked", kw_only=True, frozen=True):
    pass


class Voted(Update, tag="voted", kw_only=True, frozen=True):
    options: list[str]  # [] withdraws the vote


class GroupJoined(Frame, tag="group_joined", kw_only=True, frozen=True):
    """This account is in a group (`group` as domain.groups.Group.describe() has it)."""

    group: dict[str, Any]
    reason: str
    by: str | None = None
    seq: int = 0


class GroupChanged(Frame, tag="group_changed", kw_only=True, frozen=True):
    """Settings that changed, and participants by action (add, remove, promote, demote);
    `left`: this account is among those removed ("left" by itself, or "removed")."""

    group_id: str
    changes: dict[str, Any] = {}
    moves: dict[str, list[dict[str, Any]]] = {}
    left: str | None = None
    by: str | None = None
    seq: int = 0


class Seen(Frame, tag="seen", kw_only=True, frozen=True):
    """Someone's presence (available, unavailable) or, in `chat` (None: the one-to-one
    chat), composing, recording, paused."""

    jid: str
    state: str
    chat: str | None = None
    last_seen: int | None = None
    phone: str | None = None
    lid: str | None = None


class Undecryptable(Frame, tag="undecryptable", kw_only=True, frozen=True):
    id: str
    chat: str
    participant: str | None = None
    phone: str | None = None
    lid: str | None = None
    unavailable: bool = False
    timestamp: int
    seq: int = 0


class MediaResult(Frame, tag="media", kw_only=True, frozen=True):
    id: str
    status: str
    path: str | None = None
    size: int = 0
    mimetype: str | None = None
    error: str | None = None
    seq: int = 0


class PendingDownload(Frame, tag="download", kw_only=True, frozen=True):
    """Spool-only: a media download still to do (the message's protobuf, to fetch it)."""

    id: str
    message: bytes
    mimetype: str | None = None
    filename: str | None = None
    claimed: int = 0
    seq: int = 0


class Reply(Frame, tag="reply", kw_only=True, frozen=True):
    re: int
    ok: bool
    result: Any = None
    error: str = ""
    code: str = ""


Report = (
    Ready
    | Qr
    | QrEnded
    | Paired
    | PairFailed
    | Connected
    | Disconnected
    | ConnectFailure
    | ClientOutdated
    | StreamReplaced
    | LoggedOut
    | TemporaryBan
    | StreamError
    | KeepAlive
    | SessionEnded
    | Message
    | Receipt
    | Undecryptable
    | MediaResult
    | Reacted
    | Edited
    | Revoked
    | Voted
    | GroupJoined
    | GroupChanged
    | Seen
    | Reply
)
Spooled = (
    Message
    | Receipt
    | Undecryptable
    | MediaResult
    | PendingDownload
    | Reacted
    | Edited
    | Revoked
    | Voted
    | GroupJoined
    | GroupChanged
)
DATA = (
    Message,
    Receipt,
    Undecryptable,
    MediaResult,
    Reacted,
    Edited,
    Revoked,
    Voted,
    GroupJoined,
    GroupChanged,
)


# -- commands --------------------------------------------------------------------------


class Connect(Frame, tag="connect", kw_only=True, frozen=True):
    proxy: str | None = None


class Stop(Frame, tag="stop", kw_only=True, frozen=True):
    """Disconnect, let buffered events through, and exit."""


class Committed(Frame, tag="committed", kw_only=True, frozen=True):
    """The server recorded every spooled report up to `seq`."""

    seq: int


class Request(Frame, kw_only=True, frozen=True):
    id: int


class Ping(Request, tag="ping", kw_only=True, frozen=True):
    pass


class Quoted(msgspec.Struct, kw_only=True, frozen=True):
    """The message a send replies to: its id, author's JID (None: us) and text."""

    id: str
    author: str | None = None
    body: str = ""


class Target(msgspec.Struct, kw_only=True, frozen=True):
    """An earlier message a command acts on: its id, chat, author (None: us)."""

    id: str
    chat: str
    author: str | None = None
    from_me: bool = False


class Card(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    phone: str


class Send(Request, kw_only=True, frozen=True):
    """A send to `to`, replying to `quoted` and mentioning `mentions` (JIDs)."""

    to: str
    quoted: Quoted | None = None
    mentions: list[str] = []


class SendText(Send, tag="send_text", kw_only=True, frozen=True):
    text: str


class SendMedia(Send, tag="send_media", kw_only=True, frozen=True):
    path: str
    caption: str = ""
    filename: str = ""
    mimetype: str = ""


class SendLocation(Send, tag="send_location", kw_only=True, frozen=True):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class SendContacts(Send, tag="send_contacts", kw_only=True, frozen=True):
    cards: list[Card]


class SendPoll(Send, tag="send_poll", kw_only=True, frozen=True):
    question: str
    options: list[str]
    multiple: bool = False


class Vote(Request, tag="vote", kw_only=True, frozen=True):
    poll: Target
    options: list[str]


class React(Request, tag="react", kw_only=True, frozen=True):
    target: Target
    emoji: str


class Edit(Request, tag="edit", kw_only=True, frozen=True):
    target: Target
    text: str


class Revoke(Request, tag="revoke", kw_only=True, frozen=True):
    target: Target


class SendPresence(Request, tag="send_presence", kw_only=True, frozen=True):
    state: str
    to: str | None = None


class MarkRead(Request, tag="mark_read", kw_only=True, frozen=True):
    """Read receipts for `ids` of `chat`, written by `sender` (a group's participant)."""

    chat: str
    sender: str
    ids: list[str]


class CreateGroup(Request, tag="create_group", kw_only=True, frozen=True):
    subject: str
    participants: list[str]


class GetGroup(Request, tag="get_group", kw_only=True, frozen=True):
    group_id: str


class UpdateGroup(Request, tag="update_group", kw_only=True, frozen=True):
    group_id: str
    subject: str | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None


class ChangeParticipants(Request, tag="participants", kw_only=True, frozen=True):
    group_id: str
    action: str
    participants: list[str]


class InviteCode(Request, tag="invite_code", kw_only=True, frozen=True):
    group_id: str
    reset: bool = False


class JoinGroup(Request, tag="join_group", kw_only=True, frozen=True):
    code: str


class LeaveGroup(Request, tag="leave_group", kw_only=True, frozen=True):
    group_id: str


class LookupIdentity(Request, tag="lookup_identity", kw_only=True, frozen=True):
    jid: str


class FetchMedia(Request, tag="fetch_media", kw_only=True, frozen=True):
    """Fetch again the file of a received message whose download failed or never ran."""

    message_id: str


class Resolve(Request, tag="resolve", kw_only=True, frozen=True):
    """Which of these phone numbers (digits) have WhatsApp, and under which JID."""

    phones: list[str]


class PairPhone(Request, tag="pair_phone", kw_only=True, frozen=True):
    phone: str


class Logout(Request, tag="logout", kw_only=True, frozen=True):
    pass


Command = (
    Connect
    | Stop
    | Committed
    | Ping
    | SendText
    | SendMedia
    | Resolve
    | PairPhone
    | Logout
    | SendLocation
    | SendContacts
    | SendPoll
    | Vote
    | React
    | Edit
    | Revoke
    | SendPresence
    | MarkRead
    | CreateGroup
    | GetGroup
    | UpdateGroup
    | ChangeParticipants
    | InviteCode
    | JoinGroup
    | LeaveGroup
    | LookupIdentity
    | FetchMedia
)
