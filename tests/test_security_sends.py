"""Sends with files and idempotency keys, against a real server: a failed send keeps no file
and fetches nothing it need not, events name a file by id (never a server path), and an
Idempotency-Key reused for another message is refused.

Before: a send-media to a disconnected instance downloaded the file and left it on disk
with its 409 (as did send-file, and every send that failed after the download); media
events carried the server's file path, and the sandbox handed the sender's path to the
recipient; and a second message with the same Idempotency-Key was silently dropped (the
first one's id came back).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from domain.instance import Instance
from tests.fake_graph import PHONE_NUMBER_ID, TOKEN, FakeGraph
from tests.media_host import MediaHost
from tests.server import Api, Server, wait_until

pytestmark = pytest.mark.drill_cases("security cases")

PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def host() -> Iterator[MediaHost]:
    served = MediaHost(
        {
            "/a.png": (PNG, "image/png", True),
            "/b.png": (PNG + b"b", "image/png", True),
            "/slow.png": (PNG, "image/png", True),
        }
    )
    served.held.add("/slow.png")
    yield served
    served.close()


@pytest.fixture()
def alice(server: Server, admin: Api) -> Api:
    email = f"sender-{next(_numbers)}-{uuid.uuid4().hex[:6]}@example.com"
    admin.create_user(email, password="sender-password-1")
    return Api.login(server, email, "sender-password-1")


def phone() -> str:
    return f"1555860{next(_numbers):04d}{uuid.uuid4().int % 10}"


def uploads(server: Server) -> set[str]:
    directory = server.root / "uploads"
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def send_media(api: Api, instance: str, url: str, key: str | None = None) -> httpx.Response:
    return api.http.post(
        f"/api/whatsapp/{instance}/send-media",
        json={"phone": "15558609999", "url": url},
        headers={"Idempotency-Key": key} if key else {},
    )


def send_file(
    api: Api, instance: str, content: bytes = PNG, key: str | None = None, to: str = "15558609999"
) -> httpx.Response:
    return api.http.post(
        f"/api/whatsapp/{instance}/send-file",
        data={"phone": to, "caption": "a file"},
        files={"file": ("pixel.png", content, "image/png")},
        headers={"Idempotency-Key": key} if key else {},
    )


# -- files of failed sends ------------------------------------------------------------------------


def test_a_send_to_a_disconnected_instance_fetches_and_keeps_nothing(
    server: Server, alice: Api, host: MediaHost
) -> None:
    instance = alice.create_instance("Not paired")["id"]
    before, fetched = uploads(server), len(host.requests)
    answer = send_media(alice, instance, host.url + "/a.png")
    assert answer.status_code == 409 and answer.json()["code"] == "instance_not_connected"
    assert len(host.requests) == fetched  # checked before the download
    answer = send_file(alice, instance)
    assert answer.status_code == 409 and answer.json()["code"] == "instance_not_connected"
    assert uploads(server) == before


def test_a_send_that_fails_after_its_download_removes_the_file(
    server: Server, alice: Api, host: MediaHost
) -> None:
    instance = alice.create_instance("Logs out mid-send")["id"]
    alice.pair(instance, phone())
    before = uploads(server)
    answers: list[httpx.Response] = []
    sending = threading.Thread(
        target=lambda: answers.append(send_media(alice, instance, host.url + "/slow.png"))
    )
    sending.start()
    wait_until(lambda: "/slow.png" in host.requests)  # the download has started
    assert alice.http.post(f"/api/instances/{instance}/logout").status_code == 200
    host.release()
    sending.join(timeout=30)
    assert answers[0].status_code == 409, answers[0].text
    assert uploads(server) == before


def test_a_send_over_the_quota_fetches_and_keeps_nothing(
    server: Server, admin: Api, alice: Api, host: MediaHost
) -> None:
    instance = alice.create_instance("Over quota")["id"]
    alice.pair(instance, phone())
    user_id = alice.http.get("/api/auth/me").json()["id"]
    assert (
        admin.http.put(
            f"/api/users/{user_id}", json={"limits": {"maxMessagesPerDay": 0}}
        ).status_code
        == 200
    )
    before, fetched = uploads(server), len(host.requests)
    assert send_media(alice, instance, host.url + "/a.png").status_code == 429
    assert send_file(alice, instance).status_code == 429
    assert len(host.requests) == fetched and uploads(server) == before


# -- what events say about files ------------------------------------------------------------------


def test_media_events_name_a_file_by_id_never_by_path(
    server: Server, admin: Api, alice: Api
) -> None:
    bob_email = f"recipient-{uuid.uuid4().hex[:6]}@example.com"
    admin.create_user(bob_email, password="recipient-password")
    bob = Api.login(server, bob_email, "recipient-password")
    a, b, b_phone = alice.create_instance("Sender")["id"], bob.create_instance("To")["id"], phone()
    alice.pair(a, phone())
    bob.pair(b, b_phone)
    sent = send_file(alice, a, to=b_phone)
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["id"]

    def media_of(api: Api, instance: str, kind: str) -> dict[str, Any]:
        events = api.http.get(
            f"/api/instances/{instance}/events", params={"types": kind, "limit": 1000}
        ).json()["events"]
        return next(e for e in events if e["data"]["messageId"] == message_id)["data"]["media"]

    mine = wait_until(lambda: media_of(alice, a, "MessageSent"))
    theirs = wait_until(lambda: media_of(bob, b, "MessageReceived"))
    for media in (mine, theirs):
        assert set(media) == {"id", "filename", "mimetype", "size"}, media
        assert media["filename"] == "pixel.png" and "/" not in media["id"]
    assert (server.root / "uploads" / mine["id"]).read_bytes() == PNG  # the id names the file
    # What is stored says the same (the audit trail would hide an old event's path).
    for instance, kind in ((a, "MessageSent"), (b, "MessageReceived")):
        [stored] = [
            e
            for e in server.stored_events(instance, f"Instance.{kind}")
            if e.message_id == message_id
        ]
        assert "path" not in stored.media and stored.media["id"] == mine["id"]
    uploads_dir = str(server.root / "uploads")
    for api, instance in ((alice, a), (bob, b)):
        everything = api.http.get(f"/api/instances/{instance}/events", params={"limit": 1000}).text
        assert uploads_dir not in everything and str(server.root) not in everything
        history = api.http.get(f"/api/instances/{instance}/chats/{b_phone}/messages").text
        assert str(server.root) not in history


# -- idempotency keys ------------------------------------------------------------------------------


def test_an_idempotency_key_reused_for_another_message_is_422(
    server: Server, alice: Api, host: MediaHost
) -> None:
    instance = alice.create_instance("Retries")["id"]
    alice.pair(instance, phone())
    key = f"order-{uuid.uuid4().hex}"
    first = alice.send(instance, "15558601111", "your order shipped", **{"Idempotency-Key": key})
    again = alice.send(instance, "15558601111", "your order shipped", **{"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]  # a retry: the first send's answer
    for phone_, text in (
        ("15558601111", "your order was cancelled"),
        ("15558602222", "your order shipped"),
    ):
        reused = alice.send(instance, phone_, text, **{"Idempotency-Key": key})
        assert reused.status_code == 422, reused.text
        body = reused.json()
        assert body["code"] == "idempotency_key_reused" and key in body["error"]
    chat = alice.http.get(f"/api/instances/{instance}/chats/15558601111/messages").json()
    assert [m["content"] for m in chat["messages"]] == ["your order shipped"]

    # By URL: refused before anything is fetched; a true retry is answered without a fetch.
    media_key = f"media-{uuid.uuid4().hex}"
    first = send_media(alice, instance, host.url + "/a.png", media_key)
    assert first.status_code == 200, first.text
    fetched = len(host.requests)
    assert send_media(alice, instance, host.url + "/a.png", media_key).json() == first.json()
    reused = send_media(alice, instance, host.url + "/b.png", media_key)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert len(host.requests) == fetched

    # By upload: another file under the same key is refused, and neither copy is kept.
    file_key = f"file-{uuid.uuid4().hex}"
    first = send_file(alice, instance, key=file_key)
    assert first.status_code == 200, first.text
    before = uploads(server)
    assert send_file(alice, instance, key=file_key).json() == first.json()
    reused = send_file(alice, instance, content=PNG + b"other", key=file_key)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert uploads(server) == before


def test_keys_remembered_before_fingerprints_still_answer_their_retries() -> None:
    """A key stored by an older version (its event has no fingerprint; an older snapshot
    keeps a bare message id) answers a retry with its first message and is never refused:
    what it first sent is not known, and a message must not go out twice."""
    instance = Instance("u", "Old keys", "", "sandbox", {}, {})
    instance.open_connection("15558603333", None)
    instance.record_sent("M1", "x@s.whatsapp.net", "text", "hi", None, 1, "old-key")
    events = instance.collect_events()
    del events[-1].__dict__["idempotency_fingerprint"]  # as an older version stored it
    replayed: Any = None
    for event in events:
        replayed = event.mutate(replayed)
    assert replayed.sent_for_key("old-key", "any fingerprint") == "M1"
    replayed.idempotency["older"] = "M0"  # a snapshot from before fingerprints
    assert replayed.sent_for_key("older", "any fingerprint") == "M0"


def test_uploads_are_owner_only(server: Server, alice: Api) -> None:
    instance = alice.create_instance("Modes")["id"]
    alice.pair(instance, phone())
    assert send_file(alice, instance).status_code == 200
    directory = server.root / "uploads"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in directory.iterdir()} == {"0o600"}


def test_a_reused_key_is_422_on_the_cloud_engine_too(server: Server, alice: Api) -> None:
    """The Cloud API engine sends without holding its actor (the network answers later):
    the key is checked there too, for a send that is stored and for one still under way."""
    graph = FakeGraph()
    try:
        instance = alice.create_instance(
            "Cloud retries",
            engine="cloud",
            cloud={
                "phoneNumberId": PHONE_NUMBER_ID,
                "accessToken": TOKEN,
                "appSecret": "cloud-app-secret",
                "verifyToken": "cloud-verify",
                "graphBaseUrl": graph.url,
            },
        )["id"]
        wait_until(lambda: alice.status(instance)["ready"], timeout=15)
        key = f"cloud-{uuid.uuid4().hex}"
        first = alice.send(instance, "15558604444", "shipped", **{"Idempotency-Key": key})
        assert first.status_code == 200, first.text
        again = alice.send(instance, "15558604444", "shipped", **{"Idempotency-Key": key})
        assert again.json() == first.json()
        reused = alice.send(instance, "15558604444", "cancelled", **{"Idempotency-Key": key})
        assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
        posted = [r for r in graph.requests if r["path"].endswith("/messages")]
        assert len(posted) == 1  # one message went to Meta
    finally:
        graph.close()
