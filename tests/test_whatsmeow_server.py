"""The whatsmeow engine inside a real server: status, retries, sends, logout, processes.

Nothing leaves this machine: instances given a `RefusingProxy` fail to connect at once (as
offline) and retry; instances with a `HangingProxy` stay connecting while the test pushes neonize events into their
child through its test FIFO (WHATSMEOW_TEST_EVENTS=1), as whatsmeow would dispatch them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.drills import record
from tests.server import Api, Server, running_server, wait_until
from tests.whatsmeow import (
    LID,
    HangingProxy,
    RefusingProxy,
    children,
    hanging_proxy,
    inject,
    jid,
    listens,
    message_event,
    process_state,
    refusing_proxy,
    zombies,
)

neonize = pytest.importorskip("neonize")
pytestmark = pytest.mark.sqlite_only("the engine does not touch storage; SQLite is enough")


@pytest.fixture(scope="module")
def proxy() -> Iterator[HangingProxy]:
    with hanging_proxy() as running:
        yield running


@pytest.fixture(scope="module")
def refusing() -> Iterator[RefusingProxy]:
    with refusing_proxy() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("whatsmeow"),
        WHATSMEOW_TEST_EVENTS="1",
        ENGINE_RETRY_BASE_MS="20",
        LOG_LEVEL="debug",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: Server) -> Api:
    return Api.login(server)


def instance_dir(server: Server, instance_id: str) -> Path:
    return server.root / "instances" / instance_id


def child_of(server: Server, instance_id: str) -> int:
    """The instance's one live child, once it listens for test events."""
    directory = instance_dir(server, instance_id)
    pid: int = wait_until(lambda: len(found := children(directory)) == 1 and found[0], 30)
    wait_until(lambda: listens(directory, pid), 30)
    return pid


def push(server: Server, instance_id: str, event: Any, pid: int | None = None) -> None:
    inject(instance_dir(server, instance_id), pid or child_of(server, instance_id), event)


def activity(api: Api, instance_id: str, action: str) -> list[dict[str, Any]]:
    logs = api.http.get(
        f"/api/instances/{instance_id}/activity", params={"actions": action, "limit": 200}
    ).json()["logs"]
    return list(reversed(logs))


def whatsmeow(api: Api, name: str, **fields: Any) -> str:
    return str(api.create_instance(name, engine="whatsmeow", **fields)["id"])


def delete(api: Api, instance_id: str) -> None:
    """Delete an instance (a paired one first asks WhatsApp to unlink it, which may wait
    for the connection)."""
    answer = api.http.delete(f"/api/instances/{instance_id}", timeout=60)
    assert answer.status_code == 200, answer.text


def connected() -> Any:
    from neonize.proto.Neonize_pb2 import Connected

    return Connected(status=True)


# -- retries and status ----------------------------------------------------------------


def test_offline_instances_keep_retrying_and_say_when(api: Api, refusing: RefusingProxy) -> None:
    instance = whatsmeow(api, "Offline", proxy=refusing.url)
    # More retries than the old cap ever allowed (5, then "reconnect_limit"), each one
    # announced with when the next attempt is.
    closed = wait_until(
        lambda: len(found := activity(api, instance, "connection_closed")) >= 8 and found, 90
    )
    for entry in closed:
        details = entry["details"]
        assert details["willReconnect"] is True, details
        assert details["reason"].startswith("NeonizeError"), details
        assert details["retryAt"].endswith("Z"), details
    status = api.status(instance)
    assert status["status"] in ("reconnecting", "connecting"), status
    assert status["ready"] is False and "lastError" in status and "retryAt" in status
    view = api.http.get(f"/api/instances/{instance}").json()["connectionStatus"]
    assert set(view) == {"ready", "status", "hasQr", "lastError", "retryAt"}
    delete(api, instance)


def test_the_status_tells_the_whole_story(server: Server, api: Api, proxy: HangingProxy) -> None:
    from neonize.proto.Neonize_pb2 import Disconnected, TemporaryBan

    instance = whatsmeow(api, "Story", proxy=proxy.url)
    first = child_of(server, instance)
    push(server, instance, "2@a-qr-code", first)
    wait_until(lambda: api.status(instance)["status"] == "qr")
    assert api.status(instance) == {
        "ready": False,
        "status": "qr",
        "hasQr": True,
        "lastError": None,
        "retryAt": None,
    }
    assert api.http.get(f"/api/whatsapp/{instance}/qr").json() == {"qrCode": "2@a-qr-code"}

    push(server, instance, connected(), first)
    wait_until(lambda: api.status(instance)["ready"])
    assert api.status(instance) == {"ready": True, "status": "connected", "hasQr": False}

    # A LID sender with their phone in SenderAlt: the chat is their phone's.
    lid_sender = jid("98765432101234", LID)
    push(
        server,
        instance,
        message_event("hi from a lid", sender=lid_sender, sender_alt=jid("15550007777")),
        first,
    )
    # Sent from the phone itself: recorded as sent, in the same chat.
    push(
        server,
        instance,
        message_event(
            "reply from my phone",
            chat=lid_sender,
            sender=jid("15550001111"),
            recipient_alt=jid("15550007777"),
            from_me=True,
            message_id="3EB0PHONE",
        ),
        first,
    )
    chat = wait_until(
        lambda: (
            len(
                rows := api.http.get(
                    f"/api/instances/{instance}/chats/15550007777/messages"
                ).json()["messages"]
            )
            == 2
            and rows
        )
    )
    assert [(m["fromMe"], m["content"]) for m in reversed(chat)] == [
        (False, "hi from a lid"),
        (True, "reply from my phone"),
    ]
    sent = server.stored_events(instance, "MessageSent")
    assert [(e.origin, e.to) for e in sent] == [("phone", "15550007777@s.whatsapp.net")]
    received = server.stored_events(instance, "MessageReceived")
    assert [(e.sender, e.phone, e.lid) for e in received] == [
        ("15550007777@s.whatsapp.net", "15550007777", "98765432101234@lid")
    ]

    # whatsmeow lost the socket and reconnects by itself: no attempt counted, no new child.
    push(server, instance, Disconnected(), first)
    wait_until(lambda: api.status(instance)["status"] == "reconnecting")
    assert api.status(instance)["lastError"] == "connection_lost"
    push(server, instance, connected(), first)
    wait_until(lambda: api.status(instance)["ready"])
    assert children(instance_dir(server, instance)) == [first]

    # A temporary ban ends the session until it expires, then it connects again by itself.
    push(
        server,
        instance,
        TemporaryBan(Code=TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=3),
        first,
    )
    wait_until(lambda: api.status(instance)["status"] == "banned")
    banned = api.status(instance)
    assert banned["lastError"] == "banned: SENT_TOO_MANY_SAME_MESSAGE" and banned["retryAt"]
    wait_until(lambda: first not in children(instance_dir(server, instance)), 30)
    wait_until(
        lambda: (
            activity(api, instance, "connection_requested")[-1]["details"]
            == {"reason": "ban_expired"}
        ),
        30,
    )
    second = child_of(server, instance)
    assert second != first
    # (left to the end of the module: deleting a paired instance waits to unlink it)


@pytest.mark.drill("whatsmeow send, engine silent then killed")
def test_a_send_that_never_returns_is_unknown_not_failed(
    server: Server, api: Api, proxy: HangingProxy
) -> None:
    instance = whatsmeow(api, "Silent", proxy=proxy.url)
    pid = child_of(server, instance)
    push(server, instance, connected(), pid)
    wait_until(lambda: api.status(instance)["ready"])
    # A send to a group needs no number lookup; the child takes it and falls silent.
    os.kill(pid, signal.SIGSTOP)
    message = {"phone": "120363000000000001@g.us", "message": "did it go?"}
    headers = {"Idempotency-Key": "order-77"}
    first = api.http.post(
        f"/api/whatsapp/{instance}/send", json=message, headers=headers, timeout=30
    )
    assert first.status_code == 202, first.text
    assert first.json()["code"] == "send_outcome_unknown"
    assert first.json()["idempotencyKey"] == "order-77"
    # A file sent meanwhile waits behind it, and its outcome is unknown too: the upload
    # stays where the engine may still read it (the cleanup job removes it in time).
    uploads = server.root / "uploads"
    before = set(uploads.iterdir())
    filed = api.http.post(
        f"/api/whatsapp/{instance}/send-file",
        data={"phone": message["phone"], "caption": "and this?"},
        files={"file": ("note.txt", b"hello", "text/plain")},
        headers={"Idempotency-Key": "order-78"},
        timeout=30,
    )
    assert (filed.status_code, filed.json()["code"]) == (202, "send_outcome_unknown"), filed.text
    assert len(set(uploads.iterdir()) - before) == 1
    os.kill(pid, signal.SIGKILL)  # the engine crashes with the send in flight

    def started(key: str) -> list[Any]:
        return [
            e for e in server.stored_events(instance, "SendStarted") if e.idempotency_key == key
        ]

    wait_until(lambda: server.stored_events(instance, "SendOutcomeUnknown"), 30)
    # The retry is told the same, at once, and nothing is sent again.
    retry = api.http.post(f"/api/whatsapp/{instance}/send", json=message, headers=headers)
    record(
        first=first.status_code,
        retry=retry.status_code,
        started=len(started("order-77")),
        sent_again=len(server.stored_events(instance, "MessageSent")),
    )
    assert (retry.status_code, retry.json()["code"]) == (202, "send_outcome_unknown")
    assert len(started("order-77")) == 1
    assert server.stored_events(instance, "MessageSent") == []
    # (left to the end of the module: deleting a paired instance waits to unlink it)


def test_logging_out_while_reconnecting_still_unlinks(
    server: Server, api: Api, proxy: HangingProxy
) -> None:
    from neonize.proto.Neonize_pb2 import Disconnected

    instance = whatsmeow(api, "Leaving", proxy=proxy.url)
    pid = child_of(server, instance)
    push(server, instance, connected(), pid)
    wait_until(lambda: api.status(instance)["ready"])
    push(server, instance, Disconnected(), pid)
    wait_until(lambda: api.status(instance)["status"] == "reconnecting")
    # The logout waits for the connection to come back, then asks whatsmeow to unlink
    # (offline it cannot: it says so, and what to do).
    threading.Timer(1.5, lambda: push(server, instance, connected(), pid)).start()
    answer = api.http.post(f"/api/whatsapp/{instance}/logout", timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["unlinked"] is False and "Linked devices" in answer.json()["warning"]
    assert f"unlinking {instance} on WhatsApp failed" in server.log_text()
    assert api.status(instance)["status"] == "logged_out"
    wait_until(lambda: children(instance_dir(server, instance)) == [], 30)
    assert activity(api, instance, "logged_out")[-1]["details"] == {
        "reason": "logout",
        "unlinked": False,
    }
    delete(api, instance)


@pytest.mark.drill("whatsmeow child kill -9")
def test_a_killed_child_is_restarted_while_the_api_keeps_answering(
    server: Server, api: Api, proxy: HangingProxy
) -> None:
    instance = whatsmeow(api, "Crashy", proxy=proxy.url)
    first = child_of(server, instance)
    os.kill(first, signal.SIGKILL)
    wait_until(
        lambda: any(
            e["details"]["reason"] == "engine_crashed"
            for e in activity(api, instance, "connection_closed")
        ),
        30,
    )
    answers = (
        api.http.get(f"/api/instances/{instance}").status_code,
        server.client().get("/health").status_code,
    )
    second = child_of(server, instance)
    record(api_answers=answers == (200, 200), new_child=second != first)
    assert answers == (200, 200)
    assert second != first
    delete(api, instance)


# -- a client version WhatsApp refuses -------------------------------------------------


# -- processes -------------------------------------------------------------------------


@pytest.mark.drill("whatsmeow children: 20 start and stop, Ctrl-C, kill -9")
def test_children_leave_no_zombies_and_never_outlive_the_server(
    tmp_path: Path, proxy: HangingProxy, refusing: RefusingProxy
) -> None:
    with running_server(
        tmp_path, WHATSMEOW_TEST_EVENTS="1", ENGINE_RETRY_BASE_MS="600000"
    ) as server:
        api = Api.login(server)
        assert server.process is not None
        # 20 sessions start (offline: each child fails at once and stops) ...
        ids = [whatsmeow(api, f"Z{n}", proxy=refusing.url) for n in range(20)]
        for instance in ids:
            wait_until(lambda i=instance: activity(api, i, "connection_closed"), 60)
        for instance in ids:
            wait_until(lambda i=instance: children(instance_dir(server, i)) == [], 30)
        # (A child that just exited is a zombie for the moment its parent takes to reap
        # it: what must not be is one that stays.)
        settled = lambda: zombies(server.process.pid) == []  # noqa: E731
        with contextlib.suppress(AssertionError):
            wait_until(settled, 5)
        record(sessions=len(ids), zombies=len(zombies(server.process.pid)))
        assert settled()
        # ... and stop.
        for instance in ids:
            delete(api, instance)
        with contextlib.suppress(AssertionError):
            wait_until(settled, 5)
        record(zombies=len(zombies(server.process.pid)))
        assert settled()

        # Ctrl-C reaches a whole process group; only the server decides when a child stops:
        # after one, the child still takes an event and the server stores it.
        kept = whatsmeow(api, "Kept", proxy=proxy.url)
        pid = child_of(server, kept)
        os.kill(pid, signal.SIGINT)
        push(server, kept, message_event("still here", message_id="3EB0CTRLC"), pid)
        wait_until(lambda: server.stored_events(kept, "MessageReceived"), 30)
        assert process_state(pid) not in (None, "Z")
        assert api.status(kept)["status"] == "connecting"
        # A server that dies takes its children with it (a survivor would keep the session).
        server.kill()
        with contextlib.suppress(AssertionError):
            wait_until(lambda: process_state(pid) is None, 20)
        record(outlived_server=int(process_state(pid) is not None))
        assert process_state(pid) is None


def test_instances_start_a_few_at_a_time_most_recent_first(
    tmp_path: Path, refusing: RefusingProxy
) -> None:
    # Retries a minute apart: the rename below stays each instance's last activity.
    with running_server(
        tmp_path, ENGINE_START_CONCURRENCY="1", ENGINE_RETRY_BASE_MS="60000"
    ) as server:
        api = Api.login(server)
        ids = [whatsmeow(api, f"S{n}", proxy=refusing.url) for n in range(5)]
        for instance in ids:
            wait_until(lambda i=instance: activity(api, i, "connection_closed"), 60)
        api.http.put(f"/api/instances/{ids[1]}", json={"name": "used just now"})

        def starts(events: list[Any]) -> list[int]:
            """Where the instance was asked to connect: once by each start-up."""
            return [
                n
                for n, e in enumerate(events)
                if type(e).__name__ == "ConnectionRequested" and e.reason == "start"
            ]

        before = {i: len(starts(server.stored_events(i))) for i in ids}
        server.restart()
        health = server.client().get("/health").json()["checks"]["actors"]
        # One start at a time: right after start-up most are still waiting their turn.
        assert health["starting"] >= 1, health

        def after_restart(instance: str) -> tuple[Any, Any] | None:
            """(last activity before the restart, first attempt after it), once known."""
            events = server.stored_events(instance)
            asked = starts(events)
            if len(asked) <= before[instance]:
                return None  # this start-up has not asked it yet
            restart = asked[-1]
            closed = [e for e in events[restart:] if type(e).__name__ == "ConnectionClosed"]
            return (events[restart - 1].timestamp, closed[0].timestamp) if closed else None

        def everyone() -> dict[str, Any] | None:
            found = {i: after_restart(i) for i in ids}
            return found if all(found.values()) else None

        timeline = wait_until(everyone, 90)
        by_recent_activity = sorted(ids, key=lambda i: timeline[i][0], reverse=True)
        assert by_recent_activity[0] == ids[1], (ids, timeline)  # renamed last
        assert sorted(ids, key=lambda i: timeline[i][1]) == by_recent_activity, (ids, timeline)
        wait_until(
            lambda: server.client().get("/health").json()["checks"]["actors"]["starting"] == 0,
            30,
        )


# -- last, as they restart the module's server ------------------------------------------


def test_an_outdated_client_stops_every_instance_and_says_what_to_do(
    server: Server, api: Api, proxy: HangingProxy
) -> None:
    from neonize.proto.Neonize_pb2 import ClientOutdated

    first = whatsmeow(api, "First", proxy=proxy.url)
    second = whatsmeow(api, "Second", proxy=proxy.url)
    child_of(server, second)
    push(server, first, ClientOutdated())
    wait_until(lambda: api.status(first)["status"] == "outdated")
    assert api.status(first)["lastError"] == "client_outdated: WhatsApp refuses neonize 0.5.2"
    assert "pip install -U neonize" in server.log_text()
    metrics = api.http.get("/metrics").text
    assert 'whatsapp_whatsmeow_client_outdated{neonize="0.5.2"} 1.0' in metrics
    doctor = subprocess.run(
        [sys.executable, "-m", "app.cli", "doctor"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "WhatsApp refuses neonize 0.5.2" in doctor.stdout
    assert "pip install -U neonize" in doctor.stdout and doctor.returncode == 1
    # After a restart with the same neonize, nobody tries again: no child, no storm.
    server.restart()
    wait_until(lambda: api.status(second)["status"] == "outdated", 30)
    assert children(instance_dir(server, first)) == children(instance_dir(server, second)) == []
    # With another neonize (here: the mark removed by hand) they connect again.
    (server.root / "instances" / ".whatsmeow-outdated").unlink()
    for instance in (first, second):
        assert api.http.post(f"/api/instances/{instance}/reconnect").status_code == 200
        child_of(server, instance)


@pytest.mark.drill("whatsmeow message as the server is killed")
def test_a_message_received_as_the_server_dies_is_stored_once(
    server: Server, api: Api, proxy: HangingProxy
) -> None:
    instance = whatsmeow(api, "Crash", proxy=proxy.url)
    push(server, instance, message_event("hold on to this", message_id="3EB0KEEP"))
    server.kill()  # whenever it is: before or after storing the message
    server.start()
    # The next child reports what its spool holds; a replay is recognised and dropped.
    wait_until(lambda: server.stored_events(instance, "MessageReceived"), 30)
    pid = child_of(server, instance)
    push(server, instance, message_event("and this", message_id="3EB0NEXT"), pid)
    wait_until(lambda: len(server.stored_events(instance, "MessageReceived")) == 2, 30)
    received = [e.message_id for e in server.stored_events(instance, "MessageReceived")]
    record(received=2, stored=len(set(received)), duplicates=len(received) - len(set(received)))
    assert received == ["3EB0KEEP", "3EB0NEXT"]
