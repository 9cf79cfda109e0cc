"""The whatsmeow engine, offline: neonize's real dispatch path, the child process, crashes, retries."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.engines.whatsmeow import WhatsmeowEngine
from actors.engines.whatsmeow_child import register
from tests.server import Api, running_server, wait_until

neonize = pytest.importorskip("neonize")


@pytest.fixture(scope="module")
def dispatch(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """One neonize client (never connected) with our handlers, and the frames they send."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from neonize.client import NewClient

    root.handlers[:], root.level = handlers, level  # undo neonize's basicConfig on import
    client = NewClient(str(tmp_path_factory.mktemp("neonize") / "session.db"), uuid="dispatch-test")
    frames: list[dict[str, Any]] = []
    register(client, frames.append, None, 1000)
    yield client, frames


def push(client: Any, event: Any) -> None:
    """Through neonize's own dispatch: serialized bytes, a pointer, the event code."""
    from neonize.events import EVENT_TO_INT

    data = event.SerializePartialToString()
    buffer = ctypes.create_string_buffer(data, len(data) or 1)
    client.event.execute(0, ctypes.addressof(buffer), len(data), EVENT_TO_INT[type(event)])


def jid(user: str) -> Any:
    from neonize.proto.Neonize_pb2 import JID

    return JID(
        User=user, Server="s.whatsapp.net", RawAgent=0, Device=0, Integrator=0, IsEmpty=False
    )


def message_event(**message: Any) -> Any:
    from neonize.proto.Neonize_pb2 import Message as MessageEv
    from neonize.proto.Neonize_pb2 import MessageInfo, MessageSource
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    from_me = message.pop("from_me", False)
    source = MessageSource(
        Chat=jid("15550007777"), Sender=jid("15550007777"), IsFromMe=from_me, IsGroup=False
    )
    info = MessageInfo(
        MessageSource=source, ID="3EB0ABC", Pushname="Zed", Timestamp=1_700_000_000_123
    )
    return MessageEv(Info=info, Message=Message(**message))


def test_text_messages_map_to_inbound_frames(dispatch: tuple[Any, list]) -> None:
    client, frames = dispatch
    frames.clear()
    push(client, message_event(conversation="hello"))
    assert frames == [
        {
            "ev": "inbound",
            "id": "3EB0ABC",
            "sender": "15550007777@s.whatsapp.net",
            "push_name": "Zed",
            "type": "text",
            "body": "hello",
            "media": None,
            "timestamp": 1_700_000_000,  # ms -> s
        }
    ]


def test_own_messages_and_captioned_media(dispatch: tuple[Any, list]) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ImageMessage

    client, frames = dispatch
    frames.clear()
    push(client, message_event(conversation="sent from the phone", from_me=True))
    assert frames == []
    push(
        client,
        message_event(
            imageMessage=ImageMessage(caption="look", mimetype="image/jpeg", fileLength=1234)
        ),
    )
    assert frames[0]["type"] == "image" and frames[0]["body"] == "look"
    assert frames[0]["media"] == {
        "mimetype": "image/jpeg",
        "size": 1234,
        "filename": None,
        "id": None,
    }


def test_receipts_including_the_unset_type_trap(dispatch: tuple[Any, list]) -> None:
    from neonize.proto.Neonize_pb2 import MessageSource, Receipt

    client, frames = dispatch
    source = MessageSource(
        Chat=jid("15550007777"), Sender=jid("15550007777"), IsFromMe=False, IsGroup=False
    )
    frames.clear()
    push(client, Receipt(MessageSource=source, MessageIDs=["A1", "A2"], Timestamp=1_700_000_000))
    assert [(f["id"], f["status"]) for f in frames] == [("A1", "delivered"), ("A2", "delivered")]
    frames.clear()
    push(client, Receipt(MessageSource=source, MessageIDs=["A1"], Timestamp=1, Type=Receipt.READ))
    push(
        client,
        Receipt(MessageSource=source, MessageIDs=["A1"], Timestamp=1, Type=Receipt.READ_SELF),
    )
    push(client, Receipt(MessageSource=source, MessageIDs=["A1"], Timestamp=1, Type=Receipt.RETRY))
    assert [f["status"] for f in frames] == ["read"]


def test_connection_lifecycle_events(dispatch: tuple[Any, list]) -> None:
    from neonize.proto.Neonize_pb2 import (
        ConnectFailure,
        ConnectFailureReason,
        Disconnected,
        LoggedOut,
        StreamReplaced,
        TemporaryBan,
    )

    client, frames = dispatch
    frames.clear()
    client.event._qr(client, b"2@qr-code-data")  # what neonize's QR callback hands over
    push(client, Disconnected())
    push(
        client,
        ConnectFailure(Reason=ConnectFailureReason.CLIENT_OUTDATED, Message="client outdated"),
    )
    push(client, StreamReplaced())
    push(client, LoggedOut(OnConnect=True, Reason=ConnectFailureReason.MAIN_DEVICE_GONE))
    push(client, TemporaryBan(Code=TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600))
    assert [f["ev"] for f in frames] == [
        "qr",
        "disconnected",
        "disconnected",
        "disconnected",
        "logged_out",
        "banned",
    ]
    assert frames[0]["code"] == "2@qr-code-data"
    assert frames[1]["will_reconnect"] is True
    assert frames[2] == {
        "ev": "disconnected",
        "reason": "connect_failure: client outdated",
        "will_reconnect": False,
    }
    assert frames[3]["reason"] == "stream_replaced"
    assert frames[4] == {"ev": "logged_out", "reason": "logged_out: MAIN_DEVICE_GONE"}
    assert frames[5] == {"ev": "banned", "reason": "SEND_TO_TOO_MANY_PEOPLE", "expire": 3600}


def test_the_child_process_starts_and_answers(tmp_path: Path) -> None:
    reports: list[Any] = []
    engine = WhatsmeowEngine(
        tmp_path / "instance", tmp_path / "uploads", 1000, None, reports.append
    )
    try:
        answer = engine.ping()
        assert answer["neonize"] == "0.5.2" and answer["pid"] != os.getpid()
    finally:
        engine.disconnect()
    with pytest.raises(ProcessLookupError):
        os.kill(answer["pid"], 0)


def child_pids(instance_id: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"whatsmeow_child" in command and instance_id.encode() in command:
                pids.append(int(entry.name))
    return pids


def closed_reasons(api: Api, instance_id: str) -> list[tuple[str, bool]]:
    logs = api.http.get(
        f"/api/instances/{instance_id}/activity",
        params={"actions": "connection_closed", "limit": 100},
    ).json()["logs"]
    return [
        (entry["details"]["reason"], entry["details"]["willReconnect"]) for entry in reversed(logs)
    ]


def test_offline_connects_fail_clearly_and_retries_are_capped(tmp_path: Path) -> None:
    with running_server(tmp_path, ENGINE_RETRY_BASE_MS="20") as server:
        api = Api.login(server)
        instance = api.create_instance("Offline", engine="whatsmeow")["id"]
        wait_until(lambda: api.status(instance)["status"] == "disconnected", timeout=60)
        reasons = closed_reasons(api, instance)
        assert reasons[-1] == ("reconnect_limit", False)
        failures = [r for r in reasons[:-1] if r[1]]
        assert 1 <= len(failures) <= 6
        assert all(
            reason.startswith(("connect failed", "connection ended", "engine_crashed"))
            for reason, _ in failures
        )
        assert child_pids(instance) == []  # no engine left running
        assert api.http.get("/health").status_code == 200


def test_a_killed_child_is_restarted_while_the_api_keeps_answering(tmp_path: Path) -> None:
    with running_server(tmp_path, ENGINE_RETRY_BASE_MS="3000") as server:
        api = Api.login(server)
        instance = api.create_instance("Crashy", engine="whatsmeow")["id"]
        first = wait_until(lambda: child_pids(instance), timeout=20)[0]
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: ("engine_crashed", True) in closed_reasons(api, instance), timeout=20)
        assert api.http.get(f"/api/instances/{instance}").status_code == 200
        assert server.client().get("/health").status_code == 200
        second = wait_until(lambda: [p for p in child_pids(instance) if p != first], timeout=30)
        assert second
