"""The Cloud API engine on a real server, against the local fake of Meta's Graph API
(tests/fake_graph.py, built from Meta's documentation) and Meta's webhooks signed as
Meta signs them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_graph import (
    OTHER_PHONE_NUMBER_ID,
    OUTSIDE_WINDOW_NUMBER,
    PAIR_LIMITED_NUMBER,
    PHONE_NUMBER_ID,
    RATE_LIMITED_NUMBER,
    REWRITTEN_NUMBER,
    REWRITTEN_WA_ID,
    SLOW_NUMBER,
    SPAM_LIMITED_NUMBER,
    TEMPORARY_NUMBER,
    TOKEN,
    UNDELIVERABLE_NUMBER,
    WABA_ID,
    FakeGraph,
    account_update_webhook,
    envelope,
    message_webhook,
    sign,
    status_webhook,
)
from tests.places import place
from tests.receiver import Receiver
from tests.server import Api, Server, running_server, wait_until

APP_SECRET = "meta-app-secret"
SERVER_VERSION = "v25.0"  # the server's CLOUD_API_VERSION here, to see that it is used


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cloud")
    with (
        place(request, provider, root) as storage,
        running_server(
            root, storage, CLOUD_API_VERSION=SERVER_VERSION, ENGINE_RETRY_BASE_MS="20"
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def receiver(server: Server) -> Iterator[Receiver]:
    """A webhook receiver of this module's server (one per storage provider)."""
    hooks = Receiver()
    yield hooks
    hooks.close()


def cloud_settings(graph: FakeGraph, **overrides: Any) -> dict[str, Any]:
    return {
        "phoneNumberId": PHONE_NUMBER_ID,
        "accessToken": TOKEN,
        "appSecret": APP_SECRET,
        "verifyToken": "verify-me",
        "graphBaseUrl": graph.url,
        **overrides,
    }


def new_cloud(admin: Api, graph: FakeGraph, name: str = "Cloud", **fields: Any) -> str:
    cloud = cloud_settings(graph, **fields.pop("cloud", {}))
    instance = admin.create_instance(name, engine="cloud", cloud=cloud, **fields)
    wait_until(lambda: admin.status(instance["id"])["ready"], timeout=15)
    return instance["id"]


@pytest.fixture(scope="module")
def cloud(admin: Api, graph: FakeGraph, receiver: Receiver) -> str:
    return new_cloud(admin, graph, webhookUrl=receiver.url, webhookEnabled=True)


def deliver(
    server: Server, instance: str | None, body: dict[str, Any] | bytes, secret: str = APP_SECRET
) -> httpx.Response:
    """POST a webhook as Meta does: to an instance's callback, or the app's (None)."""
    raw, headers = sign(secret, body)
    url = f"/api/cloud/{instance}/webhook" if instance else "/api/cloud/webhook"
    return server.client().post(url, content=raw, headers=headers)


def received(server: Server, instance: str, message_id: str) -> int:
    """How many MessageReceived events the store holds for this message id."""
    events = server.stored_events(instance, topic="MessageReceived")
    return sum(e.message_id == message_id for e in events)


def history(admin: Api, instance: str, chat: str) -> list[dict[str, Any]]:
    answer = admin.http.get(f"/api/instances/{instance}/chats/{chat}/messages")
    assert answer.status_code == 200, answer.text
    return answer.json()["messages"]


def activity(admin: Api, instance: str, action: str) -> list[dict[str, Any]]:
    return admin.http.get(f"/api/instances/{instance}/activity", params={"actions": action}).json()[
        "logs"
    ]


# -- connecting (issue 21 items 4, 6) -----------------------------------------------------


def test_connecting_checks_the_token_and_shows_the_numbers_state(
    admin: Api, cloud: str, graph: FakeGraph
) -> None:
    # No apiVersion was chosen: the server's CLOUD_API_VERSION is used, and not stored.
    assert any(r["path"] == f"/{SERVER_VERSION}/{PHONE_NUMBER_ID}" for r in graph.requests)
    view = wait_until(
        lambda: (v := admin.http.get(f"/api/instances/{cloud}").json())["phone"] and v
    )
    assert view["phone"] == "15550100200"
    assert "accessToken" not in str(view) and "apiVersion" not in {
        k for k, v in view["engineSettings"].items() if v
    }
    assert view["connectionDetails"] == {
        "status": "CONNECTED",
        "qualityRating": "GREEN",
        "messagingLimitTier": "TIER_1K",
        "platformType": "CLOUD_API",
        "throughput": "STANDARD",
        "canSendMessage": "AVAILABLE",
    }


def test_a_chosen_version_is_used_and_the_former_default_follows_the_server(
    admin: Api, graph: FakeGraph
) -> None:
    chosen = new_cloud(admin, graph, "Chosen", cloud={"apiVersion": "v23.0"})
    assert any(r["path"].startswith("/v23.0/") for r in graph.requests)
    # v21.0 was every instance's stored default until now: it follows the server's.
    before = len(graph.requests)
    changed = admin.http.put(
        f"/api/instances/{chosen}", json={"cloud": cloud_settings(graph, apiVersion="v21.0")}
    )
    assert changed.status_code == 200, changed.text
    wait_until(lambda: len(graph.requests) > before)
    assert graph.requests[before]["path"] == f"/{SERVER_VERSION}/{PHONE_NUMBER_ID}"


def test_a_bad_token_is_final_with_a_clear_reason(admin: Api, graph: FakeGraph) -> None:
    bad = admin.create_instance(
        "Bad token", engine="cloud", cloud=cloud_settings(graph, accessToken="nope")
    )
    wait_until(lambda: admin.status(bad["id"])["status"] == "disconnected", timeout=15)
    closed = wait_until(lambda: activity(admin, bad["id"], "connection_closed"))
    assert closed[0]["details"] == {
        "reason": "cloud_auth_failed: Meta refused the access token: "
        "Access token has expired (code 190)",
        "willReconnect": False,
    }
    refused = admin.send(bad["id"], "15550001111", "hi")
    assert refused.status_code == 409 and refused.json()["code"] == "instance_not_connected"


def test_an_outage_at_connect_is_retried_until_meta_answers(admin: Api) -> None:
    # A Graph API of its own: the module's is called by every connected instance at each
    # socket check (SOCKET_CHECK_CRON), and such a call would take one of the failures.
    outage = FakeGraph()
    outage.failures = 3  # Meta answers 500 (code 2) three times, then works again
    instance = admin.create_instance("Outage", engine="cloud", cloud=cloud_settings(outage))
    try:
        wait_until(lambda: admin.status(instance["id"])["ready"], timeout=20)
        # The activity log is a read model: it follows the events the engine reported.
        wait_until(lambda: len(activity(admin, instance["id"], "connection_closed")) >= 3)
        closed = activity(admin, instance["id"], "connection_closed")
        assert len(closed) == 3 and all(c["details"]["willReconnect"] for c in closed)
        assert closed[0]["details"]["reason"].startswith("cloud_unavailable: ")
    finally:
        admin.http.delete(f"/api/instances/{instance['id']}")
        outage.close()


def test_an_app_not_subscribed_to_the_account_is_a_warning(admin: Api, graph: FakeGraph) -> None:
    graph.subscribed = False
    try:
        instance = new_cloud(admin, graph, "Unsubscribed", cloud={"wabaId": WABA_ID})
    finally:
        graph.subscribed = True
    details = wait_until(
        lambda: admin.http.get(f"/api/instances/{instance}").json().get("connectionDetails")
    )
    assert details["warnings"] == ["app_not_subscribed"]
    assert any(r["path"].endswith(f"/{WABA_ID}/subscribed_apps") for r in graph.requests)


def test_a_token_revoked_during_a_send_disconnects_the_instance(
    admin: Api, graph: FakeGraph
) -> None:
    instance = new_cloud(admin, graph, "Revoked")
    graph.token = "revoked"
    try:
        answer = admin.send(instance, "15550001111", "hi")
    finally:
        graph.token = TOKEN
    assert answer.status_code == 502 and answer.json()["code"] == "cloud_auth_failed"
    assert answer.json()["details"]["code"] == 190
    wait_until(lambda: admin.status(instance)["status"] == "disconnected")


# -- sending (items 6, 8, 9, 10, 11) ----------------------------------------------------


def test_send_text_posts_the_documented_shape(admin: Api, cloud: str, graph: FakeGraph) -> None:
    answer = admin.send(cloud, "+1 555 000 1111", "hello from the cloud")
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"].startswith("wamid.FAKE")
    assert graph.sent()[-1] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15550001111",
        "type": "text",
        "text": {"body": "hello from the cloud", "preview_url": False},
    }


def test_the_chat_is_the_number_meta_delivered_to(admin: Api, cloud: str) -> None:
    answer = admin.send(cloud, REWRITTEN_NUMBER, "hola")
    assert answer.status_code == 200, answer.text
    assert [m["content"] for m in history(admin, cloud, REWRITTEN_WA_ID)] == ["hola"]
    assert history(admin, cloud, REWRITTEN_NUMBER) == []


def test_texts_and_captions_over_metas_limits_are_refused_before_calling_meta(
    admin: Api, cloud: str, graph: FakeGraph
) -> None:
    before = len(graph.requests)
    too_long = admin.send(cloud, "15550001111", "x" * 4097)
    assert too_long.status_code == 400 and too_long.json()["code"] == "text_too_long"
    caption = admin.http.post(
        f"/api/whatsapp/{cloud}/send-file",
        data={"phone": "15550001111", "caption": "c" * 1025},
        files={"file": ("a.png", b"\x89PNG image", "image/png")},
    )
    assert caption.status_code == 400 and caption.json()["code"] == "caption_too_long"
    for chat in ("120363025246125486@g.us", "123456789012345@lid"):
        refused = admin.send(cloud, chat, "hi")
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "unsupported_by_engine"
    assert len(graph.requests) == before


@pytest.mark.parametrize(
    ("to", "status", "code", "retry_after", "meta_code"),
    [
        (RATE_LIMITED_NUMBER, 429, "rate_limited", "1", 130429),
        (PAIR_LIMITED_NUMBER, 429, "recipient_rate_limited", "6", 131056),
        (SPAM_LIMITED_NUMBER, 403, "cloud_restricted", None, 131048),
        # A temporary code that Meta answers with HTTP 400 is not a final refusal.
        (TEMPORARY_NUMBER, 503, "cloud_unavailable", "5", 131016),
    ],
    ids=["throughput", "pair-rate", "spam-rate", "temporary"],
)
def test_metas_errors_become_what_they_mean(
    admin: Api, cloud: str, to: str, status: int, code: str, retry_after: str | None, meta_code: int
) -> None:
    answer = admin.send(cloud, to, "hi")
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert answer.headers.get("Retry-After") == retry_after
    details = answer.json()["details"]
    assert details["code"] == meta_code and details["fbtraceId"] == "AI5Ob1vJcJ8Bq5pr6ZbFS5E"
    assert details["title"]  # Meta's title for the code, from our table


def test_files_go_out_as_the_type_meta_accepts(admin: Api, cloud: str, graph: FakeGraph) -> None:
    def send_file(name: str, data: bytes, mimetype: str) -> httpx.Response:
        return admin.http.post(
            f"/api/whatsapp/{cloud}/send-file",
            data={"phone": "15550001111", "caption": "a file"},
            files={"file": (name, data, mimetype)},
        )

    webp = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 100
    for name, data, mimetype, kind in [
        ("photo.png", b"\x89PNG fake image", "image/png", "image"),
        ("smile.webp", webp, "image/webp", "sticker"),
        ("anim.gif", b"GIF89a", "image/gif", "document"),
        ("clip.mov", b"\x00\x00\x00\x14ftypqt", "video/quicktime", "document"),
        ("voice.wav", b"RIFF\x00\x00\x00\x00WAVE", "audio/wav", "document"),
    ]:
        answer = send_file(name, data, mimetype)
        assert answer.status_code == 200, (name, answer.text)
        upload, message = graph.requests[-2], graph.requests[-1]["json"]
        assert upload["form"] == {"messaging_product": "whatsapp", "type": mimetype}
        assert upload["size"] == len(data)
        assert message["type"] == kind, name
        assert graph.media[message[kind]["id"]]["kind"] == kind
        assert ("caption" in message[kind]) == (kind in ("image", "document"))
    too_large = send_file("big.jpg", b"\xff\xd8" + b"\x00" * (5 * 1024 * 1024), "image/jpeg")
    assert too_large.status_code == 413 and too_large.json()["code"] == "media_too_large"


def test_media_by_url_is_uploaded_not_linked(
    admin: Api, cloud: str, graph: FakeGraph, tmp_path: Path
) -> None:
    from tests.test_api_bad_input import MediaHost, png_bytes

    host = MediaHost({"/pixel.png": (png_bytes(), "image/png", True)})
    try:
        answer = admin.http.post(
            f"/api/whatsapp/{cloud}/send-media",
            json={"phone": "15550001111", "url": f"{host.url}/pixel.png"},
        )
    finally:
        host.close()
    assert answer.status_code == 200, answer.text
    message = graph.sent()[-1]
    assert message["type"] == "image" and "link" not in message["image"]
    assert graph.media[message["image"]["id"]]["size"] == len(png_bytes())


def test_sends_of_one_instance_run_at_once(
    server: Server, admin: Api, cloud: str, graph: FakeGraph
) -> None:
    graph.slow_seconds = 1.0
    graph.most_in_flight = 0
    answers: list[httpx.Response] = []
    senders = [
        threading.Thread(target=lambda: answers.append(admin.send(cloud, SLOW_NUMBER, "slow")))
        for _ in range(6)
    ]
    try:
        for sender in senders:
            sender.start()
        wait_until(lambda: graph.in_flight >= 2)
        # Meta's webhook is not held up behind the sends in flight.
        delivered = deliver(
            server, cloud, message_webhook({"type": "text", "text": {"body": "meanwhile"}})
        )
        assert delivered.status_code == 200 and graph.in_flight > 0
        for sender in senders:
            sender.join(30)
    finally:
        graph.slow_seconds = 0.0
    assert [a.status_code for a in answers] == [200] * 6
    assert graph.most_in_flight >= 4  # one instance, several Graph calls at once
    assert len({a.json()["id"] for a in answers}) == 6


def test_an_idempotency_key_in_flight_shares_its_send(
    admin: Api, cloud: str, graph: FakeGraph
) -> None:
    graph.slow_seconds = 0.5
    answers: list[httpx.Response] = []
    key = {"Idempotency-Key": "same-slow-send"}
    senders = [
        threading.Thread(
            target=lambda: answers.append(admin.send(cloud, SLOW_NUMBER, "once", **key))
        )
        for _ in range(3)
    ]
    before = len(graph.sent())
    try:
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(30)
    finally:
        graph.slow_seconds = 0.0
    assert len(graph.sent()) == before + 1
    assert len({a.json()["id"] for a in answers}) == 1


# -- failures after acceptance (item 1) ---------------------------------------------------


def test_a_failure_after_acceptance_is_a_failed_status_with_its_error(
    server: Server, admin: Api, cloud: str, graph: FakeGraph, receiver: Receiver
) -> None:
    accepted = admin.send(cloud, OUTSIDE_WINDOW_NUMBER, "hello again")
    assert accepted.status_code == 200, accepted.text  # Meta took it...
    wamid = accepted.json()["id"]
    # ... and fails it by webhook (131047: outside the 24-hour window).
    failed = graph.outbox.pop()
    assert deliver(server, cloud, failed).json()["received"] == 1
    error = {
        "code": 131047,
        "title": "Re-engagement message",
        "details": "Message failed to send because more than 24 hours have passed since "
        "the customer last replied to this number.",
    }
    row = wait_until(
        lambda: [m for m in history(admin, cloud, OUTSIDE_WINDOW_NUMBER) if m["status"] == "failed"]
    )[0]
    assert row["messageId"] == wamid and row["error"] == error
    # Sent as message_status whatever notifyDelivery/notifyRead say (both off here).
    hook = wait_until(
        lambda: [
            r.json
            for r in receiver.received
            if r.json["event"] == "message_status" and r.json["data"]["messageId"] == wamid
        ]
    )[0]
    assert hook["data"]["status"] == "failed" and hook["data"]["error"] == error
    assert hook["data"]["messageId"] == wamid
    # A late "read" does not undo the failure.
    deliver(server, cloud, status_webhook(wamid, "read", OUTSIDE_WINDOW_NUMBER))
    assert history(admin, cloud, OUTSIDE_WINDOW_NUMBER)[0]["status"] == "failed"


def test_failed_replaces_an_earlier_status(
    server: Server, admin: Api, cloud: str, graph: FakeGraph
) -> None:
    wamid = admin.send(cloud, UNDELIVERABLE_NUMBER, "hi").json()["id"]
    deliver(server, cloud, status_webhook(wamid, "delivered", UNDELIVERABLE_NUMBER))
    deliver(server, cloud, graph.outbox.pop())
    row = history(admin, cloud, UNDELIVERABLE_NUMBER)[0]
    assert row["status"] == "failed" and row["error"]["code"] == 131026


def test_played_is_kept(server: Server, admin: Api, cloud: str) -> None:
    wamid = admin.send(cloud, "15550004444", "a voice note").json()["id"]
    for status in ("delivered", "read", "played"):
        deliver(server, cloud, status_webhook(wamid, status, "15550004444"))
    assert history(admin, cloud, "15550004444")[0]["status"] == "played"


# -- Meta's webhook (items 2, 3, 7, 11; issue 14 item 16) ---------------------------------


def test_webhook_subscription_check(server: Server, cloud: str) -> None:
    client = server.client()
    params = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158"}
    ok = client.get(f"/api/cloud/{cloud}/webhook", params=params)
    assert ok.status_code == 200 and ok.text == "1158"
    wrong = client.get(f"/api/cloud/{cloud}/webhook", params={**params, "hub.verify_token": "g"})
    assert wrong.status_code == 403
    assert client.get("/api/cloud/not-an-id/webhook").status_code == 404


def test_inbound_messages_and_statuses_are_recorded_once(
    server: Server, admin: Api, cloud: str
) -> None:
    sent = admin.send(cloud, "15550002222", "status me").json()["id"]
    body = envelope(
        {
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
                {"id": sent, "status": "delivered", "recipient_id": "15550002222"},
                {"id": sent, "status": "read", "recipient_id": "15550002222"},
            ],
        }
    )
    first = deliver(server, cloud, body)
    assert first.json() == {"success": True, "received": 3, "dropped": 0}
    # Stored before Meta got its 200: the event store has it at once.
    assert received(server, cloud, "wamid.IN1") == 1
    # Meta retries: the same delivery again changes nothing.
    assert deliver(server, cloud, body).json()["received"] == 0
    forged = deliver(server, cloud, body, secret="someone-else")
    assert forged.status_code == 403 and forged.json()["code"] == "invalid_signature"
    assert [(m["content"], m["fromMe"]) for m in history(admin, cloud, "15550003333")] == [
        ("hi cloud", False)
    ]
    assert history(admin, cloud, "15550002222")[0]["status"] == "read"
    assert received(server, cloud, "wamid.IN1") == 1
    contacts = admin.http.get(f"/api/whatsapp/{cloud}/contacts").json()["contacts"]
    assert {
        "id": "15550003333@s.whatsapp.net",
        "name": "Kerry",
        "number": "15550003333",
        "isGroup": False,
    } in contacts


def test_a_retry_after_a_restart_is_still_recognised(
    fresh_server: Server, graph: FakeGraph
) -> None:
    admin = Api.login(fresh_server)
    instance = new_cloud(admin, graph, "Durable")
    body = message_webhook({"id": "wamid.DURABLE", "type": "text", "text": {"body": "once"}})
    assert deliver(fresh_server, instance, body).json()["received"] == 1
    fresh_server.restart()
    wait_until(lambda: Api.login(fresh_server).status(instance)["ready"], timeout=15)
    assert deliver(fresh_server, instance, body).json()["received"] == 0
    assert received(fresh_server, instance, "wamid.DURABLE") == 1


def test_changes_for_another_number_of_the_app_are_dropped(
    server: Server, admin: Api, cloud: str
) -> None:
    other = message_webhook(
        {"type": "text", "text": {"body": "for the other number"}},
        phone="15550006666",
        phone_number_id=OTHER_PHONE_NUMBER_ID,
    )
    answer = deliver(server, cloud, other)
    assert answer.json() == {"success": True, "received": 0, "dropped": 1}
    assert history(admin, cloud, "15550006666") == []


def test_one_app_callback_routes_each_number_to_its_instance(
    server: Server, admin: Api, graph: FakeGraph
) -> None:
    first = new_cloud(admin, graph, "App first", cloud={"appSecret": "shared-app"})
    second = new_cloud(
        admin,
        graph,
        "App second",
        cloud={"appSecret": "shared-app", "phoneNumberId": OTHER_PHONE_NUMBER_ID},
    )
    client = server.client()
    check = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "42"}
    assert client.get("/api/cloud/webhook", params=check).text == "42"
    assert (
        client.get(
            "/api/cloud/webhook", params={**check, "hub.verify_token": "nobody's"}
        ).status_code
        == 403
    )
    body = message_webhook({"type": "text", "text": {"body": "to first"}}, phone="15550007001")
    body["entry"][0]["changes"] += message_webhook(
        {"type": "text", "text": {"body": "to second"}},
        phone="15550007002",
        phone_number_id=OTHER_PHONE_NUMBER_ID,
    )["entry"][0]["changes"]
    answer = deliver(server, None, body, secret="shared-app")
    assert answer.json() == {"success": True, "received": 2, "dropped": 0}
    assert [m["content"] for m in history(admin, first, "15550007001")] == ["to first"]
    assert [m["content"] for m in history(admin, second, "15550007002")] == ["to second"]
    assert history(admin, first, "15550007002") == []
    # A secret no instance of these numbers has reaches none of them.
    assert deliver(server, None, body, secret="not-this-apps").status_code == 403


def test_inbound_content_becomes_text_and_structured_data(
    server: Server, admin: Api, cloud: str, receiver: Receiver
) -> None:
    # Each shape as Meta's messages webhook reference shows it.
    kinds: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": "change-1", "title": "Change"},
                },
            },
            "Change",
            {"interactive": {"type": "button_reply", "id": "change-1", "title": "Change"}},
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "p2", "title": "Priority", "description": "Next day"},
                },
            },
            "Priority",
            {
                "interactive": {
                    "type": "list_reply",
                    "id": "p2",
                    "title": "Priority",
                    "description": "Next day",
                }
            },
        ),
        (
            {"type": "button", "button": {"payload": "Stop promotions", "text": "Stop promotions"}},
            "Stop promotions",
            {
                "button": {
                    "text": "Stop promotions",
                    "payload": "Stop promotions",
                    "stopPromotions": True,
                }
            },
        ),
        (
            {
                "type": "location",
                "location": {
                    "latitude": 37.483,
                    "longitude": -122.148,
                    "name": "Philz Coffee",
                    "address": "101 Forest Ave",
                },
            },
            "Philz Coffee",
            {
                "location": {
                    "latitude": 37.483,
                    "longitude": -122.148,
                    "name": "Philz Coffee",
                    "address": "101 Forest Ave",
                    "url": None,
                }
            },
        ),
        (
            {
                "type": "contacts",
                "contacts": [
                    {
                        "name": {"formatted_name": "Barbara Johnson", "first_name": "Barbara"},
                        "phones": [
                            {"phone": "+1 (940) 555-1234", "wa_id": "19405551234", "type": "HOME"}
                        ],
                    }
                ],
            },
            "Barbara Johnson",
            {
                "contacts": [
                    {
                        "name": "Barbara Johnson",
                        "phones": [
                            {"phone": "+1 (940) 555-1234", "waId": "19405551234", "type": "HOME"}
                        ],
                    }
                ]
            },
        ),
        (
            {
                "type": "order",
                "order": {
                    "catalog_id": "194836987003835",
                    "text": "Order this",
                    "product_items": [
                        {
                            "product_retailer_id": "di9ozbzfi4",
                            "quantity": 2,
                            "item_price": 30,
                            "currency": "USD",
                        }
                    ],
                },
            },
            "Order this",
            {
                "order": {
                    "catalogId": "194836987003835",
                    "text": "Order this",
                    "items": [
                        {
                            "productRetailerId": "di9ozbzfi4",
                            "quantity": 2,
                            "itemPrice": 30,
                            "currency": "USD",
                        }
                    ],
                }
            },
        ),
        (
            {
                "type": "system",
                "system": {
                    "body": "User Sheena changed from 16505551234 to 12195555358",
                    "wa_id": "12195555358",
                    "type": "user_changed_number",
                },
            },
            "User Sheena changed from 16505551234 to 12195555358",
            {
                "system": {
                    "type": "user_changed_number",
                    "body": "User Sheena changed from 16505551234 to 12195555358",
                    "newWaId": "12195555358",
                }
            },
        ),
        (
            {
                "type": "unsupported",
                "errors": [
                    {
                        "code": 131051,
                        "title": "Message type unknown",
                        "message": "Message type unknown",
                        "error_data": {"details": "Message type is currently not supported."},
                    }
                ],
                "unsupported": {"type": "edit"},
            },
            "",
            {
                "unsupported": {
                    "type": "edit",
                    "errors": [
                        {
                            "code": 131051,
                            "title": "Message type unknown",
                            "details": "Message type is currently not supported.",
                        }
                    ],
                }
            },
        ),
        (
            # A reply to a message, that came from a click-to-WhatsApp ad.
            {
                "type": "text",
                "text": {"body": "Is it in stock?"},
                "context": {"from": "15550100200", "id": "wamid.OUT1"},
                "referral": {
                    "source_url": "https://fb.me/3cr4Wqqkv",
                    "source_id": "6659345870000",
                    "source_type": "ad",
                    "headline": "Chat with us",
                    "body": "Sale!",
                    "media_type": "image",
                    "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
                },
            },
            "Is it in stock?",
            {
                "context": {"quotedMessageId": "wamid.OUT1", "from": "15550100200"},
                "referral": {
                    "sourceUrl": "https://fb.me/3cr4Wqqkv",
                    "sourceId": "6659345870000",
                    "sourceType": "ad",
                    "headline": "Chat with us",
                    "body": "Sale!",
                    "mediaType": "image",
                    "ctwaClid": "ARAkLkA8rmlFeiCktEJQ",
                },
            },
        ),
    ]
    for n, (message, _, _) in enumerate(kinds):
        body = message_webhook({"id": f"wamid.KIND{n}", **message}, phone="15550005555")
        assert deliver(server, cloud, body).json()["received"] == 1, message["type"]
    rows = {m["messageId"]: m for m in history(admin, cloud, "15550005555")}
    for n, (message, text, data) in enumerate(kinds):
        row = rows[f"wamid.KIND{n}"]
        assert (row["messageType"], row["content"], row["data"]) == (message["type"], text, data)
    # A reply quotes the message its context names (a reaction is not a message: see below).
    assert rows[f"wamid.KIND{len(kinds) - 1}"]["quotedMessageId"] == "wamid.OUT1"
    assert rows["wamid.KIND0"]["quotedMessageId"] is None
    hooks = wait_until(
        lambda: (
            {
                r.json["data"]["messageId"]: r.json["data"]
                for r in receiver.received
                if r.json["event"] == "message_received"
                and r.json["data"]["messageId"].startswith("wamid.KIND")
            }
            if sum(
                r.json["data"].get("messageId", "").startswith("wamid.KIND")
                for r in receiver.received
            )
            == len(kinds)
            else None
        )
    )
    assert hooks["wamid.KIND3"]["data"] == kinds[3][2]
    assert hooks["wamid.KIND0"]["body"] == "Change"


def test_a_user_known_only_by_bsuid_is_recorded_and_answered(
    server: Server, admin: Api, cloud: str, graph: FakeGraph, receiver: Receiver
) -> None:
    # A user who adopted a username: no phone number, a business-scoped user id.
    bsuid = "US.13491208655302741918"
    body = message_webhook(
        {"id": "wamid.BSUID1", "type": "text", "text": {"body": "hi, no number"}},
        phone=None,
        bsuid=bsuid,
        username="@sheena",
    )
    assert deliver(server, cloud, body).json()["received"] == 1
    row = history(admin, cloud, bsuid)[0]
    assert (row["remoteJid"], row["content"]) == (f"{bsuid}@bsuid", "hi, no number")
    hook = wait_until(
        lambda: [
            r.json["data"]
            for r in receiver.received
            if r.json["data"].get("messageId") == "wamid.BSUID1"
        ]
    )[0]
    assert (hook["from"], hook["bsuid"], hook["username"], hook["pushName"]) == (
        f"{bsuid}@bsuid",
        bsuid,
        "@sheena",
        "Sheena Nelson",
    )
    # The reply goes to `recipient`, as Meta takes a BSUID.
    answer = admin.send(cloud, bsuid, "hello, username")
    assert answer.status_code == 200, answer.text
    sent = graph.sent()[-1]
    assert sent["recipient"] == bsuid and "to" not in sent
    assert [m["content"] for m in history(admin, cloud, bsuid)] == [
        "hello, username",
        "hi, no number",
    ]


def test_account_updates_and_webhook_errors_become_events(
    server: Server, admin: Api, cloud: str
) -> None:
    restriction = account_update_webhook(
        "ACCOUNT_RESTRICTION",
        restriction_info=[
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1700000000}
        ],
    )
    assert deliver(server, cloud, restriction).json()["received"] == 1
    errors = envelope(
        {
            "errors": [
                {
                    "code": 131000,
                    "title": "Something went wrong",
                    "message": "Something went wrong",
                    "error_data": {"details": "Try again later"},
                }
            ]
        }
    )
    assert deliver(server, cloud, errors).json()["received"] == 1
    update = wait_until(lambda: activity(admin, cloud, "account_update"))[0]
    assert update["details"]["event"] == "ACCOUNT_RESTRICTION"
    assert update["details"]["restriction_info"][0]["restriction_type"] == (
        "RESTRICTED_BIZ_INITIATED_MESSAGING"
    )
    error = wait_until(lambda: activity(admin, cloud, "platform_error"))[0]
    assert error["details"] == {
        "code": 131000,
        "title": "Something went wrong",
        "details": "Try again later",
    }


def test_bodies_up_to_metas_3_mb_are_taken(server: Server, admin: Api, cloud: str) -> None:
    messages = [
        {"from": "15550009191", "id": f"wamid.BIG{n}", "type": "text", "text": {"body": "b" * 4096}}
        for n in range(300)
    ]
    big = envelope({"messages": messages})
    raw, _ = sign(APP_SECRET, big)
    assert 1024 * 1024 < len(raw) < 3 * 1024 * 1024
    assert deliver(server, cloud, big).json()["received"] == 300
    too_big = deliver(server, cloud, b" " * (3 * 1024 * 1024 + 1))
    assert too_big.status_code == 413


def test_an_instance_without_app_secret_or_verify_token_is_refused(
    admin: Api, graph: FakeGraph
) -> None:
    for missing in ("appSecret", "verifyToken"):
        settings = cloud_settings(graph)
        del settings[missing]
        answer = admin.http.post(
            "/api/instances", json={"name": "Half", "engine": "cloud", "cloud": settings}
        )
        assert answer.status_code == 400, answer.text
        assert missing in answer.json()["error"]


def test_the_socket_check_finds_a_revoked_token(graph: FakeGraph) -> None:
    """The periodic check (SOCKET_CHECK_CRON calls `healthy`) with a cheap Graph call; the
    engine alone here, since the job runs at most once a minute."""
    from actors.engines.base import Connected, Disconnected
    from actors.engines.cloud import CloudDirectory, CloudEngine

    reports: list[Any] = []
    engine = CloudEngine(
        "engine-alone",
        cloud_settings(graph),
        reports.append,
        directory=CloudDirectory(),
        allow_private=True,
        require_https=False,
        default_version=SERVER_VERSION,
    )
    engine.connect()
    wait_until(lambda: any(isinstance(r, Connected) for r in reports))
    assert engine.healthy() and not any(isinstance(r, Disconnected) for r in reports)
    graph.token = "revoked"
    try:
        engine.healthy()
        closed = wait_until(lambda: [r for r in reports if isinstance(r, Disconnected)])
    finally:
        graph.token = TOKEN
    assert closed == [
        Disconnected(
            "cloud_auth_failed: Meta refused the access token: Access token has expired (code 190)",
            will_reconnect=False,
        )
    ]
    assert graph.requests[-1]["query"] == {"fields": "id"}


# -- everything else the Cloud API does (issue 15) ------------------------------------------


def test_template_components_nested_deeper_than_meta_nests_them_are_refused(
    server: Server, admin: Api, cloud: str, graph: FakeGraph
) -> None:
    # Components are free-form JSON. 900 nested arrays (under the decoder's limit) were sent
    # and stored, and then every answer showing the message failed (each encoder recurses):
    # the chat's history, the instance's events and every instance's, for the administrator.
    customer, count = "15550007009", len(graph.sent())
    deep = "[" * 900 + "]" * 900
    body = (f'{{"phone": "{customer}", "name": "order_ready", "language": "en_US", '
            f'"components": [{{"type": "body", "parameters": {deep}}}]}}')  # fmt: skip
    answer = admin.http.post(
        f"/api/whatsapp/{cloud}/send-template",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    refusal = answer.json()
    assert (answer.status_code, refusal.get("code")) == (400, "validation_error"), answer.text
    assert refusal["details"]["field"] == "components"
    assert len(graph.sent()) == count
    for path in (f"/api/instances/{cloud}/chats/{customer}/messages",
                 f"/api/instances/{cloud}/events", "/api/events"):  # fmt: skip
        assert admin.http.get(path).status_code == 200, path


def test_replies_locations_contact_cards_and_templates_go_out_as_meta_documents(
    server: Server, admin: Api, cloud: str, graph: FakeGraph
) -> None:
    customer = "15550007001"
    deliver(server, cloud, message_webhook({"id": "wamid.ASK", "type": "text",
            "text": {"body": "where are you?"}}, phone=customer))  # fmt: skip
    reply = admin.http.post(
        f"/api/whatsapp/{cloud}/send",
        json={"phone": customer, "message": "here", "quotedMessageId": "wamid.ASK"},
    )
    assert reply.status_code == 200, reply.text
    assert graph.sent()[-1]["context"] == {"message_id": "wamid.ASK"}
    assert graph.sent()[-1]["text"]["body"] == "here"
    place = admin.http.post(
        f"/api/whatsapp/{cloud}/send-location",
        json={"phone": customer, "latitude": 37.483, "longitude": -122.148, "name": "Philz"},
    )
    assert place.status_code == 200, place.text
    assert graph.sent()[-1]["location"] == {
        "latitude": 37.483,
        "longitude": -122.148,
        "name": "Philz",
    }
    card = admin.http.post(
        f"/api/whatsapp/{cloud}/send-contact",
        json={"phone": customer, "contacts": [{"name": "Barbara", "phone": "19405551234"}]},
    )
    assert card.status_code == 200, card.text
    assert graph.sent()[-1]["contacts"] == [
        {
            "name": {"formatted_name": "Barbara", "first_name": "Barbara"},
            "phones": [{"phone": "+19405551234", "type": "CELL", "wa_id": "19405551234"}],
        }
    ]
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]
    template = admin.http.post(
        f"/api/whatsapp/{cloud}/send-template",
        json={"phone": customer, "name": "order_ready", "language": "en_US",
              "components": components},
    )  # fmt: skip
    assert template.status_code == 200, template.text
    assert graph.sent()[-1]["template"] == {
        "name": "order_ready",
        "language": {"code": "en_US"},
        "components": components,
    }
    rows = {m["messageId"]: m for m in history(admin, cloud, customer)}
    assert rows[reply.json()["id"]]["quotedMessageId"] == "wamid.ASK"
    assert rows[place.json()["id"]]["location"]["name"] == "Philz"
    assert rows[card.json()["id"]]["contacts"] == [{"name": "Barbara", "phone": "19405551234"}]
    assert rows[template.json()["id"]]["messageType"] == "template"
    # Mentions are not part of the Cloud API: refused, nothing sent or recorded.
    count = len(graph.sent())
    mention = admin.http.post(
        f"/api/whatsapp/{cloud}/send",
        json={"phone": customer, "message": "hi @someone", "mentions": ["15550007002"]},
    )
    assert (mention.status_code, mention.json()["code"]) == (400, "unsupported_by_engine")
    assert "cloud" in mention.json()["error"]
    assert len(graph.sent()) == count
    assert len(history(admin, cloud, customer)) == len(rows)


def test_reactions_both_ways(
    server: Server, admin: Api, cloud: str, graph: FakeGraph, receiver: Receiver
) -> None:
    customer = "15550007003"
    sent = admin.send(cloud, customer, "your order shipped").json()["id"]
    deliver(server, cloud, message_webhook({"id": "wamid.THX", "type": "text",
            "text": {"body": "thanks!"}}, phone=customer))  # fmt: skip
    ours = admin.http.post(f"/api/whatsapp/{cloud}/messages/wamid.THX/reaction",
                           json={"emoji": "\u2764\ufe0f"})  # fmt: skip
    assert ours.status_code == 200, ours.text
    assert graph.sent()[-1]["to"] == customer
    assert graph.sent()[-1]["reaction"] == {"message_id": "wamid.THX", "emoji": "\u2764\ufe0f"}
    # The customer reacts to our message (Meta's reaction webhook), then takes it back.
    theirs = message_webhook(
        {"id": "wamid.REACT1", "type": "reaction",
         "reaction": {"message_id": sent, "emoji": "\U0001f44d"}},
        phone=customer,
    )  # fmt: skip
    assert deliver(server, cloud, theirs).json()["received"] == 1
    assert deliver(server, cloud, theirs).json()["received"] == 0  # Meta's retry
    rows = {m["messageId"]: m for m in history(admin, cloud, customer)}
    assert rows[sent]["reactions"] == [
        {"from": f"{customer}@s.whatsapp.net", "emoji": "\U0001f44d"}
    ]
    assert rows["wamid.THX"]["reactions"] == [{"from": "me", "emoji": "\u2764\ufe0f"}]
    assert "wamid.REACT1" not in rows  # a reaction is not a message of its own
    removed = message_webhook(
        {"id": "wamid.REACT2", "type": "reaction", "reaction": {"message_id": sent}},
        phone=customer,
    )
    assert deliver(server, cloud, removed).json()["received"] == 1
    rows = {m["messageId"]: m for m in history(admin, cloud, customer)}
    assert rows[sent]["reactions"] == []


def test_read_marks_go_to_meta_for_the_newest_message(
    server: Server, admin: Api, cloud: str, graph: FakeGraph
) -> None:
    customer = "15550007004"
    for n in (1, 2):
        message = {"id": f"wamid.UNREAD{n}", "type": "text", "text": {"body": f"m{n}"},
                   "timestamp": str(1749416383 + n)}  # fmt: skip
        deliver(server, cloud, message_webhook(message, phone=customer))
    chat = f"{customer}@s.whatsapp.net"

    def unread() -> int:
        chats = admin.http.get(f"/api/instances/{cloud}/chats").json()["chats"]
        return next(c["unreadCount"] for c in chats if c["id"] == chat)

    assert wait_until(lambda: unread() == 2)
    answer = admin.http.post(f"/api/whatsapp/{cloud}/read",
                             json={"chatId": customer, "messageIds": ["wamid.UNREAD1", "wamid.UNREAD2"]})  # fmt: skip
    assert answer.status_code == 200, answer.text
    # Meta marks the earlier messages of the conversation read with the one it is given.
    assert graph.read_marks[-1] == "wamid.UNREAD2"
    assert wait_until(lambda: unread() == 0)


def test_received_media_is_downloaded_through_the_graph_media_url(
    server: Server, admin: Api, cloud: str, graph: FakeGraph
) -> None:
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    media_id = graph.receive_media(picture, "image/png")
    message = {"id": "wamid.PIC", "type": "image",
               "image": {"id": media_id, "mime_type": "image/png", "sha256": "x"}}  # fmt: skip
    deliver(server, cloud, message_webhook(message, phone="15550007005"))
    answer = admin.http.get(f"/api/whatsapp/{cloud}/messages/wamid.PIC/media")
    assert answer.status_code == 200, answer.text
    assert answer.content == picture
    assert answer.headers["content-type"] == "image/png"
    asked = [r for r in graph.requests if r["path"] == f"/{SERVER_VERSION}/{media_id}"]
    assert asked[-1]["query"] == {"phone_number_id": PHONE_NUMBER_ID}
    assert graph.requests[-1]["path"] == f"/download/{media_id}"  # then the bytes
    # A message without media, or one Meta no longer has.
    plain = {"id": "wamid.PLAIN", "type": "text", "text": {"body": "no file"}}
    deliver(server, cloud, message_webhook(plain, phone="15550007005"))
    text = admin.http.get(f"/api/whatsapp/{cloud}/messages/wamid.PLAIN/media")
    assert (text.status_code, text.json()["code"]) == (404, "no_media")
    # Meta keeps received media for 30 days; after that the id is unknown (code 100).
    del graph.received[media_id]
    gone = admin.http.get(f"/api/whatsapp/{cloud}/messages/wamid.PIC/media")
    assert (gone.status_code, gone.json()["code"]) == (400, "cloud_rejected"), gone.text


def test_a_received_media_id_names_a_file_never_a_path(
    server: Server, admin: Api, cloud: str
) -> None:
    # A media id is the file's name in UPLOADS_DIR. A webhook's id is the sender's to write
    # (here the instance's owner signs it: they hold the app secret), so one naming a file
    # in a directory under UPLOADS_DIR, an operator's own, is never served.
    private = server.root / "uploads" / "private"
    private.mkdir(parents=True, exist_ok=True)
    (private / "notes.txt").write_text("the operator's own file")
    for n, media_id in enumerate(("private/notes.txt", "notes\u0000.txt")):
        message = {"id": f"wamid.PATH{n}", "type": "document",
                   "document": {"id": media_id, "mime_type": "text/plain"}}  # fmt: skip
        deliver(server, cloud, message_webhook(message, phone="15550007005"))
        answer = admin.http.get(f"/api/whatsapp/{cloud}/messages/wamid.PATH{n}/media")
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "no_media"


def test_received_media_is_served_only_with_a_media_type(
    server: Server, admin: Api, cloud: str, graph: FakeGraph
) -> None:
    # A sender writes the type its file claims (a whatsmeow peer's mimetype, a webhook's
    # mime_type): one that no header can carry made the server drop the download unanswered.
    # Here Graph's own type is not one either, so the webhook's is what the engine has.
    media_id = graph.receive_media(b"%PDF-1.7 bytes", "pdf")
    message = {"id": "wamid.ODD", "type": "document",
               "document": {"id": media_id, "mime_type": "application/pdf\x01"}}  # fmt: skip
    deliver(server, cloud, message_webhook(message, phone="15550007005"))
    answer = admin.http.get(f"/api/whatsapp/{cloud}/messages/wamid.ODD/media")
    assert (answer.status_code, answer.content) == (200, b"%PDF-1.7 bytes"), answer.text
    assert answer.headers["content-type"] == "application/octet-stream"


def test_what_the_cloud_api_cannot_do_is_unsupported_by_engine(
    server: Server, admin: Api, cloud: str
) -> None:
    own = admin.send(cloud, "15550007006", "hello").json()["id"]
    http = admin.http
    for answer in (
        http.put(f"/api/whatsapp/{cloud}/messages/{own}", json={"message": "hi"}),
        http.delete(f"/api/whatsapp/{cloud}/messages/{own}"),
        http.post(f"/api/whatsapp/{cloud}/send-poll",
                  json={"phone": "15550007006", "question": "?", "options": ["a", "b"]}),
        http.post(f"/api/whatsapp/{cloud}/presence", json={"state": "available"}),
        http.post(f"/api/whatsapp/{cloud}/groups",
                  json={"subject": "Team", "participants": ["15550007006"]}),
    ):  # fmt: skip
        assert (answer.status_code, answer.json()["code"]) == (400, "unsupported_by_engine")
        assert "cloud" in answer.json()["error"]
    assert [m["messageId"] for m in history(admin, cloud, "15550007006")] == [own]
