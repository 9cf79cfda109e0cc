"""Security checks generated from the route table, and secrets kept secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.routing import Route

from app.config import Settings
from app.server import create_app
from tests.places import Storage
from tests.server import Api, Server, running_server

pytestmark = pytest.mark.drill_cases("security cases")

EXEMPT = {"/api/cloud/{instanceId}/webhook"}  # Meta's webhook: no credentials, proven by signature


def instance_routes() -> list[tuple[str, str]]:
    app = create_app(Settings())
    return sorted(
        (route.path, method)
        for route in app.routes
        if isinstance(route, Route) and "{instanceId}" in route.path and route.path not in EXEMPT
        for method in route.methods or ()
        if method != "HEAD"
    )


@pytest.fixture(scope="module")
def strangers(server: Server, admin: Api) -> tuple[Api, Api, str]:
    admin.create_user("owner@example.com", password="owner-password")
    admin.create_user("stranger@example.com", password="stranger-password")
    owner = Api.login(server, "owner@example.com", "owner-password")
    stranger = Api.login(server, "stranger@example.com", "stranger-password")
    instance = owner.create_instance("Mine")["id"]
    owner.pair(instance, "15550008001")
    return owner, stranger, instance


@pytest.mark.drill_cases("isolation cases (from the route table)")
@pytest.mark.parametrize(("path", "method"), instance_routes())
def test_no_instance_route_lets_a_stranger_in(
    strangers: tuple[Api, Api, str], path: str, method: str
) -> None:
    owner, stranger, instance = strangers
    url = (
        path.replace("{instanceId}", instance)
        .replace("{chatId}", "15550008002")
        .replace("{phone}", "15550008002")
        .replace("{phoneOrLid}", "15550008002")
        .replace("{messageId}", "SB0000")
        .replace("{groupId}", "120363000000000001")
    )
    # A body that would be invalid anyway: ownership is decided before the body is read.
    answer = stranger.http.request(
        method, url, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 404, (method, url, answer.text)
    assert answer.json()["code"] == "instance_not_found"
    assert owner.status(instance)["ready"]


def test_the_route_table_has_instance_routes() -> None:
    assert len(instance_routes()) >= 25


def test_secrets_are_never_stored_or_logged_in_plain_text(storage: Storage) -> None:
    with running_server(storage.root, storage) as server:
        admin = Api.login(server)
        created = admin.create_user("secret@example.com", password="a-very-secret-password")
        api_key = created["apiKey"]
        user = Api.login(server, "secret@example.com", "a-very-secret-password")
        instance = user.create_instance(
            "S", webhookUrl="http://127.0.0.1:9/x", webhookSecret="webhook-secret-value"
        )
        assert "webhook-secret-value" not in json.dumps(
            user.http.get(f"/api/instances/{instance['id']}").json()
        )
        assert user.http.get("/api/auth/me", headers={"x-api-key": api_key}).status_code == 200
        log = server.log_text()
        server.stop()
        data = server.stored_bytes()
        assert b"secret@example.com" in data  # what was stored is in what is searched
        for secret in ("a-very-secret-password", api_key):
            assert secret.encode() not in data, secret
            assert secret not in log
        instances = storage.rows("instances")
        assert instances and "webhook-secret-value" not in json.dumps(instances, default=str)


# The next two check settings, not storage: one SQLite server each is enough.


def test_media_urls_on_private_addresses_are_refused_when_not_allowed(tmp_path: Path) -> None:
    with running_server(tmp_path, WEBHOOK_ALLOW_PRIVATE="false") as server:
        api = Api.login(server)
        instance = api.create_instance("M")["id"]
        api.pair(instance, "15550008101")
        for url in (
            "http://127.0.0.1:9/a.png",
            "http://169.254.169.254/latest",
            "http://10.0.0.1/x.jpg",
        ):
            answer = api.http.post(
                f"/api/whatsapp/{instance}/send-media", json={"phone": "15550008102", "url": url}
            )
            assert answer.status_code == 400 and answer.json()["code"] == "url_not_allowed", url


def test_cors_follows_cors_origin(tmp_path: Path) -> None:
    with running_server(tmp_path, CORS_ORIGIN="https://app.example.com") as server:
        client = server.client()
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        allowed = client.options(
            "/api/auth/login", headers={"Origin": "https://app.example.com", **preflight}
        )
        assert allowed.headers.get("access-control-allow-origin") == "https://app.example.com"
        refused = client.options(
            "/api/auth/login", headers={"Origin": "https://evil.example.com", **preflight}
        )
        assert refused.headers.get("access-control-allow-origin") is None
