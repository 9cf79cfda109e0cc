"""Secrets at rest and in views, against a real server: sealed before they are stored, data
files owner-only, and credentials inside URLs hidden wherever an address is shown.

Before: the Cloud API's access token, app secret and verify token and the webhook secrets
were stored in the clear in the event store, the data files were readable by every local
user, and a proxy's `user:password` or a webhook URL's `?token=` showed in instance views
and the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.instance import Instance
from tests.fake_graph import PHONE_NUMBER_ID, TOKEN, FakeGraph
from tests.receiver import Receiver
from tests.server import Api, Server, wait_until

pytestmark = pytest.mark.drill_cases("security cases")


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    yield fake
    fake.close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def cloud(graph: FakeGraph, app_secret: str, verify_token: str) -> dict[str, str]:
    return {
        "phoneNumberId": PHONE_NUMBER_ID,
        "accessToken": TOKEN,
        "appSecret": app_secret,
        "verifyToken": verify_token,
        "graphBaseUrl": graph.url,
    }


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def assert_secrets_work(
    server: Server,
    admin: Api,
    instance: str,
    app_secret: str,
    verify_token: str,
    receiver: Receiver,
    webhook_secret: str,
) -> None:
    """The secrets do their jobs: they were opened where they are used."""
    wait_until(lambda: admin.status(instance)["ready"], timeout=15)  # the access token
    url = f"/api/cloud/{instance}/webhook"
    challenge = server.client().get(
        url,
        params={"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": "42"},
    )
    assert challenge.status_code == 200 and challenge.text == "42"  # the verify token
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    signed = server.client().post(
        url,
        content=body,
        headers={
            "X-Hub-Signature-256": "sha256=" + signature(app_secret, body),
            "Content-Type": "application/json",
        },
    )
    assert signed.status_code == 200, signed.text  # the app secret
    # The webhook secret: a delivery (connection_opened, at least) signed with it.
    wait_until(
        lambda: any(
            r.headers.get("x-webhook-signature") == signature(webhook_secret, r.body)
            for r in receiver.received
        )
    )


def test_secrets_are_sealed_in_every_stored_byte(
    server: Server, admin: Api, graph: FakeGraph, receiver: Receiver
) -> None:
    mark = uuid.uuid4().hex
    app_secret, verify_token = f"app-secret-{mark}", f"verify-token-{mark}"
    webhook_secret, later_secret = f"webhook-secret-{mark}", f"webhook-later-{mark}"
    instance = admin.create_instance(
        "Sealed",
        engine="cloud",
        cloud=cloud(graph, app_secret, verify_token),
        webhookUrl=receiver.url,
        webhookSecret=webhook_secret,
    )["id"]
    assert_secrets_work(server, admin, instance, app_secret, verify_token, receiver, webhook_secret)
    # Changed secrets are sealed too.
    changed = admin.http.put(
        f"/api/instances/{instance}",
        json={
            "webhookSettings": {"secret": later_secret},
            "cloud": cloud(graph, app_secret + "-2", verify_token + "-2"),
        },
    )
    assert changed.status_code == 200, changed.text
    # A new connection after the change is answered: its connection_opened is signed anew.
    assert admin.http.post(f"/api/instances/{instance}/reconnect").status_code == 200
    assert_secrets_work(
        server, admin, instance, app_secret + "-2", verify_token + "-2", receiver, later_secret
    )

    stored = server.stored_bytes()  # the event store, read models and cursors, raw
    assert b"sealed:v1:" in stored
    for secret in (TOKEN, app_secret, verify_token, webhook_secret, later_secret):
        assert secret.encode() not in stored, secret


def test_an_event_store_from_before_sealing_still_opens(
    fresh_server: Server, graph: FakeGraph, receiver: Receiver
) -> None:
    """Events stored in the clear by an older version are used as they are."""
    admin = Api.login(fresh_server)
    admin_id = admin.http.get("/api/auth/me").json()["id"]
    fresh_server.stop()
    old = Instance(
        user_id=admin_id,
        name="From before sealing",
        description="",
        engine="cloud",
        webhook={"url": receiver.url, "enabled": True, "secret": "old-webhook-secret"},
        engine_settings=cloud(graph, "old-app-secret", "old-verify-token"),
    )
    with fresh_server.event_store() as store:
        store.save(old)

    fresh_server.start()
    admin = Api.login(fresh_server)
    assert_secrets_work(
        fresh_server,
        admin,
        str(old.id),
        "old-app-secret",
        "old-verify-token",
        receiver,
        "old-webhook-secret",
    )


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.mark.sqlite_only("the data files checked are SQLite's")
def test_data_files_and_directories_are_owner_only(fresh_server: Server) -> None:
    api = Api.login(fresh_server)
    instance = api.create_instance("Files")["id"]
    api.pair(instance, "15558701234")
    sent = api.http.post(
        f"/api/whatsapp/{instance}/send-file",
        files={"file": ("note.txt", b"an upload")},
        data={"phone": "15558701235"},
    )
    assert sent.status_code == 200, sent.text
    root = fresh_server.root
    owned = [root / "data", root / "uploads", root / "instances", root / "logs"]
    for directory in owned:
        assert mode(directory) == "0o700", directory
    files = [
        p
        for directory in owned
        for p in directory.iterdir()
        if p.is_file() and p.name != "server.log"
    ]
    assert any(p.name == "whatsapp-api.db" for p in files)
    assert any(p.name.endswith("note.txt") for p in files)  # the upload
    assert any(p.name == "combined.log" for p in files)
    assert {mode(p) for p in files} == {"0o600"}, {p.name: mode(p) for p in files}

    # What an older version left readable by others is made owner-only at the next start:
    # here the data and an engine's session files (as the whatsmeow engine keeps them).
    fresh_server.stop()
    session = root / "instances" / instance
    session.mkdir(exist_ok=True)
    (session / "session.db").write_bytes(b"a linked device's keys")
    for path, loose in ((root / "data", 0o755), (session, 0o755)):
        path.chmod(loose)
    for path in (root / "data" / "whatsapp-api.db", session / "session.db"):
        path.chmod(0o644)
    fresh_server.start()
    assert mode(root / "data") == "0o700"
    assert mode(root / "data" / "whatsapp-api.db") == "0o600"
    assert mode(session) == "0o700"
    assert mode(session / "session.db") == "0o600"


def test_credentials_inside_urls_are_hidden_wherever_an_address_is_shown(
    server: Server, admin: Api
) -> None:
    mark = uuid.uuid4().hex
    hook = f"http://127.0.0.1:9/hook?token=tok-{mark}&channel=ops"
    proxy = f"socks5://bob:pw-{mark}@127.0.0.1:1080"
    instance = admin.create_instance("Hidden", webhookUrl=hook, webhookEnabled=False, proxy=proxy)[
        "id"
    ]
    shown = admin.http.get(f"/api/instances/{instance}").json()
    assert shown["webhookUrl"] == "http://127.0.0.1:9/hook?token=***&channel=***"
    assert shown["engineSettings"]["proxy"] == "socks5://bob:***@127.0.0.1:1080"
    views = [
        admin.http.get(f"/api/instances/{instance}").text,
        admin.http.get("/api/instances").text,
        admin.http.get(f"/api/instances/{instance}/events").text,
        admin.http.get("/api/events", params={"limit": 1000}).text,
        admin.http.get(f"/api/instances/{instance}/activity").text,
    ]
    for text in views:
        assert mark not in text
    assert "token=***" in views[2] and "bob:***@" in views[2]  # the audit trail shows them hidden

    # A client that sends back what it was shown (read, change the name, write) changes
    # neither address.
    renamed = admin.http.put(
        f"/api/instances/{instance}",
        json={
            "name": "Renamed",
            "webhookUrl": shown["webhookUrl"],
            "proxy": "socks5://bob:***@127.0.0.1:1080",
        },
    )
    assert renamed.status_code == 200, renamed.text
    [update] = server.stored_events(instance, "Instance.Updated")
    assert update.changes == {"name": "Renamed"}
