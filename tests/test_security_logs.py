"""Logs and usage counts that a client cannot forge, wipe or inflate, against a real server.

Before: a `%0a` in a URL started a new, forged log line; 1,100 unauthenticated requests with
60 KB paths rotated every backup of the log away in a second; API calls were counted before
ownership was checked, with the raw path segment, so another user's 404s showed in your
statistics and 60 KB ids made an 18 MB event; and `apiCalls` read 0 until the 15-minute
save job had run.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx
import pytest

from app.usage import FLUSH_AT
from tests.server import Api, Server, wait_until

pytestmark = pytest.mark.drill_cases("security cases")

FORGED = "2031-01-01 00:00:00,000 ERROR app.auth: administrator password reset from 10.9.9.9"


def log_lines(server: Server) -> list[str]:
    files = [server.root / "logs" / "combined.log", server.log]
    return [line for path in files for line in path.read_text(errors="replace").splitlines()]


def test_line_breaks_in_a_request_cannot_forge_log_lines(server: Server, admin: Api) -> None:
    forged = quote(FORGED)
    client = server.client()
    for path in (
        f"/api/instances/x%0a{forged}",  # an instance id: logged as instance=...
        f"/api/whatsapp/x%0d%0a{forged}/status",
        f"/nowhere%0a{forged}",  # no route: the path itself is logged
        f"/nowhere%E2%80%A8{forged}",  # U+2028, a line break to some log viewers
    ):
        assert client.get(path).status_code in (401, 404)
    # Authenticated requests, and errors logged by the server, go the same way.
    assert admin.http.get(f"/api/instances/y%0a{forged}").status_code == 404
    # Lines are written once the answers have gone: wait for the escaped ones.
    lines = wait_until(
        lambda: (
            (found := log_lines(server))
            and any("instance=x\\n2031-01-01" in line for line in found)
            and any("/nowhere\\u20282031-01-01" in line for line in found)
            and any("instance=y\\n2031-01-01" in line for line in found)
            and found
        )
    )
    assert not [line for line in lines if line.startswith(FORGED[:23])]


def test_an_overlong_request_target_is_414(server: Server) -> None:
    for target in ("/api/instances/" + "x" * 60_000, "/health?" + "q=" + "x" * 9000):
        answer = server.client().get(target)
        assert answer.status_code == 414, answer.status_code
        assert answer.json()["code"] == "uri_too_long"
    assert server.client().get("/health?q=" + "x" * 7000).status_code == 200


def test_junk_requests_cannot_rotate_the_log_history_away(server: Server) -> None:
    marker = f"/marker-{uuid.uuid4().hex}"
    client = server.client()
    assert client.get(marker).status_code == 404
    logs = server.root / "logs"
    # The line is written once the answer has gone: the client may read it first.
    wait_until(lambda: marker in (logs / "combined.log").read_text())

    for _ in range(1100):  # refused at once, logged in a few words each
        client.get("/api/instances/" + "x" * 60_000)
    for _ in range(300):  # just under the limit: served (401), logged shortened
        client.get("/api/instances/" + "y" * 8000)

    assert not (logs / "combined.log.1").exists()
    text = (logs / "combined.log").read_text()
    assert marker in text
    assert (logs / "combined.log").stat().st_size < 1_000_000
    assert "y" * 200 not in text and "x" * 200 not in text


def test_api_calls_count_only_the_callers_own_and_show_at_once(
    fresh_server: Server,
) -> None:
    server = fresh_server
    admin = Api.login(server)
    admin.create_user("counted-a@example.com", password="counted-password")
    admin.create_user("counted-b@example.com", password="counted-password")
    alice = Api.login(server, "counted-a@example.com", "counted-password")
    bob = Api.login(server, "counted-b@example.com", "counted-password")
    mine = alice.create_instance("Counted")["id"]  # counted to Alice alone
    for _ in range(3):
        alice.status(mine)
    junk = "junk-" + uuid.uuid4().hex + "j" * 2000
    for _ in range(20):
        assert bob.http.get(f"/api/whatsapp/{mine}/status").status_code == 404
    for _ in range(5):
        assert bob.http.get(f"/api/whatsapp/{junk}/status").status_code == 404

    def instance_calls() -> int:
        return alice.http.get(f"/api/stats/instances/{mine}").json()["usage"]["apiCalls"]

    def user_calls(api: Api) -> int:
        return api.http.get("/api/stats/user").json()["total"]["apiCalls"]

    # At once, before any save: three status calls and this statistics call itself.
    assert instance_calls() == 4
    assert user_calls(alice) == 6  # and the create and this call
    assert user_calls(bob) == 26  # Bob's 25 calls count to Bob, on no one's instance
    listed = alice.http.get("/api/stats/user").json()["instances"]
    assert [(i["instanceId"], i["apiCalls"]) for i in listed] == [(mine, 4)]

    server.restart()  # stores the counts (at shutdown)
    alice = Api.login(server, "counted-a@example.com", "counted-password")
    assert instance_calls() == 5  # the same four, now stored, and this one
    stored = server.stored_events(topic="UsageRecorded")
    calls = [call for event in stored for call in event.calls]
    assert calls and {c["instanceId"] for c in calls} <= {None, mine}
    assert junk not in repr(stored)
    assert junk[:40].encode() not in server.stored_bytes()


def test_statistics_add_up_while_and_after_counts_are_stored(server: Server, admin: Api) -> None:
    """FLUSH_AT calls make the running server store its counts; statistics asked after that
    count each call once (not both as stored and as pending), and do not fail."""
    email = f"busy-{uuid.uuid4().hex[:8]}@example.com"
    admin.create_user(email, password="busy-password-1")
    busy = Api.login(server, email, "busy-password-1")
    saved = len(server.stored_events(topic="UsageRecorded"))
    for _ in range(FLUSH_AT):
        assert busy.http.get("/api/auth/me").status_code == 200
    wait_until(lambda: len(server.stored_events(topic="UsageRecorded")) > saved, timeout=30)
    for asked in (1, 2):
        answer = busy.http.get("/api/stats/user")
        assert answer.status_code == 200, answer.text
        assert answer.json()["total"]["apiCalls"] == FLUSH_AT + asked  # and this call


def test_a_long_id_is_refused_before_it_is_counted(server: Server, admin: Api) -> None:
    """The 60 KB id of the report never reaches the counters: 414 comes first."""
    answer = admin.http.get("/api/whatsapp/" + "z" * 60_000 + "/status")
    assert answer.status_code == 414
    assert httpx.get(server.url + "/health").status_code == 200
