"""The per-request lookups kept in memory never outlive the events that change them.

Each case first makes the server answer (and so keep) the lookups a send asks, then
changes them with one request and checks the very next request sees the change.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import jwt
import pytest

from tests.server import Api, Server

_numbers = itertools.count(1)


@pytest.fixture()
def sender(
    server: Server, admin: Api, request: pytest.FixtureRequest
) -> Iterator[tuple[Api, Api, str, str]]:
    """A user with a connected instance that has just sent, by token and by API key."""
    email = f"cache-{request.node.name[5:40].replace('_', '-')}@example.com"
    user = admin.create_user(email, password="cache-password-1")
    signed_in = server.client().post(
        "/api/auth/login", json={"email": email, "password": "cache-password-1"}
    )
    by_token = Api(server, token=signed_in.json()["token"])
    by_key = Api(server, api_key=signed_in.json()["user"]["apiKey"])
    instance = by_token.create_instance("Cached")["id"]
    by_token.pair(instance, f"155534{next(_numbers):05d}")
    for api in (by_token, by_key):
        for _ in range(3):
            assert api.send(instance, "15553409999", "warm").status_code == 200
    yield by_token, by_key, instance, user["id"]


def test_a_deleted_instance_is_404_at_once(sender: tuple[Api, Api, str, str]) -> None:
    by_token, by_key, instance, _ = sender
    assert by_token.http.delete(f"/api/instances/{instance}").status_code in (200, 204)
    for api in (by_token, by_key):
        answer = api.send(instance, "15553409999", "after delete")
        assert answer.status_code == 404, answer.text
        assert api.http.get(f"/api/whatsapp/{instance}/status").status_code == 404


def test_a_deactivated_user_is_401_at_once(admin: Api, sender: tuple[Api, Api, str, str]) -> None:
    by_token, by_key, instance, user_id = sender
    assert admin.http.delete(f"/api/users/{user_id}").status_code in (200, 204)
    for api in (by_token, by_key):
        answer = api.send(instance, "15553409999", "after deactivation")
        assert answer.status_code == 401, answer.text


def test_a_rotated_key_is_401_at_once_and_the_new_one_works(
    sender: tuple[Api, Api, str, str],
) -> None:
    _, by_key, instance, _ = sender
    rotated = by_key.http.post("/api/auth/api-key", json={"currentPassword": "cache-password-1"})
    assert rotated.status_code == 200, rotated.text
    assert by_key.send(instance, "15553409999", "old key").status_code == 401
    renewed = Api(by_key.server, api_key=rotated.json()["apiKey"])
    assert renewed.send(instance, "15553409999", "new key").status_code == 200


def test_a_new_message_limit_applies_to_the_next_send(
    admin: Api, sender: tuple[Api, Api, str, str]
) -> None:
    by_token, _, instance, user_id = sender
    changed = admin.http.put(f"/api/users/{user_id}", json={"limits": {"maxMessagesPerDay": 1}})
    assert changed.status_code == 200, changed.text
    answer = by_token.send(instance, "15553409999", "over the limit")
    assert answer.status_code == 429, answer.text
    changed = admin.http.put(f"/api/users/{user_id}", json={"limits": {"maxMessagesPerDay": None}})
    assert changed.status_code == 200, changed.text
    assert by_token.send(instance, "15553409999", "no limit").status_code == 200


def test_a_new_role_applies_to_the_next_request(
    admin: Api, sender: tuple[Api, Api, str, str]
) -> None:
    by_token, _, _, user_id = sender
    assert by_token.http.get("/api/users").status_code == 403
    assert admin.http.put(f"/api/users/{user_id}", json={"role": "admin"}).status_code == 200
    assert by_token.http.get("/api/users").status_code == 200
    assert admin.http.put(f"/api/users/{user_id}", json={"role": "user"}).status_code == 200
    assert by_token.http.get("/api/users").status_code == 403


def test_a_token_that_worked_is_401_once_it_expires(server: Server, admin: Api) -> None:
    admin_id = admin.http.get("/api/auth/me").json()["id"]
    now = int(time.time())
    claims = {"sub": admin_id, "role": "admin", "iat": now, "exp": now + 2}
    token = jwt.encode(claims, server.env["JWT_SECRET"], algorithm="HS256")
    client = server.client(Authorization=f"Bearer {token}")
    assert client.get("/api/auth/me").status_code == 200  # verified, and kept
    while time.time() < now + 2.2:
        time.sleep(0.2)
    answer = client.get("/api/auth/me")
    assert answer.status_code == 401 and "expired" in answer.json()["error"].lower()
