"""Attacks through the Cloud API settings and a whatsmeow proxy, on a real server.

`graphBaseUrl` and `proxy` make the server open connections where a user says, the
first with the instance's access token: they must not reach the server's own network
(unless WEBHOOK_ALLOW_PRIVATE), nor work as a port scanner, nor carry an internal
service's answers back to the user. Counted with the security cases of the drills.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fake_graph import PHONE_NUMBER_ID, TOKEN, FakeGraph, envelope, sign
from tests.local_http import LocalHttp, QuietHandler
from tests.server import Api, Server, wait_until

pytestmark = pytest.mark.drill_cases("security cases")

SECRET = "internal-db-password-hunter2"


class InternalService:
    """A service on the server's own network that answers with things nobody outside
    should read: a Graph-like phone number document on GET, and on POST an error whose
    shape depends on the recipient (a JSON error carrying the secret, an `error` that
    is a string, an HTML page)."""

    def __init__(self, broken_check: bool = False) -> None:
        self.hits: list[str] = []
        service = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                service.hits.append(self.path)
                if broken_check:
                    self._answer(500, json.dumps({"error": {"message": SECRET, "code": 100}}))
                else:
                    self._answer(200, json.dumps({"display_phone_number": "+1 555 0100"}))

            def do_POST(self) -> None:
                service.hits.append(self.path)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                shapes: dict[str, tuple[int, Any]] = {
                    "15550000001": (
                        400,
                        {
                            "error": {
                                "message": SECRET,
                                "type": SECRET,
                                "code": 131009,
                                "error_data": {"details": SECRET},
                                "fbtrace_id": "AbC_123-x",
                            }
                        },
                    ),
                    "15550000002": (400, {"error": SECRET}),
                    "15550000003": (502, f"<h1>{SECRET}</h1>"),
                    "15550000004": (
                        400,
                        {"error": {"code": SECRET, "fbtrace_id": f"{SECRET} at db01:5432"}},
                    ),
                }
                status, answer = shapes.get(body.get("to"), (500, SECRET))
                self._answer(status, answer if isinstance(answer, str) else json.dumps(answer))

            def _answer(self, status: int, text: str, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(text.encode())

        self.http = LocalHttp(Handler)
        self.url = self.http.url

    def close(self) -> None:
        self.http.close()


class Listener:
    """A bare TCP port that counts who connects to it (a port scan's target)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._open = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while self._open:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._open = False
        self.socket.close()


@pytest.fixture()
def internal() -> Iterator[InternalService]:
    service = InternalService()
    yield service
    service.close()


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    yield fake
    fake.close()


def cloud(url: str, **overrides: str) -> dict[str, str]:
    return {
        "phoneNumberId": PHONE_NUMBER_ID,
        "accessToken": TOKEN,
        "appSecret": "app-secret",
        "verifyToken": "verify",
        "graphBaseUrl": url,
        **overrides,
    }


def everything_shown(server: Server, admin: Api, instance_id: str) -> str:
    """What a user and the audit trail can read about an instance, as one text."""
    return "\n".join(
        [
            admin.http.get(f"/api/instances/{instance_id}").text,
            admin.http.get(f"/api/instances/{instance_id}/activity").text,
            admin.http.get(f"/api/instances/{instance_id}/events").text,
            repr([e.__dict__ for e in server.stored_events(instance_id)]),
        ]
    )


@pytest.mark.parametrize(
    "number", ["../../x?q=1#", "106540352242922/../../me", "1065 4035", "١٠٦٥٤٠", "", "1" * 33]
)
def test_a_phone_number_id_must_be_digits(admin: Api, graph: FakeGraph, number: str) -> None:
    before = len(graph.requests)
    answer = admin.http.post(
        "/api/instances",
        json={"name": "Escape", "engine": "cloud", "cloud": cloud(graph.url, phoneNumberId=number)},
    )
    assert answer.status_code == 400 and answer.json()["code"] == "validation_error", answer.text
    assert "phoneNumberId" in answer.json()["error"]
    assert len(graph.requests) == before  # nothing was called


def test_a_phone_number_id_cannot_escape_on_update_either(admin: Api, graph: FakeGraph) -> None:
    instance = admin.create_instance("Digits", engine="cloud", cloud=cloud(graph.url))
    wait_until(lambda: admin.status(instance["id"])["ready"])
    answer = admin.http.put(
        f"/api/instances/{instance['id']}",
        json={"cloud": cloud(graph.url, phoneNumberId="../../debug_token?x=")},
    )
    assert answer.status_code == 400 and answer.json()["code"] == "validation_error"
    assert not any("debug_token" in r["path"] for r in graph.requests)


@pytest.mark.parametrize(
    "token", ["EAAG\nX-Injected: 1", "EAAG\r\n", "EAAG token", "EAAG\x00", "ÉAAG"]
)
def test_an_access_token_that_cannot_be_a_bearer_token_is_refused_at_save(
    admin: Api, graph: FakeGraph, token: str
) -> None:
    """RFC 6750 §2.1: a bearer token is `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
    "/" ) *"="` (Meta's are `EAA…` letters and digits). Anything else could only break, or
    inject into, the Authorization header of every Graph call, so it is refused when saved."""
    before = len(graph.requests)
    answer = admin.http.post(
        "/api/instances",
        json={"name": "Header", "engine": "cloud", "cloud": cloud(graph.url, accessToken=token)},
    )
    assert answer.status_code == 400 and answer.json()["code"] == "validation_error", answer.text
    assert "accessToken" in answer.json()["error"]
    assert token not in answer.text  # a secret is not repeated back
    assert len(graph.requests) == before  # nothing was called


def test_an_internal_error_page_never_reaches_the_user_or_the_history(
    server: Server, admin: Api
) -> None:
    # The connection check gets an error that tells an internal secret: the instance is
    # disconnected with a reason of our own, and the secret is nowhere.
    service = InternalService(broken_check=True)
    try:
        instance = admin.create_instance("Leak", engine="cloud", cloud=cloud(service.url))
        wait_until(lambda: admin.status(instance["id"])["status"] == "disconnected", timeout=15)
        closed = wait_until(
            lambda: admin.http.get(
                f"/api/instances/{instance['id']}/activity",
                params={"actions": "connection_closed"},
            ).json()["logs"]
        )
        assert closed[0]["details"]["reason"] == (
            "cloud_rejected: The Graph API refused the request: Invalid parameter (code 100)"
        )
        assert SECRET not in everything_shown(server, admin, instance["id"])
    finally:
        service.close()


@pytest.mark.parametrize(
    ("to", "status", "code", "details"),
    [
        # A JSON error full of the secret: only its number and a well-formed trace id are kept.
        (
            "15550000001",
            400,
            "cloud_rejected",
            {
                "httpStatus": 400,
                "code": 131009,
                "title": "Parameter value is not valid",  # ours, for Meta's code
                "fbtraceId": "AbC_123-x",
            },
        ),
        # An `error` that is a string (a 500 today): a 400 that repeats none of it.
        ("15550000002", 400, "cloud_rejected", {"httpStatus": 400}),
        # An HTML error page from a gateway.
        ("15550000003", 503, "cloud_unavailable", {"httpStatus": 502}),
        # A code and trace id that are not what Meta sends are dropped.
        ("15550000004", 400, "cloud_rejected", {"httpStatus": 400}),
    ],
    ids=["json-error", "string-error", "html-page", "malformed-fields"],
)
def test_a_send_error_repeats_nothing_of_the_foreign_answer(
    server: Server,
    admin: Api,
    internal: InternalService,
    to: str,
    status: int,
    code: str,
    details: dict[str, Any],
) -> None:
    instance = admin.create_instance("Sender", engine="cloud", cloud=cloud(internal.url))
    wait_until(lambda: admin.status(instance["id"])["ready"], timeout=15)
    answer = admin.send(instance["id"], to, "hello")
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert answer.json()["details"] == details
    assert SECRET not in answer.text
    assert SECRET not in everything_shown(server, admin, instance["id"])


def test_graph_url_and_proxy_follow_the_address_policy(
    fresh_server: Server, graph: FakeGraph
) -> None:
    # An instance made while private addresses were allowed (development) ...
    admin = Api.login(fresh_server)
    made = admin.create_instance("Before", engine="cloud", cloud=cloud(graph.url))
    wait_until(lambda: admin.status(made["id"])["ready"])
    sandbox = admin.create_instance("Sandbox")

    # ... then the server runs in production, where they are not.
    fresh_server.stop()
    fresh_server.env.update(APP_ENV="production", WEBHOOK_ALLOW_PRIVATE="false")
    calls_before = len(graph.requests)
    fresh_server.start()
    admin = Api.login(fresh_server)
    wait_until(lambda: admin.status(made["id"])["status"] == "disconnected", timeout=15)
    assert len(graph.requests) == calls_before  # the stored URL was not called

    scanned = Listener()
    try:
        for url, refusal in [
            (f"http://127.0.0.1:{scanned.port}", "invalid_graph_url"),  # https in production
            (f"https://127.0.0.1:{scanned.port}", "graph_url_not_allowed"),
            (f"https://localhost:{scanned.port}", "graph_url_not_allowed"),
            (f"https://[::1]:{scanned.port}", "graph_url_not_allowed"),
            (f"https://0x7f000001:{scanned.port}", "graph_url_not_allowed"),
            ("https://169.254.169.254", "graph_url_not_allowed"),  # cloud metadata
            (f"https://user:pw@127.0.0.1:{scanned.port}", "invalid_graph_url"),
            ("https://graph.example?x=1", "invalid_graph_url"),
        ]:
            # The port scanner: a PUT per port, then read the activity log.
            answer = admin.http.put(f"/api/instances/{made['id']}", json={"cloud": cloud(url)})
            assert answer.status_code == 400, (url, answer.text)
            assert answer.json()["code"] == refusal, (url, answer.text)
            assert "127.0.0.1" not in answer.json()["error"]
            created = admin.http.post(
                "/api/instances", json={"name": "New", "engine": "cloud", "cloud": cloud(url)}
            )
            assert created.status_code == 400 and created.json()["code"] == refusal, url
        for proxy, refusal in [
            (f"socks5://127.0.0.1:{scanned.port}", "proxy_not_allowed"),
            (f"http://user:pw@10.0.0.1:{scanned.port}", "proxy_not_allowed"),
            ("socks5://[fe80::1]:1080", "proxy_not_allowed"),
            ("ftp://proxy.example:21", "invalid_proxy"),
            ("socks5://proxy.example", "invalid_proxy"),  # no port
        ]:
            changed = admin.http.put(f"/api/instances/{sandbox['id']}", json={"proxy": proxy})
            assert changed.status_code == 400, (proxy, changed.text)
            assert changed.json()["code"] == refusal, (proxy, changed.text)
            created = admin.http.post(
                "/api/instances", json={"name": "P", "engine": "whatsmeow", "proxy": proxy}
            )
            assert created.status_code == 400, (proxy, created.text)
            assert created.json()["code"] == refusal, (proxy, created.text)
        assert scanned.accepted == 0
    finally:
        scanned.close()
    assert len(graph.requests) == calls_before


# -- Meta's webhook: signed bodies that are not Meta's (issue: unhandled 500s) -------------

APP_SECRET = "app-secret"  # as cloud() sets it


@pytest.fixture(scope="module")
def meta_app(admin: Api, graph: FakeGraph) -> str:
    instance = admin.create_instance("Webhooks", engine="cloud", cloud=cloud(graph.url))
    wait_until(lambda: admin.status(instance["id"])["ready"], timeout=15)
    return instance["id"]


def deliver(server: Server, instance: str | None, body: dict[str, Any] | bytes) -> Any:
    raw, headers = sign(APP_SECRET, body)
    url = f"/api/cloud/{instance}/webhook" if instance else "/api/cloud/webhook"
    return server.client().post(url, content=raw, headers=headers)


def history(admin: Api, instance: str, chat: str) -> list[dict[str, Any]]:
    return admin.http.get(f"/api/instances/{instance}/chats/{chat}/messages").json()["messages"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"entry":[1]}',
        b'{"entry":"everything"}',
        b"[]",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"entry":[{"changes":[{"value":' * 3000 + b"{}" + b"}]}]" * 3000,
        b"\xff\xfe not json",
    ],
    ids=["entry-of-numbers", "entry-a-string", "a-list", "deep-lists", "deep-objects", "not-utf8"],
)
def test_a_signed_body_that_is_not_metas_envelope_is_400(
    server: Server, meta_app: str, body: bytes
) -> None:
    answer = deliver(server, meta_app, body)
    assert answer.status_code == 400, answer.text[:200]
    assert answer.json()["code"] == "invalid_webhook_body"


def test_odd_items_are_dropped_and_the_rest_recorded(
    server: Server, admin: Api, meta_app: str
) -> None:
    body = envelope(
        {
            "contacts": [1, {"wa_id": "15550008888", "profile": {"name": "Ok"}}],
            "messages": [
                "not an object",
                {"id": "wamid.ODD1"},  # no sender at all
                {
                    "from": "15550008888",
                    "id": "wamid.OK1",
                    "type": "text",
                    "text": {"body": "fine"},
                },
                {"from": "15550008888", "id": ["x"], "type": "text"},
            ],
            "statuses": [{"id": 5, "status": "read"}],
        }
    )
    answer = deliver(server, meta_app, body)
    assert answer.status_code == 200 and answer.json()["received"] == 1
    assert [m["content"] for m in history(admin, meta_app, "15550008888")] == ["fine"]


def test_a_signature_header_that_is_not_ascii_is_403(server: Server, meta_app: str) -> None:
    raw, _ = sign(APP_SECRET, envelope({}))
    answer = server.client().post(
        f"/api/cloud/{meta_app}/webhook",
        content=raw,
        headers={
            # Bytes as they come over the wire (httpx would not send this as text).
            "X-Hub-Signature-256": ("sha256=é" + "0" * 62).encode(),
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 403 and answer.json()["code"] == "invalid_signature"


def test_the_app_callback_needs_a_verify_token_or_signature_of_its_instances(
    server: Server, meta_app: str
) -> None:
    client = server.client()
    check = {"hub.mode": "subscribe", "hub.challenge": "x"}
    for token in ("guess", "", "verify" + "\u0301", None):
        params = check if token is None else {**check, "hub.verify_token": token}
        assert client.get("/api/cloud/webhook", params=params).status_code == 403
    assert (
        client.get("/api/cloud/webhook", params={**check, "hub.verify_token": "verify"}).text == "x"
    )
    body = envelope({"messages": [{"from": "15550001", "id": "wamid.X", "type": "text"}]})
    raw, headers = sign("not-the-app-secret", body)
    forged = client.post("/api/cloud/webhook", content=raw, headers=headers)
    assert forged.status_code == 403 and forged.json()["code"] == "invalid_signature"
    unsigned = client.post(
        "/api/cloud/webhook", content=raw, headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 403
    # Signed by the app, but for a number no instance of it has: dropped, not recorded.
    other = envelope(
        {"messages": [{"from": "15550001", "id": "wamid.Y", "type": "text"}]},
        phone_number_id="99999",
    )
    assert deliver(server, None, other).status_code == 403
    assert deliver(server, None, b'{"entry":[1]}').status_code == 400
