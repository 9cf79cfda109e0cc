"""The cloud engine against a local fake of Meta's Graph API, and Meta's webhooks signed by the test."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from tests.fake_graph import PHONE_NUMBER_ID, RATE_LIMITED_NUMBER, TOKEN, FakeGraph
from tests.server import Api, Server, wait_until

APP_SECRET = "meta-app-secret"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    yield fake
    fake.close()


def cloud_settings(graph: FakeGraph, **overrides: str) -> dict[str, str]:
    return {
        "phoneNumberId": PHONE_NUMBER_ID,
        "accessToken": TOKEN,
        "appSecret": APP_SECRET,
        "verifyToken": "verify-me",
        "graphBaseUrl": graph.url,
        **overrides,
    }


@pytest.fixture(scope="module")
def cloud(server: Server, admin: Api, graph: FakeGraph) -> str:
    instance = admin.create_instance("Cloud", engine="cloud", cloud=cloud_settings(graph))
    wait_until(lambda: admin.status(instance["id"])["ready"])
    return instance["id"]


def signed(body: dict) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {
        "X-Hub-Signature-256": "sha256="
        + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }


def test_connecting_checks_the_credentials_with_a_graph_call(
    admin: Api, cloud: str, graph: FakeGraph
) -> None:
    assert any(r["path"] == f"/v21.0/{PHONE_NUMBER_ID}" for r in graph.requests)
    # The phone is recorded when the engine connects, after the request: the read models
    # show it a moment later (longer on MongoDB).
    wait_until(lambda: admin.http.get(f"/api/instances/{cloud}").json()["phone"] == "15550100200")
    assert "accessToken" not in admin.http.get(f"/api/instances/{cloud}").text


def test_a_bad_token_is_a_clear_connection_failure(admin: Api, graph: FakeGraph) -> None:
    bad = admin.create_instance(
        "Bad token", engine="cloud", cloud=cloud_settings(graph, accessToken="nope")
    )
    wait_until(lambda: admin.status(bad["id"])["status"] == "disconnected", timeout=15)
    # The actor knows first; the activity read model follows within milliseconds.
    closed = wait_until(
        lambda: admin.http.get(
            f"/api/instances/{bad['id']}/activity", params={"actions": "connection_closed"}
        ).json()["logs"]
    )
    assert "cloud_auth_failed" in closed[0]["details"]["reason"]
    refused = admin.send(bad["id"], "15550001111", "hi")
    assert refused.status_code == 409 and refused.json()["code"] == "instance_not_connected"


def test_send_text_posts_the_documented_shape(admin: Api, cloud: str, graph: FakeGraph) -> None:
    answer = admin.send(cloud, "+1 555 000 1111", "hello from the cloud")
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"].startswith("wamid.FAKE")
    sent = graph.requests[-1]["json"]
    assert sent == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15550001111",
        "type": "text",
        "text": {"body": "hello from the cloud", "preview_url": False},
    }


def test_send_file_uploads_then_sends_by_media_id(admin: Api, cloud: str, graph: FakeGraph) -> None:
    answer = admin.http.post(
        f"/api/whatsapp/{cloud}/send-file",
        data={"phone": "15550001111", "caption": "a picture"},
        files={"file": ("photo.png", b"\x89PNG fake image bytes", "image/png")},
    )
    assert answer.status_code == 200, answer.text
    upload, message = graph.requests[-2], graph.requests[-1]
    assert upload["form"] == {"messaging_product": "whatsapp", "type": "image/png"}
    assert upload["file"] == "photo.png" and upload["size"] == len(b"\x89PNG fake image bytes")
    assert message["json"]["type"] == "image"
    assert message["json"]["image"]["caption"] == "a picture"
    assert message["json"]["image"]["id"].startswith("media-")


def test_rate_limits_become_429(admin: Api, cloud: str) -> None:
    answer = admin.send(cloud, RATE_LIMITED_NUMBER, "too fast")
    assert answer.status_code == 429 and answer.json()["code"] == "rate_limited"
    assert "Retry-After" in answer.headers


def test_webhook_subscription_check(server: Server, cloud: str) -> None:
    client = server.client()
    ok = client.get(
        f"/api/cloud/{cloud}/webhook",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "verify-me",
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = client.get(
        f"/api/cloud/{cloud}/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "x"},
    )
    assert wrong.status_code == 403
    assert client.get("/api/cloud/not-an-id/webhook").status_code == 404


def test_inbound_messages_and_statuses_are_recorded_once(
    server: Server, admin: Api, cloud: str
) -> None:
    sent = admin.send(cloud, "15550002222", "status me").json()["id"]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550100200",
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            "contacts": [{"profile": {"name": "Kerry"}, "wa_id": "15550003333"}],
                            "messages": [
                                {
                                    "from": "15550003333",
                                    "id": "wamid.IN1",
                                    "timestamp": "1700000000",
                                    "type": "text",
                                    "text": {"body": "hi cloud"},
                                }
                            ],
                            "statuses": [
                                {
                                    "id": sent,
                                    "status": "delivered",
                                    "timestamp": "1700000001",
                                    "recipient_id": "15550002222",
                                },
                                {
                                    "id": sent,
                                    "status": "read",
                                    "timestamp": "1700000002",
                                    "recipient_id": "15550002222",
                                },
                            ],
                        },
                    }
                ],
            }
        ],
    }
    raw, headers = signed(body)
    client = server.client()
    assert (
        client.post(f"/api/cloud/{cloud}/webhook", content=raw, headers=headers).json()["received"]
        == 3
    )
    # Meta retries: the same delivery again changes nothing.
    assert (
        client.post(f"/api/cloud/{cloud}/webhook", content=raw, headers=headers).json()["received"]
        == 0
    )
    forged = client.post(
        f"/api/cloud/{cloud}/webhook",
        content=raw,
        headers={**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert forged.status_code == 403

    history = wait_until(
        lambda: admin.http.get(f"/api/instances/{cloud}/chats/15550003333/messages").json()[
            "messages"
        ]
    )
    assert [(m["content"], m["fromMe"]) for m in history] == [("hi cloud", False)]
    wait_until(
        lambda: (
            admin.http.get(f"/api/instances/{cloud}/chats/15550002222/messages").json()["messages"][
                0
            ]["status"]
            == "read"
        )
    )
    assert len(server.stored_events(cloud, topic="MessageReceived")) == 1
    contacts = admin.http.get(f"/api/whatsapp/{cloud}/contacts").json()["contacts"]
    assert {
        "id": "15550003333@s.whatsapp.net",
        "name": "Kerry",
        "number": "15550003333",
        "isGroup": False,
    } in contacts


def test_new_credentials_reconnect(admin: Api, graph: FakeGraph) -> None:
    instance = admin.create_instance(
        "Later fixed", engine="cloud", cloud=cloud_settings(graph, accessToken="old")
    )
    wait_until(lambda: admin.status(instance["id"])["status"] == "disconnected")
    fixed = admin.http.put(
        f"/api/instances/{instance['id']}", json={"cloud": cloud_settings(graph)}
    )
    assert fixed.status_code == 200, fixed.text
    wait_until(lambda: admin.status(instance["id"])["ready"])


def test_sandbox_controls_on_a_cloud_instance_are_400_naming_the_engine(
    admin: Api, cloud: str
) -> None:
    for control, body in (
        ("scan", {"phone": "15550100999"}),
        ("inbound", {"from": "15550100998", "message": "hi"}),
        ("drop", None),
    ):
        answer = admin.http.post(f"/api/sandbox/instances/{cloud}/{control}", json=body)
        assert answer.status_code == 400, (control, answer.text)
        assert answer.json()["code"] == "unsupported_by_engine"
        assert answer.json()["error"].startswith("The cloud engine cannot simulate"), answer.text
