"""Chat history, activity, statistics and the event history against a real server."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import httpx
import pytest

from tests.server import Api, Server, wait_until
from tests.sse import SseReader


@pytest.fixture(scope="module")
def pair(server: Server, admin: Api) -> dict[str, str]:
    """A user with two paired instances that have talked: 3 messages from A, 2 from B."""
    admin.create_user("history@example.com", password="history-password")
    user = Api.login(server, "history@example.com", "history-password")
    a = user.create_instance("A")["id"]
    b = user.create_instance("B")["id"]
    user.pair(a, "15551110001")
    user.pair(b, "15551110002")
    sent = []
    for i in range(3):
        answer = user.send(a, "15551110002", f"a{i}")
        assert answer.status_code == 200
        sent.append(answer.json()["id"])
    user.read(b, "15551110001", sent)  # B reads them: A's messages turn read
    for i in range(2):
        assert user.send(b, "15551110001", f"b{i}").status_code == 200
    return {"a": a, "b": b, "token": user.http.headers["Authorization"]}


@pytest.fixture()
def user(server: Server, pair: dict[str, str]) -> Api:
    api = Api(server)
    api.http.headers["Authorization"] = pair["token"]
    return api


def test_chat_history_both_directions_newest_first_with_current_status(
    user: Api, pair: dict[str, str]
) -> None:
    history = wait_until(
        lambda: (
            (h := user.http.get(f"/api/instances/{pair['a']}/chats/15551110002/messages").json())[
                "pagination"
            ]["total"]
            == 5
            and h
        )
    )
    contents = [(m["content"], m["fromMe"]) for m in history["messages"]]
    assert contents == [("b1", False), ("b0", False), ("a2", True), ("a1", True), ("a0", True)]
    # Receipts arrived after sending (read once B read them); received ones stay received.
    wait_until(
        lambda: (
            [
                m["status"]
                for m in user.http.get(
                    f"/api/instances/{pair['a']}/chats/15551110002/messages"
                ).json()["messages"]
            ]
            == ["received", "received", "read", "read", "read"]
        )
    )


def test_chat_history_pages_and_windows(user: Api, pair: dict[str, str]) -> None:
    url = f"/api/instances/{pair['a']}/chats/15551110002@s.whatsapp.net/messages"
    page = user.http.get(url, params={"limit": 2, "skip": 1}).json()
    assert [m["content"] for m in page["messages"]] == ["b0", "a2"]
    assert page["pagination"] == {"total": 5, "limit": 2, "skip": 1, "hasMore": True}
    last = user.http.get(url, params={"limit": 2, "skip": 4}).json()
    assert last["pagination"]["hasMore"] is False and len(last["messages"]) == 1
    everything = user.http.get(url).json()["messages"]
    middle = everything[2]["createdAt"]
    window = user.http.get(url, params={"startDate": middle, "endDate": middle}).json()
    assert [m["createdAt"] for m in window["messages"]] == [
        m["createdAt"] for m in everything if m["createdAt"] == middle
    ]
    assert user.http.get(url, params={"startDate": "2999-01-01"}).json()["messages"] == []
    assert user.http.get(url, params={"limit": "lots"}).status_code == 400
    # A date alone is the whole of that day, at either end.
    day = middle[:10]
    that_day = [m["createdAt"] for m in everything if m["createdAt"].startswith(day)]
    for bounds in ({"startDate": day, "endDate": day}, {"endDate": day, "startDate": "2000-01-01"}):
        shown = user.http.get(url, params=bounds).json()["messages"]
        assert [m["createdAt"] for m in shown if m["createdAt"].startswith(day)] == that_day
    assert user.http.get(url, params={"endDate": "2000-01-01"}).json()["messages"] == []


def test_activity_log_filters_and_pages(user: Api, pair: dict[str, str]) -> None:
    url = f"/api/instances/{pair['a']}/activity"
    logs = user.http.get(url).json()
    actions = [entry["action"] for entry in logs["logs"]]
    # Newest first: created, connection requested, QR, opened.
    assert actions[::-1][:4] == [
        "instance_created",
        "connection_requested",
        "qr_received",
        "connection_opened",
    ]
    only = user.http.get(url, params={"actions": "qr_received,connection_opened"}).json()
    assert sorted(e["action"] for e in only["logs"]) == ["connection_opened", "qr_received"]
    assert only["pagination"]["total"] == 2
    one = user.http.get(url, params={"limit": 1}).json()
    assert one["pagination"]["hasMore"] is True and len(one["logs"]) == 1


def test_statistics_count_messages_per_instance_and_user(user: Api, pair: dict[str, str]) -> None:
    wait_until(
        lambda: (
            user.http.get(f"/api/stats/instances/{pair['a']}").json()["usage"]["messagesReceived"]
            == 2
        )
    )
    usage = user.http.get(f"/api/stats/instances/{pair['a']}", params={"period": "all"}).json()[
        "usage"
    ]
    assert (usage["messagesSent"], usage["messagesReceived"]) == (3, 2)
    assert len(usage["dailyStats"]) == 1 and usage["dailyStats"][0]["messagesSent"] == 3
    mine = user.http.get("/api/stats/user", params={"period": "week"}).json()
    assert mine["total"]["messagesSent"] == 5 and mine["total"]["instanceCount"] == 2
    assert {i["name"]: i["messagesSent"] for i in mine["instances"]} == {"A": 3, "B": 2}
    assert user.http.get("/api/stats/user", params={"period": "decade"}).status_code == 400
    assert user.http.get("/api/stats/system").status_code == 403


def test_event_history_in_store_order_with_types_and_paging(
    user: Api, pair: dict[str, str]
) -> None:
    url = f"/api/instances/{pair['a']}/events"
    everything = user.http.get(url, params={"limit": 1000}).json()["events"]
    positions = [e["position"] for e in everything]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert everything[0]["type"] == "InstanceCreated"
    sent = user.http.get(url, params={"types": "MessageSent"}).json()
    assert [e["data"]["body"] for e in sent["events"]] == ["a0", "a1", "a2"]
    after = user.http.get(url, params={"after": positions[2], "limit": 2}).json()
    assert [e["position"] for e in after["events"]] == positions[3:5]
    assert after["next"] == positions[4]
    assert user.http.get(url, params={"types": "Nonsense"}).json()["code"] == "invalid_types"
    assert user.http.get("/api/events").status_code == 403


def test_event_history_hides_secrets(admin: Api) -> None:
    instance = admin.create_instance(
        "Secretive", webhookUrl="http://127.0.0.1:9/h", webhookSecret="hush-hush"
    )
    events = admin.http.get("/api/events", params={"limit": 1000}).json()["events"]
    text = json.dumps(events)
    assert "hush-hush" not in text and "argon2" not in text
    created = next(e for e in events if e["aggregateId"] == instance["id"])
    assert created["data"]["webhook"]["secret"] == "[redacted]"


def test_event_stream_delivers_new_events_and_resumes_without_gaps(
    user: Api, pair: dict[str, str]
) -> None:
    url = f"{user.server.url}/api/instances/{pair['a']}/events"
    headers = {"Authorization": user.http.headers["Authorization"], "Accept": "text/event-stream"}
    head = user.http.get(f"/api/instances/{pair['a']}/events", params={"limit": 1000}).json()[
        "next"
    ]

    # Send once the stream is open: the stream must show the new MessageSent.
    threading.Timer(0.5, lambda: user.send(pair["a"], "15551110002", "live one")).start()
    with httpx.stream("GET", url, params={"after": head}, headers=headers, timeout=15) as response:
        first = SseReader(response).read(1)
    assert (
        first
        and first[0]["data"]["type"] == "MessageSent"
        and first[0]["data"]["data"]["body"] == "live one"
    )

    # B reads it: A gets its delivered and then its read receipt.
    user.read(pair["b"], "15551110001", [first[0]["data"]["data"]["messageId"]])
    # Resume from that event: the next ones follow it with nothing repeated or skipped.
    with httpx.stream(
        "GET", url, headers={**headers, "Last-Event-ID": str(first[0]["id"])}, timeout=15
    ) as response:
        resumed = SseReader(response).read(2)
    expected = [
        e["position"]
        for e in user.http.get(
            f"/api/instances/{pair['a']}/events", params={"after": first[0]["id"], "limit": 2}
        ).json()["events"]
    ]
    assert [e["id"] for e in resumed] == expected and len(expected) == 2


ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:")


def times_in(value: Any) -> list[str]:
    """Every ISO 8601 time in an answer."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in times_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in times_in(v)]
    return [value] if isinstance(value, str) and ISO_TIME.match(value) else []


def test_every_answer_shows_times_in_utc_with_milliseconds_the_history_with_microseconds(
    server: Server, admin: Api, user: Api, pair: dict[str, str]
) -> None:
    a = pair["a"]
    answers = [
        user.http.get(path).json()
        for path in (
            "/api/auth/me",
            "/api/instances",
            f"/api/instances/{a}",
            f"/api/instances/{a}/activity",
            f"/api/instances/{a}/chats/15551110002/messages",
            f"/api/instances/{a}/webhooks/deliveries",
            f"/api/whatsapp/{a}/contacts",
        )
    ] + [admin.http.get(path).json() for path in ("/api/users", "/api/stats/system")]
    shown = times_in(answers)
    assert len(shown) > 10  # the answers above do show times
    assert [t for t in shown if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", t)] == []
    history = times_in(user.http.get(f"/api/instances/{a}/events").json())
    assert history and [t for t in history if not re.match(r"^.{19}\.\d{6}Z$", t)] == []
