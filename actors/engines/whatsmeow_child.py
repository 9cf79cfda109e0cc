"""The whatsmeow engine's child process: one neonize client, driven over a frame channel.

The Go runtime inside neonize aborts the whole process on a panic, so each instance's
client lives in a process of its own; the server sees a crash as the end of this
process's frames and starts another. Children are forked by `whatsmeow_forkserver`
(sharing neonize's Python modules); `python -m actors.engines.whatsmeow_child SESSION_DIR
UPLOADS_DIR MAX_FILE_SIZE` runs one on its own, talking over stdin/stdout.

What it reports is in `whatsmeow_frames`, mapped here from neonize's events as whatsmeow
sends them (see the citations beside each mapping). Messages, receipts and media results
are written to a spool in the session directory (fsync) before they are reported, and
reported again by the next child until the server says they are recorded: whatsmeow
acknowledges a message to WhatsApp as soon as neonize has buffered it, so anything lost
after that is lost for good.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.engines import whatsmeow_features as features
from actors.engines import whatsmeow_frames as f
from actors.engines.frames import Channel, encode, read_record
from actors.engines.whatsmeow_features import (
    LID_SERVER,
    USER_SERVER,
    PollOptions,
    jid_text,
)
from actors.engines.whatsmeow_features import digits as _digits
from actors.engines.whatsmeow_features import seconds as _seconds

MEDIA_KINDS = {
    "imageMessage": "image",
    "videoMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}
# Chats that are not conversations: status updates (stories) and channels (newsletters).
SKIPPED_SERVERS = {"broadcast", "newsletter"}
FIRST_QR_LIFETIME, NEXT_QR_LIFETIME = 60.0, 20.0  # whatsmeow qrchan.go: 6 codes, 60 s then 20 s
CONNECT_SETTLE = 2.0  # before disconnecting: neonize registers the client with Go by then
DRAIN_QUIET, DRAIN_MAX = 0.5, 5.0
DISCONNECT_WAIT = 3.0
DOWNLOAD_GRACE = 5.0
_SAFE = re.compile(r"[^A-Za-z0-9]+")

Sink = Callable[[f.Frame], None]


# -- mapping neonize events to frames ----------------------------------------------------


def enum_name(event: Any, field: str = "Reason") -> str:
    """The name of an enum field's value (MAIN_DEVICE_GONE rather than 4)."""
    number = getattr(event, field)
    value = type(event).DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(number)
    return value.name if value is not None else str(number)


class People:
    """Who a message is from or to, by phone number and by LID.

    whatsmeow (message.go, parseMessageSource) names a person by phone JID or by LID; the
    other form, when the server sent it, is in SenderAlt (RecipientAlt for our own
    messages). When it did not, the client's LID store may know it (`pn_for_lid`)."""

    def __init__(self, pn_for_lid: Callable[[Any], str | None] | None = None) -> None:
        self.pn_for_lid = pn_for_lid

    def person(self, main: Any, alt: Any) -> tuple[str | None, str | None]:
        """(phone JID, LID JID) of a person named by `main`, with `alt` the other form."""
        phone = lid = None
        for jid in (main, alt):
            text = jid_text(jid)
            if text is None:
                continue
            if jid.Server == LID_SERVER:
                lid = lid or text
            elif jid.Server == USER_SERVER:
                phone = phone or text
        if phone is None and lid is not None and self.pn_for_lid is not None:
            phone = self.pn_for_lid(main if jid_text(main) == lid else alt)
        return phone, lid

    def source(self, source: Any) -> tuple[str, str | None, str | None, str | None] | None:
        """(chat, participant, phone, lid) for a message source; None for chats that are
        not conversations (status@broadcast, newsletters)."""
        if source.Chat.Server in SKIPPED_SERVERS:
            return None
        if source.IsGroup:
            phone, lid = self.person(source.Sender, source.SenderAlt)
            chat = jid_text(source.Chat) or ""
            return chat, phone or lid, _digits(phone), lid
        if source.IsFromMe:
            # Our own message (from the phone or another linked device): the person is the
            # chat, named by Chat and RecipientAlt.
            phone, lid = self.person(source.Chat, source.RecipientAlt)
        else:
            phone, lid = self.person(source.Sender, source.SenderAlt)
        chat = phone or lid or jid_text(source.Chat) or ""
        return chat, None, _digits(phone), lid


def map_message(
    event: Any, people: People, download: Callable[[f.PendingDownload], str] | None = None
) -> f.Message | None:
    """A neonize MessageEv as a `message` frame; None for what is not a conversation
    message (status updates, newsletters, protocol messages such as edits and revokes,
    which `features.map_update` reads). A location, contact cards or a poll has its
    structured `data`; a reply names the quoted message, and mentions are kept."""
    info = event.Info
    source = info.MessageSource
    where = people.source(source)
    if where is None:
        return None
    chat, participant, phone, lid = where
    message = event.Message
    body = message.conversation or message.extendedTextMessage.text
    kind: str = "text"
    media: f.MediaInfo | None = None
    for field, name in MEDIA_KINDS.items():
        if message.HasField(field):
            part = getattr(message, field)
            kind = name
            body = getattr(part, "caption", "") or ""
            mimetype = part.mimetype or None
            filename = getattr(part, "fileName", "") or None
            claimed = int(part.fileLength or 0)
            status = "skipped"
            if download is not None and not source.IsFromMe:
                status = download(
                    f.PendingDownload(
                        id=info.ID,
                        message=message.SerializeToString(),
                        mimetype=mimetype,
                        filename=filename,
                        claimed=claimed,
                    )
                )
            media = f.MediaInfo(mimetype=mimetype, size=claimed, filename=filename, status=status)
            break
    data = None
    if kind == "text" and not body:
        structured = features.content(message)
        if structured is None:
            return None
        kind, body, data = structured
    quoted, mentions = features.context(message)
    origin = None
    if source.IsFromMe:
        # Device 0 is the phone itself; others are linked devices (whatsmeow types/jid.go).
        origin = "phone" if source.Sender.Device == 0 else "linked_device"
    return f.Message(
        id=info.ID,
        chat=chat,
        participant=participant,
        phone=phone,
        lid=lid,
        push_name=None if source.IsFromMe else (info.Pushname or None),
        type=kind,
        body=body,
        media=media,
        timestamp=_seconds(info.Timestamp),
        from_me=bool(source.IsFromMe),
        origin=origin,
        data=data,
        quoted=quoted,
        mentions=mentions,
    )


def map_receipt(event: Any, people: People) -> f.Receipt | None:
    """Receipts for messages we sent: delivered, read, played; every other kind is ignored.

    neonize's encoder (goneonize utils/encoder.go, EncodeReceipts) sets Type for the kinds it
    knows, DELIVERED included (whatsmeow's ReceiptTypeDelivered is the empty string); the
    ones it does not know (server-error, enc_rekey_retry, ...) arrive with Type unset."""
    from neonize.proto.Neonize_pb2 import Receipt

    if not event.HasField("Type") or event.MessageSource.IsFromMe:
        return None
    status = {
        Receipt.DELIVERED: "delivered",
        Receipt.READ: "read",
        Receipt.PLAYED: "played",
    }.get(event.Type)
    where = people.source(event.MessageSource)
    if status is None or where is None or not event.MessageIDs:
        return None
    participant, phone, lid = features.receipt_person(event, people)
    return f.Receipt(
        ids=list(event.MessageIDs),
        status=status,
        chat=where[0],
        participant=participant,
        phone=phone,
        lid=lid,
    )


def map_undecryptable(event: Any, people: People) -> f.Undecryptable | None:
    where = people.source(event.Info.MessageSource)
    if where is None:
        return None
    chat, participant, phone, lid = where
    return f.Undecryptable(
        id=event.Info.ID,
        chat=chat,
        participant=participant,
        phone=phone,
        lid=lid,
        unavailable=bool(event.IsUnavailable),
        timestamp=_seconds(event.Info.Timestamp),
    )


def register(
    client: Any,
    sink: Sink,
    download: Callable[[f.PendingDownload], str] | None = None,
    pn_for_lid: Callable[[Any], str | None] | None = None,
    polls: PollOptions | None = None,
    decrypt: features.Decrypt | None = None,
    requested: features.Requested | None = None,
) -> None:
    """Map every relevant neonize event of `client` to frames passed to `sink`. `polls`
    keeps the options of the polls seen, so that votes (`decrypt`ed by whatsmeow) are
    reported by option name."""
    from neonize.events import (
        ChatPresenceEv,
        ClientOutdatedEv,
        ConnectedEv,
        ConnectFailureEv,
        DisconnectedEv,
        GroupInfoEv,
        JoinedGroupEv,
        KeepAliveRestoredEv,
        KeepAliveTimeoutEv,
        LoggedOutEv,
        MessageEv,
        PairStatusEv,
        PresenceEv,
        ReceiptEv,
        StreamErrorEv,
        StreamReplacedEv,
        TemporaryBanEv,
        UndecryptableMessageEv,
    )
    from neonize.proto.Neonize_pb2 import PairStatus

    people = People(pn_for_lid)
    codes = 0
    own: set[str] = set()  # this account's JIDs, once connected

    def on_qr(_: Any, data: bytes) -> None:
        nonlocal codes
        codes += 1
        lifetime = FIRST_QR_LIFETIME if codes == 1 else NEXT_QR_LIFETIME
        sink(f.Qr(code=data.decode(errors="replace"), lifetime=lifetime))

    def on_connected(c: Any, _: Any) -> None:
        me = getattr(c, "me", None)  # set by neonize from the Device event; never get_me()
        phone = me.JID.User if me is not None and me.HasField("JID") else None
        lid = jid_text(me.LID) if me is not None and me.HasField("LID") else None
        push_name = getattr(me, "PushName", None) or None
        own.clear()
        own.update(j for j in (phone and f"{phone}@{USER_SERVER}", lid) if j)
        sink(f.Connected(phone=phone or None, lid=lid, push_name=push_name))

    def on_pair(_: Any, event: Any) -> None:
        # goneonize utils/encoder.go: EncodePairSuccess sets PairStatus_SUCCESS (2),
        # EncodePairError PairStatus_ERROR (1) with the error text.
        if event.Status == PairStatus.SUCCESS:
            sink(
                f.Paired(
                    phone=event.ID.User or None,
                    business_name=event.BusinessName or None,
                    platform=event.Platform or None,
                )
            )
        else:
            sink(f.PairFailed(error=event.Error or "pairing failed"))

    def on_message(_: Any, event: Any) -> None:
        update = features.map_update(event, people, polls, decrypt)
        if isinstance(update, f.Frame):
            sink(update)
        if update is not False:
            return
        frame = map_message(event, people, download)
        if frame is None:
            return
        if polls is not None and frame.type == "poll" and frame.data:
            polls.remember(frame.id, frame.data["poll"]["options"])
        sink(frame)

    def sink_some(frame: f.Frame | None) -> None:
        if frame is not None:
            sink(frame)

    def on_receipt(_: Any, event: Any) -> None:
        frame = map_receipt(event, people)
        if frame is not None:
            sink(frame)

    def on_undecryptable(_: Any, event: Any) -> None:
        frame = map_undecryptable(event, people)
        if frame is not None:
            sink(frame)

    client.event.qr(on_qr)
    client.event(ConnectedEv)(on_connected)
    client.event(PairStatusEv)(on_pair)
    client.event(DisconnectedEv)(lambda c, e: sink(f.Disconnected()))
    # whatsmeow connectionevents.go, handleConnectFailure: a 405 is ClientOutdated, a 402
    # TemporaryBan, logged-out reasons LoggedOut; other reasons come as ConnectFailure.
    client.event(ConnectFailureEv)(
        lambda c, e: sink(f.ConnectFailure(reason=enum_name(e), message=e.Message or ""))
    )
    client.event(ClientOutdatedEv)(lambda c, e: sink(f.ClientOutdated()))
    client.event(StreamReplacedEv)(lambda c, e: sink(f.StreamReplaced()))
    client.event(StreamErrorEv)(lambda c, e: sink(f.StreamError(code=e.Code or "unknown")))
    client.event(LoggedOutEv)(
        lambda c, e: sink(f.LoggedOut(reason=enum_name(e), on_connect=bool(e.OnConnect)))
    )
    client.event(TemporaryBanEv)(
        lambda c, e: sink(f.TemporaryBan(code=enum_name(e, "Code"), expire=int(e.Expire)))
    )
    client.event(KeepAliveTimeoutEv)(lambda c, e: sink(f.KeepAlive(ok=False)))
    client.event(KeepAliveRestoredEv)(lambda c, e: sink(f.KeepAlive(ok=True)))
    client.event(MessageEv)(on_message)
    client.event(ReceiptEv)(on_receipt)
    client.event(UndecryptableMessageEv)(on_undecryptable)
    client.event(PresenceEv)(lambda c, e: sink_some(features.map_presence(e, people)))
    client.event(ChatPresenceEv)(lambda c, e: sink_some(features.map_chat_presence(e, people)))
    client.event(JoinedGroupEv)(lambda c, e: sink_some(features.map_joined(e, people, requested)))
    client.event(GroupInfoEv)(
        lambda c, e: sink_some(features.map_group_info(e, people, own, requested))
    )


# -- what goes out -----------------------------------------------------------------------

# What WhatsApp shows as media (anything else goes as a document): JPEG and PNG images,
# MP4 and 3GP video (H.264/AAC), AAC/MP3/AMR/M4A audio, and Ogg Opus as a voice note.
IMAGE_TYPES = {"image/jpeg", "image/png"}
VIDEO_TYPES = {"video/mp4", "video/3gpp"}
AUDIO_TYPES = {"audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/x-m4a", "audio/m4a"}
VOICE_TYPES = {"audio/ogg", "audio/opus"}
VOICE_MIMETYPE = "audio/ogg; codecs=opus"


def outgoing_kind(path: str, declared: str) -> tuple[str, str, bool]:
    """(kind, mimetype, voice note) for a file to send, from what its bytes are (libmagic),
    not from what the client declared; audio and video need ffmpeg, else a document."""
    import magic

    sniffed = magic.from_file(path, mime=True) or declared or "application/octet-stream"
    ffmpeg = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
    if sniffed in IMAGE_TYPES:
        return "image", sniffed, False
    if sniffed in VIDEO_TYPES and ffmpeg:
        return "video", sniffed, False
    if sniffed in VOICE_TYPES and ffmpeg:
        return "audio", VOICE_MIMETYPE, True
    if sniffed in AUDIO_TYPES and ffmpeg:
        return "audio", sniffed, False
    documented = declared if declared and declared != "application/octet-stream" else sniffed
    return "document", documented, False


# -- the spool ---------------------------------------------------------------------------


class Mark(f.Frame, tag="mark", frozen=True):
    """The spool's first record: the sequence number the next report gets."""

    next: int


class Spool:
    """Reports on disk until the server has recorded them (each append is fsynced).

    Sequence numbers start from the spool's creation time in milliseconds times a million
    and only grow, across rewrites, so that the server can tell a replay (a number it has
    recorded) from news."""

    def __init__(self, path: Path) -> None:
        import msgspec

        self.path = path
        self._lock = threading.Lock()
        self._decoder = msgspec.msgpack.Decoder(f.Spooled | Mark)
        self._pending: dict[int, f.Frame] = {}
        self._next = int(time.time() * 1000) * 1_000_000
        torn = False
        if path.exists():
            with path.open("rb") as reader:
                while True:
                    try:
                        data = read_record(reader)
                    except ValueError:
                        data, torn = None, True
                    if data is None:
                        torn = torn or reader.read(1) != b""
                        break
                    try:
                        record = self._decoder.decode(data)
                    except msgspec.DecodeError:
                        torn = True
                        break
                    if isinstance(record, Mark):
                        self._next = max(self._next, record.next)
                        continue
                    self._pending[record.seq] = record
                    self._next = max(self._next, record.seq + 1)
        self._done_downloads = {
            r.id for r in self._pending.values() if isinstance(r, f.MediaResult)
        }
        for seq, record in list(self._pending.items()):
            if isinstance(record, f.PendingDownload) and record.id in self._done_downloads:
                del self._pending[seq]
        if torn or not path.exists():
            self._rewrite()
        self._file = path.open("ab")

    def replay(self) -> list[f.Frame]:
        """What an earlier child spooled and the server has not confirmed, in order."""
        with self._lock:
            return [self._pending[seq] for seq in sorted(self._pending)]

    def append(self, frame: f.Frame) -> f.Frame:
        """`frame` with its sequence number, once it is on disk."""
        import msgspec

        with self._lock:
            frame = msgspec.structs.replace(frame, seq=self._next)
            self._next += 1
            self._file.write(encode(frame))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._pending[frame.seq] = frame  # type: ignore[attr-defined]
            if isinstance(frame, f.MediaResult):
                self._done_downloads.add(frame.id)
                for seq, record in list(self._pending.items()):
                    if isinstance(record, f.PendingDownload) and record.id == frame.id:
                        del self._pending[seq]
        return frame

    def commit(self, seq: int) -> None:
        """The server recorded every report up to `seq`; forget them (downloads stay)."""
        with self._lock:
            for number, record in list(self._pending.items()):
                if number <= seq and not isinstance(record, f.PendingDownload):
                    del self._pending[number]
            if not self._pending or self._file.tell() > 256 * 1024:
                self._file.close()
                self._rewrite()
                self._file = self.path.open("ab")

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _rewrite(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("wb") as out:
            out.write(encode(Mark(next=self._next)))
            for seq in sorted(self._pending):
                out.write(encode(self._pending[seq]))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# -- the child ---------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def new_client(session_db: Path, on_login_status: Callable[[str], None]) -> Any:
    """A neonize client whose QR channel's end (`timeout`, `err-...`) reaches us."""
    from neonize.client import NewClient

    class Client(NewClient):
        # neonize passes its QR channel's final event to a private callback that prints a
        # pointer; name-mangled, so it can be overridden as `_NewClient__onLoginStatus`.
        def _NewClient__onLoginStatus(self, uuid: int, status: int) -> None:
            on_login_status(ctypes.string_at(status).decode(errors="replace"))

    return Client(str(session_db), uuid=uuid.uuid4().hex)


class Child:
    """The command loop around one neonize client."""

    def __init__(
        self,
        channel: Channel[f.Command],
        session_dir: Path,
        uploads_dir: Path,
        max_size: int,
        client: Any = None,
    ) -> None:
        self.channel = channel
        self.uploads_dir = uploads_dir
        self.max_size = max_size
        session_dir.mkdir(parents=True, exist_ok=True)
        uploads_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(session_dir / "inbound.spool")
        self.client = client or new_client(session_dir / "session.db", self._login_status)
        self._downloads: queue.Queue[f.PendingDownload | None] = queue.Queue()
        self._downloader = threading.Thread(target=self._download_loop, daemon=True)
        self._connection: threading.Thread | None = None
        self._connect_started = 0.0
        self._session_over = threading.Event()
        self._go_client = threading.Event()  # neonize has registered the client with Go
        self._online = threading.Event()  # connected to WhatsApp (downloads need it)
        self._held: dict[str, f.PendingDownload] = {}
        self._stopping = False
        self._last_event = time.monotonic()
        self._own: set[str] = set()  # this account's JIDs (phone, LID), once connected
        self._own_lid: str | None = None
        self.polls = PollOptions(session_dir / "polls.json")
        self.people = People(self._pn_for_lid)
        self.requested = features.Requested()
        self.retries = features.Retries(session_dir / "media-retry")
        self._fetching = threading.Lock()  # one file in memory at a time
        register(
            self.client,
            self.report,
            self._download,
            self._pn_for_lid,
            self.polls,
            self._decrypt,
            self.requested,
        )

    # -- reports ------------------------------------------------------------------------

    def report(self, frame: f.Frame) -> None:
        """Tell the server; data reports go to the spool first."""
        self._last_event = time.monotonic()
        if isinstance(frame, f.Connected):
            self._online.set()
            phone = frame.phone and f"{frame.phone}@{USER_SERVER}"
            self._own = {j for j in (phone, frame.lid) if j}
            self._own_lid = frame.lid
        elif isinstance(frame, (f.Disconnected, f.SessionEnded)):
            self._online.clear()
        if not isinstance(frame, (f.SessionEnded, f.MediaResult)):
            self._go_client.set()
        if isinstance(frame, f.DATA):
            frame = self.spool.append(frame)
        # If the server is gone, the spool keeps what matters for the next child.
        with contextlib.suppress(OSError, ValueError):
            self.channel.send(frame)
        if isinstance(frame, f.Message) and (job := self._held.pop(frame.id, None)):
            self._downloads.put(job)  # after its message, so the server hears of it first

    def _login_status(self, status: str) -> None:
        if status != "success":
            self.report(f.QrEnded(reason=status))

    # -- the loop -----------------------------------------------------------------------

    def serve(self) -> None:
        from importlib.metadata import version

        self.channel.send(f.Ready(pid=os.getpid(), neonize=version("neonize")))
        self._downloader.start()
        for frame in self.spool.replay():
            if isinstance(frame, f.PendingDownload):
                self._downloads.put(frame)
            else:
                self.channel.send(frame)
        while (command := self.channel.receive()) is not None:
            if isinstance(command, f.Stop):
                break
            if isinstance(command, f.Committed):
                self.spool.commit(command.seq)
            elif isinstance(command, f.Connect):
                self._connect(command.proxy)
            else:
                threading.Thread(target=self._run, args=(command,), daemon=True).start()
        self.shutdown()

    def _run(self, command: f.Request) -> None:
        try:
            result = getattr(self, f"op_{type(command).__name__}")(command)
            reply = f.Reply(re=command.id, ok=True, result=result)
        except _Refused as refused:
            reply = f.Reply(re=command.id, ok=False, error=str(refused), code=refused.code)
        except Exception as error:
            reply = f.Reply(
                re=command.id,
                ok=False,
                error=f"{type(error).__name__}: {error}",
                code=features.error_code(str(error)),
            )
        with contextlib.suppress(OSError, ValueError):
            self.channel.send(reply)

    def _connect(self, proxy: str | None) -> None:
        if self._connection is not None:
            return  # one session per child: the server starts a new child to try again
        self._connect_started = time.monotonic()
        self._connection = threading.Thread(target=self._session, args=(proxy,), daemon=True)
        self._connection.start()

    def _session(self, proxy: str | None) -> None:
        from neonize._binder import ProxySettings

        error = None
        try:
            # The proxy goes with connect(): set_proxy_address() before it only answers
            # "client not found" (goneonize main.go: SetProxyAddress looks the client up
            # in a map that Neonize() fills in).
            self.client.connect(ProxySettings(proxy_address=proxy) if proxy else None)
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
        self._session_over.set()
        if not self._stopping:
            self.report(f.SessionEnded(error=error))

    def _live(self) -> bool:
        """Whether neonize holds a Go client now (calls into Go on a client it does not
        hold dereference nil and abort the process)."""
        return (
            self._connection is not None
            and not self._session_over.is_set()
            and (
                self._go_client.is_set()
                or time.monotonic() - self._connect_started >= CONNECT_SETTLE
            )
        )

    def _require_live(self) -> None:
        if not self._live():
            raise _Refused("the WhatsApp connection is not open", "instance_not_connected")

    def shutdown(self) -> None:
        """Stop without losing what whatsmeow has acknowledged: close the socket (no more
        messages come in), let neonize's buffer drain, finish the download in hand."""
        self._stopping = True
        live = self._connection is not None and not self._session_over.is_set()
        if live and not self._go_client.is_set():
            time.sleep(max(0.0, self._connect_started + CONNECT_SETTLE - time.monotonic()))
        # whatsmeow's Disconnect waits for a connect in progress (a dial that hangs, say):
        # then nothing was received, and the process just ends.
        if live and _within(self.client.disconnect, DISCONNECT_WAIT):
            deadline = time.monotonic() + DRAIN_MAX
            while time.monotonic() < deadline and time.monotonic() - self._last_event < DRAIN_QUIET:
                time.sleep(0.05)
            _within(self.client.stop, DISCONNECT_WAIT)
        self._downloads.put(None)
        self._downloader.join(timeout=DOWNLOAD_GRACE)
        self.spool.close()

    # -- media downloads ----------------------------------------------------------------

    def _download(self, job: f.PendingDownload) -> str:
        if job.claimed > self.max_size:
            return "too_large"  # the sender's claim is enough to skip, never to trust
        if self._connection is None:
            self.retries.save(job)  # fetched when asked for
            return "skipped"  # no session: nothing to download with
        self._held[job.id] = self.spool.append(job)  # type: ignore[assignment]
        return "pending"

    def _download_loop(self) -> None:
        """One download at a time: neonize returns the whole file in memory. A download
        not finished when the child stops stays in the spool for the next child."""
        while (job := self._downloads.get()) is not None:
            while not self._online.wait(0.2):
                if self._stopping:
                    return
            if self._stopping:
                return
            result = self._fetch(job)
            if result.status == "failed":
                self.retries.save(job)  # fetched again when asked for
            self.report(result)

    def _fetch(self, job: f.PendingDownload) -> f.MediaResult:
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        try:
            with self._fetching:
                data = self.client.download_any(Message.FromString(job.message))
        except Exception as error:
            return f.MediaResult(id=job.id, status="failed", error=str(error) or "failed")
        if len(data) > self.max_size:
            return f.MediaResult(id=job.id, status="too_large", size=len(data))
        path = self.uploads_dir / f"{uuid.uuid4().hex}-{_SAFE.sub('', job.id)[:64]}"
        path.write_bytes(data)
        return f.MediaResult(
            id=job.id, status="saved", path=str(path), size=len(data), mimetype=job.mimetype
        )

    def _decrypt(self, event: Any) -> list[bytes]:
        """The option hashes of a poll vote (whatsmeow msgsecret.go, DecryptPollVote)."""
        return list(self.client.decrypt_poll_vote(event).selectedOptions)

    def _pn_for_lid(self, lid: Any) -> str | None:
        if not self._live():
            return None
        try:
            return jid_text(self.client.get_pn_from_lid(lid))
        except Exception:
            return None

    # -- requests -----------------------------------------------------------------------

    def op_Ping(self, command: f.Ping) -> dict[str, Any]:
        from importlib.metadata import version

        return {"pid": os.getpid(), "neonize": version("neonize")}

    def _send(self, command: f.Send, message: Any, kind: str) -> dict[str, Any]:
        """Send `message` to `command.to`, as a reply and with mentions when it says."""
        info = features.quoted_context(command.quoted, command.mentions, self._own_phone())
        response = self.client.send_message(_jid(command.to), features.with_context(message, info))
        return {"id": response.ID, "timestamp": int(response.Timestamp), "type": kind}

    def op_SendText(self, command: f.SendText) -> dict[str, Any]:
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        self._require_live()
        # A plain conversation message (a str would go out as extendedTextMessage); a
        # reply or a mention makes it an extendedTextMessage, the part with a ContextInfo.
        return self._send(command, Message(conversation=command.text), "text")

    def op_SendMedia(self, command: f.SendMedia) -> dict[str, Any]:
        self._require_live()
        kind, mimetype, voice = outgoing_kind(command.path, command.mimetype)
        data = Path(command.path).read_bytes()  # bytes we hold: neonize never fetches URLs
        caption = command.caption or None
        if kind == "image":
            message = self.client.build_image_message(data, caption=caption)
        elif kind == "video":
            message = self.client.build_video_message(data, caption=caption)
        elif kind == "audio":
            message = self.client.build_audio_message(data, ptt=voice)
            message.audioMessage.mimetype = mimetype
        else:
            message = self.client.build_document_message(
                data, caption=caption, filename=command.filename, mimetype=mimetype
            )
        return self._send(command, message, kind)

    def op_SendLocation(self, command: f.SendLocation) -> dict[str, Any]:
        self._require_live()
        return self._send(command, features.location_message(command), "location")

    def op_SendContacts(self, command: f.SendContacts) -> dict[str, Any]:
        self._require_live()
        return self._send(command, features.contacts_message(command.cards), "contacts")

    def op_SendPoll(self, command: f.SendPoll) -> dict[str, Any]:
        self._require_live()
        message = features.poll_message(command.question, command.options, command.multiple)
        answer = self._send(command, message, "poll")
        self.polls.remember(answer["id"], command.options)
        return answer

    def op_Vote(self, command: f.Vote) -> dict[str, Any]:
        self._require_live()
        info = features.poll_info(command.poll, self._own_jid())
        message = self.client.build_poll_vote(info, command.options)
        response = self.client.send_message(_jid(command.poll.chat), message)
        return {"id": response.ID, "timestamp": int(response.Timestamp), "type": "vote"}

    def op_React(self, command: f.React) -> dict[str, Any]:
        self._require_live()
        message = features.reaction_message(command.target, command.emoji, self._own)
        response = self.client.send_message(_jid(command.target.chat), message)
        return {"id": response.ID, "timestamp": int(response.Timestamp), "type": "reaction"}

    def op_Edit(self, command: f.Edit) -> dict[str, Any]:
        self._require_live()
        message = features.edit_message(command.target, command.text)
        response = self.client.send_message(_jid(command.target.chat), message)
        return {"id": response.ID, "timestamp": int(response.Timestamp), "type": "edit"}

    def op_Revoke(self, command: f.Revoke) -> dict[str, Any]:
        self._require_live()
        message = features.revoke_message(command.target, self._own)
        response = self.client.send_message(_jid(command.target.chat), message)
        return {"id": response.ID, "timestamp": int(response.Timestamp), "type": "revoke"}

    def op_SendPresence(self, command: f.SendPresence) -> None:
        from neonize.utils.enum import ChatPresence, ChatPresenceMedia, Presence

        self._require_live()
        if command.to is None:
            available = command.state == "available"
            self.client.send_presence(Presence.AVAILABLE if available else Presence.UNAVAILABLE)
            return
        # whatsmeow SendChatPresence: composing or paused; recording is composing audio.
        state = ChatPresence.CHAT_PRESENCE_PAUSED
        if command.state in ("composing", "recording"):
            state = ChatPresence.CHAT_PRESENCE_COMPOSING
        media = ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        if command.state == "recording":
            media = ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
        self.client.send_chat_presence(_jid(command.to), state, media)

    def op_MarkRead(self, command: f.MarkRead) -> None:
        from neonize.utils.enum import ReceiptType

        self._require_live()
        self.client.mark_read(
            *command.ids,
            chat=_jid(command.chat),
            sender=_jid(command.sender),
            receipt=ReceiptType.READ,
        )

    # -- groups ---------------------------------------------------------------------

    def _group(self, info: Any) -> dict[str, Any]:
        return features.group(info, self.people)

    def op_CreateGroup(self, command: f.CreateGroup) -> dict[str, Any]:
        self._require_live()
        jids = [_jid(p) for p in command.participants]
        return self._group(self.client.create_group(command.subject, jids))

    def op_GetGroup(self, command: f.GetGroup) -> dict[str, Any]:
        self._require_live()
        return self._group(self.client.get_group_info(_jid(command.group_id)))

    def op_UpdateGroup(self, command: f.UpdateGroup) -> dict[str, Any]:
        self._require_live()
        self.requested.mark(command.group_id)
        group = _jid(command.group_id)
        if command.subject is not None:
            self.client.set_group_name(group, command.subject)
        if command.description is not None:
            # whatsmeow SetGroupTopic looks the current topic id up and makes a new one
            # when both are empty (group.go).
            self.client.set_group_topic(group, "", "", command.description)
        if command.announce is not None:
            self.client.set_group_announce(group, command.announce)
        if command.locked is not None:
            self.client.set_group_locked(group, command.locked)
        return self._group(self.client.get_group_info(group))

    def op_ChangeParticipants(self, command: f.ChangeParticipants) -> list[dict[str, Any]]:
        from neonize.utils.enum import ParticipantChange

        self._require_live()
        self.requested.mark(command.group_id)
        action = ParticipantChange(command.action)
        jids = [_jid(p) for p in command.participants]
        answer = self.client.update_group_participants(_jid(command.group_id), jids, action)
        return [
            {"id": jid_text(p.JID) or "", "status": features.participant_status(p.Error)}
            for p in answer
        ]

    def op_InviteCode(self, command: f.InviteCode) -> str:
        self._require_live()
        link = self.client.get_group_invite_link(_jid(command.group_id), command.reset)
        return str(link).rsplit("/", 1)[-1]  # https://chat.whatsapp.com/<code>

    def op_JoinGroup(self, command: f.JoinGroup) -> dict[str, Any]:
        self._require_live()
        self.requested.mark(features.Requested.JOINING)
        group = self.client.join_group_with_link(command.code)
        return self._group(self.client.get_group_info(group))

    def op_LeaveGroup(self, command: f.LeaveGroup) -> None:
        self._require_live()
        self.requested.mark(command.group_id)
        self.client.leave_group(_jid(command.group_id))

    def op_LookupIdentity(self, command: f.LookupIdentity) -> dict[str, Any]:
        """The other half of a phone JID or a LID, from whatsmeow's LID store."""
        self._require_live()
        jid = _jid(command.jid)
        if jid.Server == LID_SERVER:
            other = jid_text(self.client.get_pn_from_lid(jid))
            return {"phone": _digits(other), "lid": command.jid}
        other = jid_text(self.client.get_lid_from_pn(jid))
        return {"phone": jid.User, "lid": other}

    def op_FetchMedia(self, command: f.FetchMedia) -> dict[str, Any]:
        """The file of a received message whose download failed or never ran, fetched now
        (and reported, so that the message names it from now on)."""
        self._require_live()
        job = self.retries.load(command.message_id)
        if job is None:
            raise _Refused("WhatsApp's copy of this file can no longer be fetched", "no_media")
        result = self._fetch(job)
        if result.status != "failed":
            self.retries.drop(job.id)
        self.report(result)
        return {
            "status": result.status,
            "path": result.path,
            "size": result.size,
            "mimetype": result.mimetype,
            "error": result.error,
        }

    def _own_jid(self) -> str | None:
        """This account as the author of its own poll: whatsmeow keeps a sent message's
        secret under its own (phone) JID (send.go, PutMessageSecret with getOwnID)."""
        return self._own_phone() or self._own_lid

    def _own_phone(self) -> str | None:
        return next((j for j in self._own if j.endswith("@" + USER_SERVER)), None)

    def op_Resolve(self, command: f.Resolve) -> list[dict[str, Any]]:
        self._require_live()
        # whatsmeow user.go, IsOnWhatsApp: "The phone numbers should be in international
        # format, including the `+` prefix."
        answers = self.client.is_on_whatsapp(*(f"+{phone}" for phone in command.phones))
        return [
            {"query": a.Query.lstrip("+"), "jid": jid_text(a.JID), "exists": bool(a.IsIn)}
            for a in answers
        ]

    def op_PairPhone(self, command: f.PairPhone) -> str:
        self._require_live()
        return str(self.client.PairPhone(command.phone, True))

    def op_Logout(self, command: f.Logout) -> None:
        self._require_live()
        self.client.logout()


def _within(call: Callable[[], Any], timeout: float) -> bool:
    """Run `call` in a thread of its own; whether it returned within `timeout` seconds."""
    done = threading.Event()

    def run() -> None:
        with contextlib.suppress(Exception):
            call()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(timeout)


def _jid(to: str) -> Any:
    from neonize.utils.jid import build_jid

    user, _, server = to.partition("@")
    return build_jid(user, server or USER_SERVER)


class Injected(f.Frame, tag="inject", kw_only=True, frozen=True):
    """A neonize event for a test to push through neonize's own dispatch (`code` from
    neonize.events.EVENT_TO_INT), or a QR code (`code` -1) or a QR channel end (-2)."""

    code: int
    data: bytes


TEST_EVENTS = "WHATSMEOW_TEST_EVENTS"


def serve_test_events(child: Child, session_dir: Path) -> None:
    """With WHATSMEOW_TEST_EVENTS=1 (tests only: nobody can pair a phone in a test), read
    events from `events-<pid>.fifo` in the session directory and dispatch them as if
    whatsmeow had sent them."""
    import msgspec

    fifo = session_dir / f"events-{os.getpid()}.fifo"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o600)
    decoder = msgspec.msgpack.Decoder(Injected)

    def read() -> None:
        with open(os.open(fifo, os.O_RDWR), "rb", buffering=0) as events:
            while (data := read_record(events)) is not None:
                event = decoder.decode(data)
                if event.code == -1:
                    child.client.event._qr(child.client, event.data)
                elif event.code == -2:
                    child._login_status(event.data.decode())
                else:
                    buffer = ctypes.create_string_buffer(event.data, len(event.data) or 1)
                    child.client.event.execute(
                        0, ctypes.addressof(buffer), len(event.data), event.code
                    )

    threading.Thread(target=read, name="test-events", daemon=True).start()


def run(channel: Channel[f.Command], session_dir: Path, uploads_dir: Path, max_size: int) -> int:
    """Serve one instance until told to stop or the server goes away; 0 when stopped cleanly."""
    # Ctrl-C in a terminal reaches the whole process group; only the server decides when
    # this child stops (a child that survived its server would keep the session busy).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from actors.engines import whatsmeow_preload

    whatsmeow_preload.complete()
    child = Child(channel, session_dir, uploads_dir, max_size)
    if os.environ.get(TEST_EVENTS) == "1":
        serve_test_events(child, session_dir)
    child.serve()
    return 0


def main(argv: list[str]) -> int:
    session_dir, uploads_dir, max_size = Path(argv[0]), Path(argv[1]), int(argv[2])
    # Frames go to a private copy of stdout; anything the library prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    channel: Channel[f.Command] = Channel(sys.stdin.buffer, out, f.Command)
    code = run(channel, session_dir, uploads_dir, max_size)
    sys.stderr.flush()
    os._exit(code)  # neonize's session thread is not a daemon: do not wait for it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
