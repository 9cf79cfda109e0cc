"""The whatsmeow engine's child process: one neonize client, driven over stdin/stdout.

Run as `python -m actors.engines.whatsmeow_child SESSION_DB UPLOADS_DIR MAX_FILE_SIZE`.
The Go runtime inside neonize aborts the whole process on a panic, so each instance's
client lives in a process of its own; the server sees a crash as the end of this
process's output and restarts it. Frames out: events ({"ev": ...}) and replies
({"re": id, "ok": ..}); frames in: commands ({"op": ..., "id": ...}).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from actors.engines.frames import Channel

MEDIA_KINDS = {
    "imageMessage": "image",
    "videoMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}


def jid_text(jid: Any) -> str:
    if not jid.User:
        return ""
    return f"{jid.User}@{jid.Server}"


def enum_name(event: Any, field: str = "Reason") -> str:
    """The name of an enum field's value (MAIN_DEVICE_GONE rather than 4)."""
    number = getattr(event, field)
    value = type(event).DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(number)
    return value.name if value is not None else str(number)


def map_message(
    event: Any, uploads_dir: Path | None, max_size: int, download: Any = None
) -> dict[str, Any] | None:
    """A neonize MessageEv as an `inbound` frame; None for our own or empty messages."""
    source = event.Info.MessageSource
    if source.IsFromMe:
        return None
    message = event.Message
    body = message.conversation or message.extendedTextMessage.text
    kind: str = "text"
    media: dict[str, Any] | None = None
    for field, name in MEDIA_KINDS.items():
        if message.HasField(field):
            part = getattr(message, field)
            kind = name
            body = getattr(part, "caption", "") or ""
            size = int(part.fileLength or 0)
            media = {
                "mimetype": part.mimetype or None,
                "size": size,
                "filename": getattr(part, "fileName", "") or None,
                "id": None,  # the file's name under the uploads directory, once downloaded
            }
            if download is not None and uploads_dir is not None and size <= max_size:
                try:
                    data = download(message)
                    path = uploads_dir / f"{uuid.uuid4().hex}-{event.Info.ID}"
                    path.write_bytes(data)
                    media["id"], media["size"] = path.name, len(data)
                except Exception as error:  # the message still arrives, without its file
                    media["error"] = str(error)
            break
    if kind == "text" and not body:
        return None
    chat = jid_text(source.Chat)
    timestamp = int(event.Info.Timestamp)
    if timestamp > 10**11:  # milliseconds in messages (receipts are in seconds)
        timestamp //= 1000
    return {
        "ev": "inbound",
        "id": event.Info.ID,
        "sender": chat or jid_text(source.Sender),
        "push_name": event.Info.Pushname or None,
        "type": kind,
        "body": body,
        "media": media,
        "timestamp": timestamp,
    }


def map_receipt(event: Any) -> list[dict[str, Any]]:
    """Receipts for messages we sent: delivered, read, played; other kinds are ignored.

    An unset Type is whatsmeow's plain delivery receipt; check HasField rather than
    trusting the enum's default.
    """
    from neonize.proto.Neonize_pb2 import Receipt

    status: str | None
    if not event.HasField("Type"):
        status = "delivered"
    else:
        status = {
            Receipt.DELIVERED: "delivered",
            Receipt.READ: "read",
            Receipt.PLAYED: "played",
        }.get(event.Type)
    if status is None or event.MessageSource.IsFromMe:
        return []
    chat = jid_text(event.MessageSource.Chat)
    return [
        {"ev": "receipt", "id": message_id, "status": status, "chat": chat}
        for message_id in event.MessageIDs
    ]


def register(client: Any, send: Any, uploads_dir: Path | None, max_size: int) -> None:
    """Map every relevant neonize event of `client` to frames passed to `send`."""
    from neonize.events import (
        ConnectedEv,
        ConnectFailureEv,
        DisconnectedEv,
        KeepAliveRestoredEv,
        KeepAliveTimeoutEv,
        LoggedOutEv,
        MessageEv,
        PairStatusEv,
        ReceiptEv,
        StreamReplacedEv,
        TemporaryBanEv,
    )

    def on_qr(_: Any, data: bytes) -> None:
        send({"ev": "qr", "code": data.decode(errors="replace")})

    def on_connected(c: Any, _: Any) -> None:
        me = getattr(c, "me", None)  # set by neonize from the Device event; never get_me()
        phone = me.JID.User if me is not None and me.HasField("JID") else None
        send(
            {
                "ev": "connected",
                "phone": phone or None,
                "push_name": getattr(me, "PushName", None) or None,
            }
        )

    def on_pair(_: Any, event: Any) -> None:
        if event.Status == 0 and not event.Error:
            send({"ev": "paired", "phone": event.ID.User or None})
        else:
            send({"ev": "pair_failed", "error": event.Error or "pairing failed"})

    client.event.qr(on_qr)
    client.event(ConnectedEv)(on_connected)
    client.event(PairStatusEv)(on_pair)
    client.event(DisconnectedEv)(
        lambda c, e: send({"ev": "disconnected", "reason": "disconnected", "will_reconnect": True})
    )
    client.event(ConnectFailureEv)(
        lambda c, e: send(
            {
                "ev": "disconnected",
                "reason": f"connect_failure: {e.Message or enum_name(e)}",
                "will_reconnect": False,
            }
        )
    )
    client.event(StreamReplacedEv)(
        lambda c, e: send(
            {"ev": "disconnected", "reason": "stream_replaced", "will_reconnect": False}
        )
    )
    client.event(LoggedOutEv)(
        lambda c, e: send({"ev": "logged_out", "reason": f"logged_out: {enum_name(e)}"})
    )
    client.event(TemporaryBanEv)(
        lambda c, e: send({"ev": "banned", "reason": enum_name(e, "Code"), "expire": int(e.Expire)})
    )
    client.event(KeepAliveTimeoutEv)(lambda c, e: send({"ev": "keepalive", "ok": False}))
    client.event(KeepAliveRestoredEv)(lambda c, e: send({"ev": "keepalive", "ok": True}))
    download = getattr(client, "download_any", None)
    client.event(MessageEv)(
        lambda c, e: (frame := map_message(e, uploads_dir, max_size, download)) and send(frame)
    )
    client.event(ReceiptEv)(lambda c, e: [send(frame) for frame in map_receipt(e)])


class Child:
    """The command loop around one neonize client."""

    def __init__(self, channel: Channel, session_db: str, uploads_dir: Path, max_size: int) -> None:
        from neonize.client import NewClient

        self.channel = channel
        self.client = NewClient(session_db, uuid=uuid.uuid4().hex)
        self.uploads_dir = uploads_dir
        self.max_size = max_size
        register(self.client, channel.send, uploads_dir, max_size)
        self._connection: threading.Thread | None = None

    def serve(self) -> None:
        while (command := self.channel.receive()) is not None:
            op = command.get("op")
            if op == "stop":
                break
            threading.Thread(target=self._run, args=(command,), daemon=True).start()
        self._stop()

    def _run(self, command: dict[str, Any]) -> None:
        try:
            result = getattr(self, f"op_{command['op']}")(**command.get("args", {}))
            self.channel.send({"re": command.get("id"), "ok": True, "result": result})
        except Exception as error:
            self.channel.send(
                {"re": command.get("id"), "ok": False, "error": f"{type(error).__name__}: {error}"}
            )

    # -- commands ---------------------------------------------------------------------

    def op_ping(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"pid": os.getpid(), "neonize": version("neonize")}

    def op_connect(self, proxy: str | None = None) -> None:
        if self._connection is not None and self._connection.is_alive():
            return
        self._connection = threading.Thread(target=self._connect, args=(proxy,), daemon=True)
        self._connection.start()

    def _connect(self, proxy: str | None) -> None:
        try:
            if proxy:
                self.client.set_proxy_address(proxy)
            self.client.connect()
            self.channel.send(
                {"ev": "disconnected", "reason": "connection ended", "will_reconnect": True}
            )
        except Exception as error:
            self.channel.send(
                {"ev": "disconnected", "reason": f"connect failed: {error}", "will_reconnect": True}
            )

    def op_send_text(self, to: str, text: str) -> dict[str, Any]:
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
        from neonize.utils.jid import build_jid

        # A plain conversation message (a str would go out as extendedTextMessage).
        response = self.client.send_message(_jid(to, build_jid), Message(conversation=text))
        return {"id": response.ID, "timestamp": int(response.Timestamp)}

    def op_send_media(
        self, to: str, path: str, kind: str, caption: str, filename: str, mimetype: str
    ) -> dict[str, Any]:
        from neonize.utils.jid import build_jid

        data = Path(path).read_bytes()  # bytes we hold: neonize never fetches URLs here
        build = {
            "image": lambda: self.client.build_image_message(data, caption=caption or None),
            "video": lambda: self.client.build_video_message(data, caption=caption or None),
            "audio": lambda: self.client.build_audio_message(data),
        }.get(
            kind,
            lambda: self.client.build_document_message(
                data, caption=caption or None, filename=filename, mimetype=mimetype
            ),
        )
        response = self.client.send_message(_jid(to, build_jid), build())
        return {"id": response.ID, "timestamp": int(response.Timestamp)}

    def op_logout(self) -> None:
        self.client.logout()

    def op_pair_phone(self, phone: str) -> str:
        return self.client.PairPhone(phone, True)

    def op_check(self, phone: str) -> bool:
        answers = self.client.is_on_whatsapp(phone)
        return bool(answers and answers[0].IsIn)

    def _stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop()


def _jid(to: str, build_jid: Any) -> Any:
    user, _, server = to.partition("@")
    return build_jid(user, server or "s.whatsapp.net")


def main(argv: list[str]) -> int:
    session_db, uploads_dir, max_size = argv[0], Path(argv[1]), int(argv[2])
    # Frames go to a private copy of stdout; anything the library prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    channel = Channel(sys.stdin.buffer, out)
    Path(session_db).parent.mkdir(parents=True, exist_ok=True)
    uploads_dir.mkdir(parents=True, exist_ok=True)
    child = Child(channel, session_db, uploads_dir, max_size)
    channel.send({"ev": "ready", "pid": os.getpid(), "at": time.time()})
    child.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
