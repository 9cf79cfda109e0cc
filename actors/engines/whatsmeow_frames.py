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
    seq: int = 0


class Receipt(Frame, tag="receipt", kw_only=True, frozen=True):
    ids: list[str]
    status: str
    chat: str
    seq: int = 0


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
    | Reply
)
Spooled = Message | Receipt | Undecryptable | MediaResult | PendingDownload
DATA = (Message, Receipt, Undecryptable, MediaResult)


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


class SendText(Request, tag="send_text", kw_only=True, frozen=True):
    to: str
    text: str


class SendMedia(Request, tag="send_media", kw_only=True, frozen=True):
    to: str
    path: str
    caption: str = ""
    filename: str = ""
    mimetype: str = ""


class Resolve(Request, tag="resolve", kw_only=True, frozen=True):
    """Which of these phone numbers (digits) have WhatsApp, and under which JID."""

    phones: list[str]


class PairPhone(Request, tag="pair_phone", kw_only=True, frozen=True):
    phone: str


class Logout(Request, tag="logout", kw_only=True, frozen=True):
    pass


Command = Connect | Stop | Committed | Ping | SendText | SendMedia | Resolve | PairPhone | Logout
