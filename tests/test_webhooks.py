"""Webhooks: delivered from the event store, in order, signed, retried, resumed, replayable."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors.engines.sandbox_network import lid_for
from tests.receiver import Receiver
from tests.server import Api, Server, wait_until

ALL = {"notifyReceived": True, "notifySent": True, "notifyDelivery": True, "notifyRead": True}


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# What the instance stores for each notify flag's kind (type, and status for receipts).
NOTIFIED_KINDS = {
    "MessageSent",
    "MessageStatusChanged:delivered",
    "MessageStatusChanged:read",
    "MessageReceived",
}


def stored_kinds(api: Api, instance: str) -> list[str]:
    """The instance's stored events, as their type (with the status, for receipts)."""
    answer = api.http.get(f"/api/instances/{instance}/events", params={"limit": 1000})
    return [
        event["type"] + (f":{event['data']['status']}" if event["data"].get("status") else "")
        for event in answer.json()["events"]
    ]


def hooked(api: Api, name: str, url: str, **settings: object) -> str:
    return api.create_instance(name, webhookUrl=url, webhookEnabled=True, **{**ALL, **settings})[
        "id"
    ]


def test_payloads_headers_and_signature(server: Server, admin: Api, receiver: Receiver) -> None:
    a = hooked(admin, "Hooked", receiver.url, webhookSecret="shh")
    b = admin.create_instance("Peer")["id"]
    admin.pair(a, "15553330001")
    admin.pair(b, "15553330002")
    sent = admin.send(a, "15553330002", "hello").json()["id"]
    admin.read(b, "15553330001", [sent])  # B opens the chat: A gets a read receipt
    admin.http.post(
        f"/api/sandbox/instances/{a}/inbound",
        json={"from": "15557770002", "message": "yo", "pushName": "Ann"},
    )

    wait_until(
        lambda: (
            receiver.events()
            == [
                "qr_received",
                "connection_opened",
                "message_sent",
                "message_status",
                "message_status",
                "message_received",
            ]
        )
    )
    by_event = {r.event: r for r in receiver.received}
    for item in receiver.received:
        assert item.headers["content-type"] == "application/json"
        assert item.headers["x-webhook-event"] == item.event
        assert (
            item.headers["x-webhook-signature"]
            == hmac.new(b"shh", item.body, hashlib.sha256).hexdigest()
        )
        assert set(item.json) == {"event", "data", "timestamp"} and item.json["timestamp"].endswith(
            "Z"
        )
    assert len({r.headers["x-webhook-delivery"] for r in receiver.received}) == 6

    assert by_event["message_sent"].json["data"] == {
        "instanceId": a,
        "messageId": sent,
        "to": "15553330002@s.whatsapp.net",
        "body": "hello",
        "type": "text",
        "timestamp": by_event["message_sent"].json["data"]["timestamp"],
        "hasMedia": False,
        # The recipient as WhatsApp names it: its number and its LID (a sandbox number's own).
        "phone": "15553330002",
        "lid": lid_for("15553330002"),
    }
    received = by_event["message_received"].json["data"]
    assert (received["from"], received["body"], received["type"], received["pushName"]) == (
        "15557770002@s.whatsapp.net",
        "yo",
        "conversation",
        "Ann",
    )
    statuses = [r.json["data"] for r in receiver.received if r.event == "message_status"]
    assert [(s["status"], s["messageId"], s["fromMe"]) for s in statuses] == [
        ("delivered", sent, True),
        ("read", sent, True),
    ]
    assert by_event["qr_received"].json["data"]["qrCode"].startswith("sandbox@")
    assert by_event["connection_opened"].json["data"]["instanceId"] == a


def test_a_url_on_create_turns_webhooks_on_unless_they_are_turned_off(
    server: Server, admin: Api
) -> None:
    # The seed's own client example (api-reference, "创建新实例") sends `webhookUrl` alone.
    seed, off_receiver = Receiver(), Receiver()
    try:
        seeded = admin.create_instance("Seed example", webhookUrl=seed.url)
        assert seeded["webhookEnabled"] is True
        wait_until(lambda: "qr_received" in seed.events())

        off = admin.create_instance("Off", webhookUrl=off_receiver.url, webhookEnabled=False)
        assert off["webhookEnabled"] is False
        admin.pair(off["id"], "15553330101")
        # Turned on later: only what happens from then on is sent, so had the QR code and the
        # connection been delivered while "off", they would arrive here first.
        admin.http.put(f"/api/instances/{off['id']}", json={"webhookEnabled": True})
        admin.send(off["id"], "15553330199", "after turning them on")
        wait_until(lambda: off_receiver.events())
        assert off_receiver.events()[0] == "message_sent"

        # An update keeps its meaning: a URL alone does not turn webhooks on.
        plain = admin.create_instance("Plain")["id"]
        changed = admin.http.put(f"/api/instances/{plain}", json={"webhookUrl": seed.url})
        assert changed.json()["webhookEnabled"] is False
    finally:
        seed.close()
        off_receiver.close()


@pytest.mark.parametrize(
    ("flag", "missing"),
    [
        ("notifySent", "message_sent"),
        ("notifyDelivery", "delivered"),
        ("notifyRead", "read"),
        ("notifyReceived", "message_received"),
    ],
)
def test_each_notify_flag_filters_its_events(
    server: Server, admin: Api, flag: str, missing: str
) -> None:
    receiver = Receiver()
    try:
        a = hooked(admin, f"Filter {flag}", receiver.url, **{flag: False})
        peer = admin.create_instance(f"Peer {flag}")["id"]
        number = str(15553340000 + len(flag) * 10 + len(missing))
        admin.pair(a, number)
        admin.pair(peer, str(int(number) + 1000))
        hi = admin.send(a, str(int(number) + 1000), "hi").json()["id"]
        admin.read(peer, number, [hi])
        admin.send(peer, number, "back")
        # Every kind is stored for the instance, the filtered one too...
        wait_until(lambda: set(stored_kinds(admin, a)) >= NOTIFIED_KINDS)
        # ...and then an event that is always sent: deliveries are in order, so once it has
        # arrived, the filtered kind would have arrived before it (no fixed wait).
        assert admin.http.post(f"/api/sandbox/instances/{a}/drop").status_code == 200
        wait_until(lambda: "connection_closed" in receiver.events())
        seen = [
            r.event if r.event != "message_status" else r.json["data"]["status"]
            for r in receiver.received
        ]
        assert missing not in seen
        assert {"message_sent", "delivered", "read", "message_received"} - {missing} <= set(seen)
    finally:
        receiver.close()


def test_a_receiver_that_is_down_for_a_while_gets_everything_in_order(
    server: Server, admin: Api
) -> None:
    receiver = Receiver(fail_first=4)
    try:
        a = hooked(admin, "Flaky", receiver.url, maxRetries=10, retryInterval=150)
        peer = admin.create_instance("Flaky peer")["id"]
        admin.pair(a, "15553350001")
        admin.pair(peer, "15553350002")
        ids = [admin.send(a, "15553350002", f"m{i}").json()["id"] for i in range(3)]
        wait_until(
            lambda: (
                [
                    r.json["data"].get("messageId")
                    for r in receiver.received
                    if r.event == "message_sent"
                ]
                == ids
            ),
            timeout=15,
        )
        assert receiver.events()[:2] == ["qr_received", "connection_opened"]
        # The first event was tried 5 times, 150 ms apart at least.
        first = receiver.attempts[0].headers["x-webhook-delivery"]
        times = [r.at for r in receiver.attempts if r.headers["x-webhook-delivery"] == first]
        assert len(times) == 5
        assert all(b - a >= 0.14 for a, b in itertools.pairwise(times))
    finally:
        receiver.close()


def test_an_always_failing_receiver_gets_a_failure_recorded_and_delivery_moves_on(
    server: Server, admin: Api
) -> None:
    receiver = Receiver(status=503)
    try:
        a = hooked(admin, "Failing", receiver.url, maxRetries=2, retryInterval=50)
        failed = wait_until(
            lambda: admin.http.get(
                f"/api/instances/{a}/webhooks/deliveries", params={"status": "failed"}
            ).json()["deliveries"]
        )
        assert failed[-1]["event"] == "qr_received"
        assert failed[-1]["attempts"] == 3 and failed[-1]["lastStatusCode"] == 503
        # The next event (connection_opened) is attempted after the QR one was given up.
        admin.pair(a, "15553360001")
        wait_until(lambda: "connection_opened" in [r.event for r in receiver.attempts])
        activity = admin.http.get(
            f"/api/instances/{a}/activity", params={"actions": "webhook_failed"}
        ).json()
        assert activity["pagination"]["total"] >= 1
        assert activity["logs"][-1]["details"]["event"] == "qr_received"
    finally:
        receiver.close()


def test_a_hanging_receiver_does_not_delay_another_instance(server: Server, admin: Api) -> None:
    hanging, prompt = Receiver(hang=8), Receiver()
    try:
        hooked(admin, "Hangs", hanging.url, maxRetries=0)
        wait_until(lambda: hanging.attempts)  # its first delivery is now stuck
        started = time.monotonic()
        hooked(admin, "Prompt", prompt.url)
        wait_until(lambda: prompt.events() == ["qr_received"], timeout=3)
        assert time.monotonic() - started < 3
    finally:
        hanging.close()
        prompt.close()


def test_a_new_url_applies_to_the_next_attempt_without_a_restart(
    server: Server, admin: Api
) -> None:
    broken, fixed = Receiver(status=500), Receiver()
    try:
        a = hooked(admin, "Moving", broken.url, maxRetries=5, retryInterval=60_000)
        wait_until(lambda: broken.attempts)
        changed = admin.http.put(f"/api/instances/{a}", json={"webhookUrl": fixed.url})
        assert changed.status_code == 200, changed.text
        wait_until(lambda: fixed.events() == ["qr_received"], timeout=5)
    finally:
        broken.close()
        fixed.close()


def test_settings_from_an_older_change_never_replace_newer_ones() -> None:
    # Settings come with the change (no store read); answers to two quick PUTs may
    # arrive in either order, and the newer settings must win.
    from actors.webhooks.deliverer import Deliverer

    deliverer = Deliverer(None, "i", {})  # type: ignore[arg-type]
    deliverer.update(7, {"url": "http://newer"})
    deliverer.update(6, {"url": "http://older"})
    assert deliverer.settings == {"url": "http://newer"}
    deliverer.update(8, {"url": "http://newest"})
    assert deliverer.settings == {"url": "http://newest"}


def test_replay_resends_exactly_the_range_with_the_original_delivery_ids(
    server: Server, admin: Api, receiver: Receiver
) -> None:
    a = hooked(admin, "Replayed", receiver.url)
    peer = admin.create_instance("Replay peer")["id"]
    admin.pair(a, "15553370001")
    admin.pair(peer, "15553370002")
    sent_ids = [admin.send(a, "15553370002", f"r{i}").json()["id"] for i in range(3)]
    admin.read(peer, "15553370001", sent_ids)
    wait_until(lambda: receiver.events().count("message_sent") == 3)
    wait_until(lambda: receiver.events().count("message_status") == 6)
    sent = admin.http.get(f"/api/instances/{a}/events", params={"types": "MessageSent"}).json()[
        "events"
    ]
    first, last = sent[1]["position"], sent[2]["position"]
    originals = {
        r.json["data"].get("messageId"): r.headers["x-webhook-delivery"]
        for r in receiver.received
        if r.event == "message_sent"
    }
    before = len(receiver.received)

    answer = admin.http.post(
        f"/api/instances/{a}/webhooks/replay", json={"fromPosition": first, "toPosition": last}
    )
    assert answer.status_code == 202, answer.text
    expected = answer.json()["replaying"]
    wait_until(lambda: len(receiver.received) == before + expected)
    replayed = receiver.received[before:]
    assert all(r.headers["x-webhook-replay"] == "true" for r in replayed)
    # r1's sent event, its receipts in between, and r2's sent event; nothing else.
    assert replayed[0].event == "message_sent" and replayed[-1].event == "message_sent"
    assert [r.json["data"]["body"] for r in replayed if r.event == "message_sent"] == ["r1", "r2"]
    for r in replayed:
        if r.event == "message_sent":
            assert r.headers["x-webhook-delivery"] == originals[r.json["data"]["messageId"]]
    # Nothing else comes. Not a fixed wait: a live send after the replay arrives with its
    # receipts, and live deliveries are in order, so a stray re-send would come before them.
    r3 = admin.send(a, "15553370002", "r3").json()["id"]
    admin.read(peer, "15553370001", [r3])
    wait_until(
        lambda: any(
            r.json["data"].get("messageId") == r3 and r.json["data"].get("status") == "read"
            for r in receiver.received
        )
    )
    later = receiver.received[before + expected :]
    assert [r.headers.get("x-webhook-replay") for r in later] == [None] * len(later)
    assert {r.json["data"]["messageId"] for r in later} == {r3}, [r.json for r in later]


def test_private_webhook_addresses_are_refused_when_not_allowed(tmp_path) -> None:
    from tests.server import running_server

    with running_server(tmp_path, WEBHOOK_ALLOW_PRIVATE="false") as server:
        admin = Api.login(server)
        answer = admin.http.post(
            "/api/instances", json={"name": "x", "webhookUrl": "http://127.0.0.1:8/x"}
        )
        assert answer.status_code == 400 and answer.json()["code"] == "webhook_url_not_allowed"
        answer = admin.http.post(
            "/api/instances", json={"name": "x", "webhookUrl": "http://169.254.169.254/x"}
        )
        assert answer.status_code == 400


@pytest.mark.kills_the_server
def test_kill_9_during_delivery_loses_nothing(fresh_server: Server) -> None:
    receiver = Receiver(hang=0.02)
    try:
        admin = Api.login(fresh_server)
        a = hooked(admin, "Crashy", receiver.url, notifyDelivery=False, notifyRead=False)
        peer = admin.create_instance("Crash peer")["id"]
        admin.pair(a, "15553380001")
        admin.pair(peer, "15553380002")
        # A slow receiver while the burst is sent, so the kill finds deliveries still to do
        # however fast the store takes the sends; quick again after the restart.
        receiver.hang = 0.25
        acknowledged = [admin.send(a, "15553380002", f"c{i}").json()["id"] for i in range(40)]
        fresh_server.kill()  # in the middle of delivering the burst
        delivered_before = len(receiver.received)
        receiver.hang = 0.02
        fresh_server.start()
        wait_until(
            lambda: (
                {
                    r.json["data"].get("messageId")
                    for r in receiver.received
                    if r.event == "message_sent"
                }
                >= set(acknowledged)
            ),
            timeout=20,
        )
        # Duplicates only ever repeat a delivery id; one id is always the same event.
        by_id: dict[str, bytes] = {}
        for r in receiver.received:
            assert by_id.setdefault(r.headers["x-webhook-delivery"], r.body) == r.body
        assert delivered_before < 40 + 2, "the kill should have interrupted delivery"
        assert len(fresh_server.stored_events(a, topic="MessageSent")) == 40
    finally:
        receiver.close()


def plant_row(server: Server, table: str, row: dict[str, Any]) -> None:
    """Write a read-model row behind the server's back, as a stray writer would."""
    storage = server.storage
    assert storage is not None
    if storage.name == "mongodb":
        storage.collection(table).insert_one({"_id": row["id"], **row})
        return
    db = sqlite3.connect(storage.serving_file())
    with db:
        marks = ", ".join("?" * len(row))
        db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})", list(row.values()))
    db.close()


def test_webhooks_arrive_while_a_projection_is_broken(fresh_server: Server) -> None:
    receiver = Receiver()
    try:
        admin = Api.login(fresh_server)
        a = hooked(admin, "Unprojected", receiver.url, notifyDelivery=False, notifyRead=False)
        peer = admin.create_instance("Unprojected peer")["id"]
        admin.pair(a, "15553390001")
        admin.pair(peer, "15553390002")
        wait_until(lambda: receiver.events() == ["qr_received", "connection_opened"])
        # Break the activity projection: a stray row already holds the id that the row of
        # the instance's next event will take, so the batch that carries that event fails
        # (a duplicate key, on either provider) and the read models stop there.
        version = len(fresh_server.stored_events(a))
        stray = {"id": f"{a}-{version + 1}", "instance_id": a, "action": "stray", "details": "{}"}
        plant_row(fresh_server, "activity", {**stray, "created_at": "2026-01-01T00:00:00.000Z"})
        admin.http.post(f"/api/sandbox/instances/{a}/drop")  # its ConnectionClosed is that event
        wait_until(lambda: not admin.http.get("/health").json()["checks"]["readModels"]["ok"])
        # It reconnects by itself; the webhooks say so while the read models cannot.
        wait_until(lambda: receiver.events()[2:] == ["connection_closed", "connection_opened"])

        # The send waits (bounded) for read models that never come, then answers.
        sent = admin.send(a, "15553390002", "while the read models are down")
        assert sent.status_code == 200, sent.text
        wait_until(
            lambda: (
                [
                    r.json["data"].get("messageId")
                    for r in receiver.received
                    if r.event == "message_sent"
                ]
                == [sent.json()["id"]]
            ),
        )
        assert not admin.http.get("/health").json()["checks"]["readModels"]["ok"]
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with small webhook limits (they are settings; one SQLite server is enough)."""
    from tests.server import running_server

    with running_server(
        tmp_path_factory.mktemp("tuned"), WEBHOOK_REPLAY_LIMIT="3", WEBHOOK_BACKLOG_LIMIT="100"
    ) as running:
        yield running


def test_one_replay_at_a_time_bounded_and_paced_like_delivery(tuned: Server) -> None:
    receiver = Receiver()
    try:
        admin = Api.login(tuned)
        a = hooked(admin, "Replays", receiver.url)
        peer = admin.create_instance("Replays peer")["id"]
        admin.pair(a, "15553400001")
        admin.pair(peer, "15553400002")
        sent = [admin.send(a, "15553400002", f"p{i}").json()["id"] for i in range(3)]
        admin.read(peer, "15553400001", sent)
        wait_until(lambda: len(receiver.received) == 11)  # qr, opened, 3 x sent/delivered/read
        receiver.hang = 0.1

        first = admin.http.post(f"/api/instances/{a}/webhooks/replay", json={"fromPosition": 0})
        again = admin.http.post(f"/api/instances/{a}/webhooks/replay", json={"fromPosition": 0})
        live = admin.send(a, "15553400002", "during the replay").json()["id"]

        assert first.status_code == 202, first.text
        assert first.json()["replaying"] == 3  # WEBHOOK_REPLAY_LIMIT, not all 11
        rest = first.json()["nextPosition"]
        assert isinstance(rest, int) and rest > 0
        assert again.status_code == 409 and again.json()["code"] == "replay_running"
        wait_until(
            lambda: (
                sum(r.headers.get("x-webhook-replay") == "true" for r in receiver.received) == 3
                and live in [r.json["data"].get("messageId") for r in receiver.received]
            ),
            timeout=10,
        )
        # Replayed and live deliveries went out one at a time, as delivery does.
        assert receiver.most_in_flight == 1
        replayed = [r.event for r in receiver.received if r.headers.get("x-webhook-replay")]
        assert replayed == ["qr_received", "connection_opened", "message_sent"]
        # The first replay is done: the rest of the range can follow.
        receiver.hang = 0
        wait_until(
            lambda: (
                admin.http.post(
                    f"/api/instances/{a}/webhooks/replay", json={"fromPosition": rest}
                ).status_code
                == 202
            )
        )
    finally:
        receiver.close()


def test_sends_wait_while_webhook_delivery_is_too_far_behind(tuned: Server) -> None:
    slow = Receiver(hang=0.3)
    try:
        admin = Api.login(tuned)
        a = hooked(admin, "Backlogged", slow.url)
        quiet = admin.create_instance("No webhooks")["id"]
        admin.pair(a, "15553410001")
        admin.pair(quiet, "15553410002")
        refused = None
        for i in range(200):
            answer = admin.send(a, "15553410002", f"b{i}")
            if answer.status_code != 200:
                refused = answer
                break
        assert refused is not None, "200 sends accepted with a receiver 50 times too slow"
        assert refused.status_code == 503 and refused.json()["code"] == "webhook_backlog"
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        # An instance without webhooks adds nothing to the backlog and is not held up.
        assert admin.send(quiet, "15553410001", "not held up").status_code == 200
        # Once delivery has caught up, sends go through again; nothing was lost meanwhile.
        slow.hang = 0
        wait_until(lambda: admin.send(a, "15553410002", "again").status_code == 200, timeout=60)
        sent = [e for e in tuned.stored_events(a) if type(e).__name__ == "MessageSent"]
        wait_until(lambda: slow.events().count("message_sent") == len(sent), timeout=30)
    finally:
        slow.close()
