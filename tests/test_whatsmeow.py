"""The whatsmeow child's mapping of neonize events, pushed through neonize's real dispatch.

Each event is built the way neonize's Go side encodes whatsmeow's (goneonize
utils/encoder.go) and the way whatsmeow fills it (cited per test); the frames are what
the server receives.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors.engines import whatsmeow_frames as f
from actors.engines.frames import Channel, encode
from actors.engines.whatsmeow_child import Spool, outgoing_kind, register
from tests.whatsmeow import GROUP, LID, empty_jid, jid, message_event, push

neonize = pytest.importorskip("neonize")


@pytest.fixture(scope="module")
def dispatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[f.Frame]]]:
    """One neonize client (never connected) with our handlers, and the frames they send."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from neonize.client import NewClient

    root.handlers[:], root.level = handlers, level  # undo neonize's basicConfig on import
    client = NewClient(str(tmp_path_factory.mktemp("neonize") / "session.db"), uuid="dispatch-test")
    frames: list[f.Frame] = []
    register(client, frames.append)
    yield client, frames


@pytest.fixture()
def frames(dispatch: tuple[Any, list[f.Frame]]) -> list[f.Frame]:
    dispatch[1].clear()
    return dispatch[1]


@pytest.fixture()
def client(dispatch: tuple[Any, list[f.Frame]]) -> Any:
    return dispatch[0]


# -- connection events ----------------------------------------------------------------


def test_a_successful_pairing_is_not_a_failure(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import PairStatus

    # goneonize utils/encoder.go: EncodePairSuccess sets Status PairStatus_SUCCESS (2),
    # EncodePairError PairStatus_ERROR (1) and the error text. Nothing sends 0.
    push(client, PairStatus(ID=jid("15550001111"), Status=PairStatus.SUCCESS, Platform="android"))
    push(client, PairStatus(ID=jid(""), Status=PairStatus.ERROR, Error="invalid pairing"))
    assert frames == [
        f.Paired(phone="15550001111", platform="android"),
        f.PairFailed(error="invalid pairing"),
    ]


def test_client_outdated_and_stream_errors_are_reported(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import (
        ClientOutdated,
        ConnectFailure,
        ConnectFailureReason,
        StreamError,
    )

    # whatsmeow connectionevents.go, handleConnectFailure: a 405 dispatches ClientOutdated
    # (never a ConnectFailure) and blocks the auto-reconnect; unknown stream errors
    # dispatch StreamError.
    push(client, ClientOutdated())
    push(client, StreamError(Code="500"))
    push(client, ConnectFailure(Reason=ConnectFailureReason.INTERNAL_SERVER_ERROR, Message="x"))
    assert frames == [
        f.ClientOutdated(),
        f.StreamError(code="500"),
        f.ConnectFailure(reason="INTERNAL_SERVER_ERROR", message="x"),
    ]


def test_connection_lifecycle_events(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import (
        ConnectFailureReason,
        Disconnected,
        KeepAliveRestored,
        KeepAliveTimeout,
        LoggedOut,
        StreamReplaced,
        TemporaryBan,
    )

    client.event._qr(client, b"2@qr-code-data")  # what neonize's QR callback hands over
    client.event._qr(client, b"2@second-code")
    push(client, Disconnected())
    push(client, StreamReplaced())
    push(client, LoggedOut(OnConnect=True, Reason=ConnectFailureReason.MAIN_DEVICE_GONE))
    push(client, TemporaryBan(Code=TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600))
    push(client, KeepAliveTimeout(ErrorCount=1, LastSuccess=1))
    push(client, KeepAliveRestored())
    assert frames == [
        # whatsmeow qrchan.go: six codes, the first shown 60 s, the others 20 s.
        f.Qr(code="2@qr-code-data", lifetime=60.0),
        f.Qr(code="2@second-code", lifetime=20.0),
        f.Disconnected(),
        f.StreamReplaced(),
        f.LoggedOut(reason="MAIN_DEVICE_GONE", on_connect=True),
        f.TemporaryBan(code="SEND_TO_TOO_MANY_PEOPLE", expire=3600),
        f.KeepAlive(ok=False),
        f.KeepAlive(ok=True),
    ]


# -- messages ------------------------------------------------------------------------


def test_text_messages_map_to_message_frames(client: Any, frames: list[f.Frame]) -> None:
    push(client, message_event("hello"))
    assert frames == [
        f.Message(
            id="3EB0ABC",
            chat="15550007777@s.whatsapp.net",
            phone="15550007777",
            push_name="Zed",
            type="text",
            body="hello",
            timestamp=1_700_000_000,  # ms -> s
        )
    ]


def test_a_lid_sender_lands_in_the_chat_of_their_phone(client: Any, frames: list[f.Frame]) -> None:
    # whatsmeow message.go, parseMessageSource: a 1:1 message from a LID has Chat and
    # Sender `...@lid` and the phone number in SenderAlt (from the stanza's sender_pn).
    person = jid("98765432101234", LID, device=0)
    push(client, message_event("via lid", sender=person, sender_alt=jid("15550007777")))
    # Without SenderAlt (and no LID store to ask) the LID is all there is.
    push(client, message_event("lid only", sender=jid("98765432109999", LID), message_id="3EB0X"))
    assert [(m.chat, m.phone, m.lid) for m in frames] == [
        ("15550007777@s.whatsapp.net", "15550007777", "98765432101234@lid"),
        ("98765432109999@lid", None, "98765432109999@lid"),
    ]


def test_group_messages_keep_their_participant(client: Any, frames: list[f.Frame]) -> None:
    group = jid("120363000000000001", GROUP)
    # In a LID-addressed group the participant is a LID, its phone in SenderAlt
    # (participant_pn); in a phone-addressed one it is the other way round.
    push(
        client,
        message_event(
            "to the group",
            chat=group,
            sender=jid("98765432101234", LID),
            sender_alt=jid("15550007777"),
            group=True,
        ),
    )
    push(
        client,
        message_event(
            "again",
            chat=group,
            sender=jid("15550008888", device=3),
            sender_alt=jid("98765432105678", LID),
            group=True,
            message_id="3EB0G2",
        ),
    )
    assert [(m.chat, m.participant, m.phone, m.lid) for m in frames] == [
        (
            "120363000000000001@g.us",
            "15550007777@s.whatsapp.net",
            "15550007777",
            "98765432101234@lid",
        ),
        (
            "120363000000000001@g.us",
            "15550008888@s.whatsapp.net",
            "15550008888",
            "98765432105678@lid",
        ),
    ]


def test_status_updates_and_channels_are_not_messages(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ImageMessage

    push(
        client,
        message_event(
            chat=jid("status", "broadcast"),
            group=True,
            imageMessage=ImageMessage(caption="my day", mimetype="image/jpeg", fileLength=9),
            text="",
        ),
    )
    push(client, message_event("news", chat=jid("120363000000000009", "newsletter")))
    assert frames == []


def test_messages_sent_from_the_phone_are_recorded_as_sent(
    client: Any, frames: list[f.Frame]
) -> None:
    # whatsmeow message.go: our own message (from the phone, device 0, or another linked
    # device) has IsFromMe, Chat the recipient (a LID here), its phone in RecipientAlt.
    push(
        client,
        message_event(
            "from my phone",
            chat=jid("98765432101234", LID),
            sender=jid("15550001111"),
            recipient_alt=jid("15550007777"),
            from_me=True,
        ),
    )
    push(
        client,
        message_event(
            "from the laptop",
            chat=jid("15550007777"),
            sender=jid("15550001111", device=7),
            from_me=True,
            message_id="3EB0L",
        ),
    )
    assert [(m.chat, m.from_me, m.origin, m.push_name) for m in frames] == [
        ("15550007777@s.whatsapp.net", True, "phone", None),
        ("15550007777@s.whatsapp.net", True, "linked_device", None),
    ]


def test_media_is_described_and_never_fetched_here(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import AudioMessage, ImageMessage

    push(
        client,
        message_event(
            imageMessage=ImageMessage(caption="look", mimetype="image/jpeg", fileLength=1234),
            text="",
        ),
    )
    push(
        client,
        message_event(
            audioMessage=AudioMessage(mimetype="audio/ogg; codecs=opus", fileLength=77, PTT=True),
            text="",
            message_id="3EB0A",
        ),
    )
    assert [(m.type, m.body, m.media) for m in frames] == [
        ("image", "look", f.MediaInfo(mimetype="image/jpeg", size=1234, status="skipped")),
        ("audio", "", f.MediaInfo(mimetype="audio/ogg; codecs=opus", size=77, status="skipped")),
    ]


def test_undecryptable_messages_are_reported(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import UndecryptableMessage

    event = message_event("", sender=jid("98765432101234", LID), sender_alt=jid("15550007777"))
    push(client, UndecryptableMessage(Info=event.Info, IsUnavailable=True))
    assert frames == [
        f.Undecryptable(
            id="3EB0ABC",
            chat="15550007777@s.whatsapp.net",
            phone="15550007777",
            lid="98765432101234@lid",
            unavailable=True,
            timestamp=1_700_000_000,
        )
    ]


# -- receipts -----------------------------------------------------------------------


def test_receipts_only_count_what_they_say(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import MessageSource, Receipt

    source = MessageSource(
        Chat=jid("15550007777"),
        Sender=jid("15550007777"),
        IsFromMe=False,
        IsGroup=False,
        SenderAlt=empty_jid(),
    )

    def receipt(**fields: Any) -> Any:
        return Receipt(MessageSource=source, MessageIDs=["A1", "A2"], Timestamp=1, **fields)

    # goneonize EncodeReceipts sets Type for the kinds it knows (DELIVERED for whatsmeow's
    # empty delivered type); "server-error", "enc_rekey_retry" and other kinds come with
    # no Type at all, and PLAYED_SELF is encoded as SERVER_ERROR.
    push(client, receipt())
    push(client, receipt(Type=Receipt.SERVER_ERROR))
    push(client, receipt(Type=Receipt.READ_SELF))
    push(client, receipt(Type=Receipt.RETRY))
    assert frames == []
    push(client, receipt(Type=Receipt.DELIVERED))
    push(client, receipt(Type=Receipt.READ))
    assert frames == [
        f.Receipt(ids=["A1", "A2"], status="delivered", chat="15550007777@s.whatsapp.net"),
        f.Receipt(ids=["A1", "A2"], status="read", chat="15550007777@s.whatsapp.net"),
    ]


# -- frames --------------------------------------------------------------------------


def test_frames_are_decoded_into_their_structs_in_one_call() -> None:
    import io

    stream = io.BytesIO(
        encode(f.Connected(phone="15550001111", lid="1@lid"))
        + encode(f.Reply(re=7, ok=True, result={"id": "X"}))
    )
    channel: Channel[f.Report] = Channel(stream, io.BytesIO(), f.Report)
    assert channel.receive() == f.Connected(phone="15550001111", lid="1@lid")
    assert channel.receive() == f.Reply(re=7, ok=True, result={"id": "X"})
    assert channel.receive() is None
    # A frame of another shape (the old untagged dicts) is refused, never half-read.
    data = msgspec.msgpack.encode({"ev": "connected", "phone": "1"})
    stream = io.BytesIO(struct.pack(">I", len(data)) + data)
    with pytest.raises(ValueError, match="unexpected frame"):
        Channel(stream, io.BytesIO(), f.Report).receive()


# -- what goes out -------------------------------------------------------------------


def sample(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_the_kind_of_a_media_send_comes_from_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from PIL import Image

    def image(kind: str) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (4, 4)).save(out, kind)
        return out.getvalue()

    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 16
    webm = bytes.fromhex("1a45dfa3") + b"\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 16
    opus = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x02" + b"\x00" * 20
    mp3 = b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10 + b"\xff\xfb\x90\x00" * 8
    kinds = {
        name: outgoing_kind(sample(tmp_path, name, data), declared)
        for name, data, declared in (
            ("photo.png", image("PNG"), "image/png"),
            ("photo.jpg", image("JPEG"), "application/octet-stream"),
            ("anim.gif", image("GIF"), "image/gif"),
            ("drawing.svg", svg, "image/svg+xml"),
            ("photo.heic", heic, "image/heic"),
            ("clip.webm", webm, "video/webm"),
            ("note.ogg", opus, "audio/ogg"),
            ("song.mp3", mp3, "audio/mpeg"),
            ("fake.png", b"%PDF-1.4 not a png", "image/png"),
        )
    }
    # JPEG and PNG go as images whatever was declared; what WhatsApp cannot show as an
    # image or video (GIF, SVG, HEIC, WebM) goes as a document, never as broken media.
    assert kinds["photo.png"] == ("image", "image/png", False)
    assert kinds["photo.jpg"] == ("image", "image/jpeg", False)
    assert kinds["fake.png"][0] == "document"
    for name in ("anim.gif", "drawing.svg", "photo.heic", "clip.webm"):
        assert kinds[name][0] == "document", name
    # Audio needs ffmpeg (neonize reads its duration); with it, Ogg Opus is a voice note.
    assert kinds["note.ogg"][0] == "document" and kinds["song.mp3"][0] == "document"
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    assert outgoing_kind(sample(tmp_path, "v.ogg", opus), "audio/ogg") == (
        "audio",
        "audio/ogg; codecs=opus",
        True,
    )
    assert outgoing_kind(sample(tmp_path, "s.mp3", mp3), "audio/mpeg") == (
        "audio",
        "audio/mpeg",
        False,
    )


# -- the spool ------------------------------------------------------------------------


def test_the_spool_keeps_reports_until_they_are_committed(tmp_path: Path) -> None:
    path = tmp_path / "inbound.spool"
    spool = Spool(path)
    one = spool.append(
        f.Message(id="M1", chat="1@s.whatsapp.net", type="text", body="a", timestamp=1)
    )
    two = spool.append(f.Receipt(ids=["S1"], status="read", chat="1@s.whatsapp.net"))
    job = spool.append(f.PendingDownload(id="M1", message=b"proto"))
    assert one.seq < two.seq < job.seq  # type: ignore[attr-defined]
    spool.close()

    # A new child (after a crash) gets everything back, in order.
    again = Spool(path)
    assert again.replay() == [one, two, job]
    again.commit(two.seq)  # type: ignore[attr-defined]
    assert again.replay() == [job]  # a download to do is not the server's to commit
    done = again.append(f.MediaResult(id="M1", status="saved", path="/x", size=5))
    again.commit(done.seq)  # type: ignore[attr-defined]
    assert again.replay() == []
    again.close()

    # Numbers keep growing across rewrites, so the server can tell a replay from news.
    third = Spool(path)
    later = third.append(f.Message(id="M2", chat="1@s.whatsapp.net", type="text", timestamp=2))
    assert later.seq > done.seq  # type: ignore[attr-defined]
    third.close()

    # A torn last record (a crash mid-write) is dropped, the rest kept.
    with path.open("ab") as torn:
        torn.write(
            encode(f.Message(id="M3", chat="1@s.whatsapp.net", type="text", timestamp=3))[:-4]
        )
    assert [r.id for r in Spool(path).replay()] == ["M2"]  # type: ignore[attr-defined]
