"""Authentication, authorization and isolation, against a real server.

Every /api route refuses a caller without valid credentials (401), tokens cannot be forged,
expired, unsigned or tampered with, rotated and deleted credentials stop working at once,
admin routes answer 403 to users, and another user's instance is 404 on every route, decided
before the body is looked at.
"""

from __future__ import annotations

import base64
import importlib
import json
import pkgutil
import re
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from starlette.routing import Route

import app.routes
from tests.server import ADMIN_EMAIL, ADMIN_PASSWORD, Api, Server, wait_until

pytestmark = pytest.mark.drill_cases("security cases")

# Meta's webhook for cloud instances takes no API credentials: Meta proves itself with the
# verify token and the body's signature (SPEC section 3). It is checked separately below.
NO_CREDENTIALS_BY_DESIGN = {
    "/api/auth/login",
    "POST /api/auth/session",  # the console's sign-in (its GET and DELETE need the cookie)
    "/api/cloud/{instanceId}/webhook",
    "/api/cloud/webhook",  # the app-level callback, checked in tests/test_cloud_security.py
}


def api_routes() -> list[tuple[str, str]]:
    """(method, path) of every /api route, from the route lists of the app.routes modules."""
    found = set()
    for module_info in pkgutil.iter_modules(app.routes.__path__):
        module = importlib.import_module(f"app.routes.{module_info.name}")
        for route in getattr(module, "routes", []):
            if not isinstance(route, Route) or not route.path.startswith("/api/"):
                continue
            if route.path in NO_CREDENTIALS_BY_DESIGN:
                continue
            for method in route.methods or ():
                if method != "HEAD" and f"{method} {route.path}" not in NO_CREDENTIALS_BY_DESIGN:
                    found.add((method, route.path))
    return sorted(found)


ROUTES = api_routes()


def fill(path: str, value: str | None = None) -> str:
    """The path with every {param} replaced by a random UUID (or `value`)."""
    return re.sub(r"\{[^}]+\}", lambda _: value or str(uuid.uuid4()), path)


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert "Traceback" not in answer.text, answer.text
    assert answer.status_code == status, (
        answer.request.method,
        answer.request.url,
        answer.status_code,
        answer.text,
    )
    body = answer.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"].strip(), body
    return body


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def me(server: Server, **headers: str) -> httpx.Response:
    return server.client().get("/api/auth/me", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(server: Server, email: str, password: str) -> httpx.Response:
    return server.client().post("/api/auth/login", json={"email": email, "password": password})


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_id(admin: Api) -> str:
    return admin.http.get("/api/auth/me").json()["id"]


@pytest.fixture(scope="module")
def alice(server: Server, admin: Api) -> Api:
    admin.create_user("alice@example.com", password="alice-password", firstName="Alice")
    return Api.login(server, "alice@example.com", "alice-password")


@pytest.fixture(scope="module")
def bob(server: Server, admin: Api) -> Api:
    admin.create_user("bob@example.com", password="bob-password", firstName="Bob")
    return Api.login(server, "bob@example.com", "bob-password")


@pytest.fixture(scope="module")
def alices_instance(alice: Api) -> str:
    instance = alice.create_instance("Alice's phone")["id"]
    alice.pair(instance, "15550201001")
    return instance


# -- no credentials ----------------------------------------------------------------------------


def test_the_route_table_is_complete() -> None:
    paths = {path for _, path in ROUTES}
    assert len(ROUTES) >= 35, ROUTES
    for expected in (
        "/api/auth/me",
        "/api/users/{userId}",
        "/api/instances/{instanceId}",
        "/api/whatsapp/{instanceId}/send-file",
        "/api/whatsapp-simple/{instanceId}/send",
        "/api/sandbox/instances/{instanceId}/scan",
        "/api/stats/system",
        "/api/events",
    ):
        assert expected in paths, expected


BAD_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"x-api-key": "wa_not-a-real-key"},
    {"x-api-key": ""},
    {"Authorization": "Bearer not.a.jwt"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer null"},
    {
        "Authorization": "Basic "
        + base64.b64encode(f"{ADMIN_EMAIL}:{ADMIN_PASSWORD}".encode()).decode()
    },
    {"Authorization": "Token wa_anything"},
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_api_route_needs_credentials(
    server: Server, alices_instance: str, admin_id: str, method: str, path: str
) -> None:
    client = server.client()
    # A random id, and real ones (an existing instance or user must not change the answer).
    urls = {fill(path), fill(path, alices_instance if "{instanceId}" in path else admin_id)}
    for url in urls:
        for headers in BAD_CREDENTIALS:
            # A broken body too: credentials are checked before the body is read.
            answer = client.request(
                method,
                url,
                content=b"{broken",
                headers={**headers, "Content-Type": "application/json"},
            )
            assert_error(answer, 401, "unauthorized")


def test_metas_webhook_without_credentials_reveals_nothing(
    server: Server, alices_instance: str
) -> None:
    """The one credential-free instance route only answers for cloud instances."""
    client = server.client()
    for instance in (alices_instance, str(uuid.uuid4()), "not-a-uuid"):
        url = f"/api/cloud/{instance}/webhook"
        assert_error(
            client.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "x"}),
            404,
            "instance_not_found",
        )
        assert_error(client.post(url, json={"entry": []}), 404, "instance_not_found")


# -- tokens ------------------------------------------------------------------------------------


def claims_for(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user_id, "role": "admin", "iat": now, "exp": now + 3600, **changes}


def test_a_token_signed_with_the_servers_secret_works(server: Server, admin_id: str) -> None:
    """The control for the forgeries below: the secret and claims are the right ones."""
    token = jwt.encode(claims_for(admin_id), server.env["JWT_SECRET"], algorithm="HS256")
    answer = me(server, **bearer(token))
    assert answer.status_code == 200 and answer.json()["id"] == admin_id


def test_a_token_signed_with_another_secret_is_401(server: Server, admin_id: str) -> None:
    for secret in (
        "wrong-secret-" + "y" * 40,
        server.env["JWT_SECRET"] + "x",
        server.env["JWT_SECRET"][:-1],
    ):
        token = jwt.encode(claims_for(admin_id), secret, algorithm="HS256")
        assert_error(me(server, **bearer(token)), 401, "unauthorized")


def test_an_expired_token_is_401(server: Server, admin_id: str) -> None:
    now = int(time.time())
    token = jwt.encode(
        claims_for(admin_id, iat=now - 7200, exp=now - 60),
        server.env["JWT_SECRET"],
        algorithm="HS256",
    )
    body = assert_error(me(server, **bearer(token)), 401, "unauthorized")
    assert "expired" in body["error"].lower()
    assert_error(server.client().get("/api/instances", headers=bearer(token)), 401, "unauthorized")


def test_tokens_without_expiry_or_subject_are_401(server: Server, admin_id: str) -> None:
    secret = server.env["JWT_SECRET"]
    no_exp = claims_for(admin_id)
    del no_exp["exp"]
    no_sub = claims_for(admin_id)
    del no_sub["sub"]
    for claims in (no_exp, no_sub, claims_for(str(uuid.uuid4())), claims_for(admin_id, sub=12345)):
        token = jwt.encode(claims, secret, algorithm="HS256")
        assert_error(me(server, **bearer(token)), 401, "unauthorized")


def test_an_unsigned_alg_none_token_is_401(server: Server, admin: Api, admin_id: str) -> None:
    real = admin.http.headers["Authorization"].split(" ", 1)[1]
    signature = real.split(".")[2]
    payload = b64(claims_for(admin_id))
    for alg in ("none", "None", "NONE"):
        header = b64({"alg": alg, "typ": "JWT"})
        for token in (
            f"{header}.{payload}.",
            f"{header}.{payload}",
            f"{header}.{payload}.{signature}",
        ):
            assert_error(me(server, **bearer(token)), 401, "unauthorized")


def test_a_tampered_token_is_401(server: Server, alice: Api, admin_id: str) -> None:
    token = alice.http.headers["Authorization"].split(" ", 1)[1]
    assert me(server, **bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    claims = unb64(payload)
    alice_id = claims["sub"]
    for changed in (
        {**claims, "role": "admin"},
        {**claims, "sub": admin_id},
        {**claims, "exp": claims["exp"] + 86400},
    ):
        forged = f"{header}.{b64(changed)}.{signature}"
        assert_error(me(server, **bearer(forged)), 401, "unauthorized")
        assert_error(server.client().get("/api/users", headers=bearer(forged)), 401, "unauthorized")
    # A flipped signature character is refused too.
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert_error(me(server, **bearer(f"{header}.{payload}.{flipped}")), 401, "unauthorized")
    assert me(server, **bearer(token)).json()["id"] == alice_id


def test_a_bad_api_key_beside_a_good_token_is_401(server: Server, alice: Api) -> None:
    token = alice.http.headers["Authorization"].split(" ", 1)[1]
    assert_error(me(server, **bearer(token), **{"x-api-key": "wa_wrong"}), 401, "unauthorized")


# -- API keys and deleted users ----------------------------------------------------------------


def test_a_rotated_api_key_stops_working_at_once(server: Server, admin: Api) -> None:
    admin.create_user("rotate@example.com", password="rotate-password")
    signed_in = login(server, "rotate@example.com", "rotate-password").json()
    old_key, token = signed_in["user"]["apiKey"], signed_in["token"]
    assert me(server, **{"x-api-key": old_key}).status_code == 200
    rotated = server.client().post(
        "/api/auth/api-key",
        headers={"x-api-key": old_key},
        json={"currentPassword": "rotate-password"},
    )
    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()["apiKey"]
    assert new_key and new_key != old_key
    assert_error(me(server, **{"x-api-key": old_key}), 401, "unauthorized")
    assert_error(
        server.client().get("/api/instances", headers={"x-api-key": old_key}), 401, "unauthorized"
    )
    answer = me(server, **{"x-api-key": new_key})
    assert answer.status_code == 200 and answer.json()["email"] == "rotate@example.com"
    # Sign-in hands back the new key; the token still works.
    assert (
        login(server, "rotate@example.com", "rotate-password").json()["user"]["apiKey"] == new_key
    )
    assert me(server, **bearer(token)).status_code == 200
    # The old key cannot rotate again either.
    assert_error(
        server.client().post(
            "/api/auth/api-key",
            headers={"x-api-key": old_key},
            json={"currentPassword": "rotate-password"},
        ),
        401,
        "unauthorized",
    )


def test_a_deleted_users_key_and_token_are_401(server: Server, admin: Api) -> None:
    created = admin.create_user("leaving@example.com", password="leaving-password")
    user_id, key = created["id"], created["apiKey"]
    token = login(server, "leaving@example.com", "leaving-password").json()["token"]
    for headers in ({"x-api-key": key}, bearer(token)):
        assert me(server, **headers).status_code == 200
    instance = Api(server, token=token).create_instance("Leaving")["id"]

    deleted = admin.http.delete(f"/api/users/{user_id}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True

    for headers in ({"x-api-key": key}, bearer(token)):
        assert_error(me(server, **headers), 401, "unauthorized")
        assert_error(
            server.client().get(f"/api/instances/{instance}", headers=headers), 401, "unauthorized"
        )
        assert_error(
            server.client().post("/api/auth/api-key", headers=headers), 401, "unauthorized"
        )
        assert_error(
            server.client().post(
                f"/api/whatsapp/{instance}/send",
                headers=headers,
                json={"phone": "15550201099", "message": "still here?"},
            ),
            401,
            "unauthorized",
        )
    assert_error(login(server, "leaving@example.com", "leaving-password"), 401, "unauthorized")
    assert_error(admin.http.get(f"/api/users/{user_id}"), 404, "user_not_found")


# -- admin only --------------------------------------------------------------------------------


def test_users_routes_are_403_for_non_admins(
    server: Server, admin: Api, alice: Api, admin_id: str
) -> None:
    other = admin.create_user("bystander@example.com", firstName="By")["id"]
    alice_id = alice.http.get("/api/auth/me").json()["id"]
    key = login(server, "alice@example.com", "alice-password").json()["user"]["apiKey"]
    for caller in (alice.http, server.client(**{"x-api-key": key})):
        assert_error(caller.get("/api/users"), 403, "forbidden")
        assert_error(
            caller.post(
                "/api/users", json={"email": "sneaky@example.com", "password": "sneaky-password"}
            ),
            403,
            "forbidden",
        )
        assert_error(
            caller.post(
                "/api/users", content=b"{broken", headers={"Content-Type": "application/json"}
            ),
            403,
            "forbidden",
        )
        for target in (admin_id, other, alice_id, str(uuid.uuid4()), "not-a-uuid"):
            assert_error(caller.get(f"/api/users/{target}"), 403, "forbidden")
            assert_error(
                caller.put(f"/api/users/{target}", json={"role": "admin", "firstName": "Mallory"}),
                403,
                "forbidden",
            )
            assert_error(caller.delete(f"/api/users/{target}"), 403, "forbidden")
        assert_error(caller.get("/api/stats/system"), 403, "forbidden")
        assert_error(caller.get("/api/events"), 403, "forbidden")
    # Nothing changed.
    users = {u["email"]: u for u in admin.http.get("/api/users").json()["users"]}
    assert "sneaky@example.com" not in users
    assert (
        users["alice@example.com"]["role"] == "user"
        and users["alice@example.com"]["firstName"] == "Alice"
    )
    assert (
        users["bystander@example.com"]["active"]
        and users["bystander@example.com"]["firstName"] == "By"
    )
    assert users[ADMIN_EMAIL]["role"] == "admin" and users[ADMIN_EMAIL]["active"]
    assert alice.http.get("/api/auth/me").json()["role"] == "user"


# -- isolation between users ----------------------------------------------------------------------


def strangers_requests(instance: str, valid: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, request kwargs) for every instance operation; bodies valid or broken."""
    broken = {"content": b"{broken", "headers": {"Content-Type": "application/json"}}

    def body(good: dict[str, Any]) -> dict[str, Any]:
        return {"json": good} if valid else broken

    file_upload = (
        {
            "data": {"phone": "15550201002", "caption": "hi"},
            "files": {"file": ("a.txt", b"hello", "text/plain")},
        }
        if valid
        else {"content": b"not multipart", "headers": {"Content-Type": "text/plain"}}
    )
    return [
        ("GET", f"/api/instances/{instance}", {}),
        (
            "PUT",
            f"/api/instances/{instance}",
            body({"name": "hijacked", "webhookUrl": "http://127.0.0.1:9/steal"}),
        ),
        ("DELETE", f"/api/instances/{instance}", {}),
        ("POST", f"/api/instances/{instance}/reconnect", {}),
        ("POST", f"/api/instances/{instance}/logout", {}),
        ("GET", f"/api/instances/{instance}/qr", {"params": {"format": "svg" if valid else "gif"}}),
        ("GET", f"/api/instances/{instance}/activity", {}),
        ("GET", f"/api/instances/{instance}/events", {}),
        ("GET", f"/api/instances/{instance}/chats/15550201002/messages", {}),
        ("GET", f"/api/stats/instances/{instance}", {}),
        ("GET", f"/api/whatsapp/{instance}/status", {}),
        ("GET", f"/api/whatsapp/{instance}/qr", {}),
        (
            "POST",
            f"/api/whatsapp/{instance}/send",
            body({"phone": "15550201002", "message": "from a stranger"}),
        ),
        (
            "POST",
            f"/api/whatsapp/{instance}/send-media",
            body({"phone": "15550201002", "url": "http://127.0.0.1:9/x.png"}),
        ),
        ("POST", f"/api/whatsapp/{instance}/send-file", file_upload),
        ("GET", f"/api/whatsapp/{instance}/contacts", {}),
        ("POST", f"/api/whatsapp/{instance}/logout", {}),
        (
            "GET",
            f"/api/whatsapp-simple/{instance}/send",
            {"params": {"phone": "15550201002" if valid else "x", "message": "from a stranger"}},
        ),
        (
            "POST",
            f"/api/whatsapp-simple/{instance}/send",
            body({"phone": "15550201002", "message": "from a stranger"}),
        ),
        ("POST", f"/api/sandbox/instances/{instance}/scan", body({"phone": "15550201003"})),
        (
            "POST",
            f"/api/sandbox/instances/{instance}/inbound",
            body({"from": "15550201004", "message": "spoof"}),
        ),
        ("POST", f"/api/sandbox/instances/{instance}/drop", {}),
    ]


@pytest.mark.parametrize("valid", [True, False], ids=["valid-bodies", "broken-bodies"])
def test_another_users_instance_is_404_everywhere(
    alice: Api, bob: Api, alices_instance: str, valid: bool
) -> None:
    for method, url, kwargs in strangers_requests(alices_instance, valid):
        # The 404 comes first: a stranger never sees a 400 for a broken body.
        assert_error(bob.http.request(method, url, **kwargs), 404, "instance_not_found")
    assert alices_instance not in [
        i["id"] for i in bob.http.get("/api/instances").json()["instances"]
    ]

    # Alice's instance is untouched and still works.
    status = alice.status(alices_instance)
    assert status["ready"] is True and status["status"] == "connected"
    instance = alice.http.get(f"/api/instances/{alices_instance}").json()
    assert instance["name"] == "Alice's phone" and instance["webhookUrl"] is None
    assert instance["phone"] == "15550201001"
    sent = alice.send(alices_instance, "15550201002", "still mine")
    assert sent.status_code == 200 and sent.json()["id"], sent.text
    messages = wait_until(
        lambda: alice.http.get(
            f"/api/instances/{alices_instance}/chats/15550201002/messages"
        ).json()["messages"]
    )
    assert [m["content"] for m in messages if m["fromMe"]].count("from a stranger") == 0
    assert all(m["content"] != "spoof" for m in messages)
    activity = alice.http.get(f"/api/instances/{alices_instance}/activity").json()["logs"]
    assert not any("logout" in (log["action"] or "").lower() for log in activity), activity


def test_a_stranger_cannot_reach_an_instance_through_his_own_id_space(
    alice: Api, bob: Api, alices_instance: str
) -> None:
    """Bob's own instance works for Bob; the same routes with Alice's id stay 404."""
    mine = bob.create_instance("Bob's phone")["id"]
    assert bob.status(mine)["ready"] is False
    assert_error(bob.http.get(f"/api/whatsapp/{alices_instance}/status"), 404, "instance_not_found")
    assert_error(alice.http.get(f"/api/whatsapp/{mine}/status"), 404, "instance_not_found")
    assert_error(alice.http.delete(f"/api/instances/{mine}"), 404, "instance_not_found")
    assert bob.http.get(f"/api/instances/{mine}").status_code == 200


# -- sign-in, me, password -----------------------------------------------------------------------


def test_login_with_a_wrong_password_or_unknown_email_is_401(server: Server, alice: Api) -> None:
    wrong = assert_error(
        login(server, "alice@example.com", "not-alices-password"), 401, "unauthorized"
    )
    unknown = assert_error(
        login(server, "nobody@example.com", "whatever-password"), 401, "unauthorized"
    )
    assert wrong["error"] == unknown["error"]  # no hint about which accounts exist
    assert "token" not in wrong and "token" not in unknown


def test_login_returns_a_token_and_the_user_with_an_api_key(server: Server, alice: Api) -> None:
    answer = login(server, "alice@example.com", "alice-password")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    user = body["user"]
    assert {"id", "email", "firstName", "lastName", "apiKey"} <= set(user)
    assert user["email"] == "alice@example.com" and user["firstName"] == "Alice"
    assert "password" not in json.dumps(body).lower().replace("alice-password", "")
    assert "alice-password" not in answer.text
    claims = unb64(body["token"].split(".")[1])
    assert claims["sub"] == user["id"] and claims["exp"] > time.time()

    by_token = me(server, **bearer(body["token"]))
    by_key = me(server, **{"x-api-key": user["apiKey"]})
    for answer in (by_token, by_key):
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "id": user["id"],
            "email": "alice@example.com",
            "firstName": "Alice",
            "lastName": "",
            "role": "user",
        }


def test_change_password(server: Server, admin: Api) -> None:
    admin.create_user("changer@example.com", password="first-password")
    api = Api.login(server, "changer@example.com", "first-password")
    wrong = api.http.post(
        "/api/auth/password",
        json={"currentPassword": "not-the-password", "newPassword": "second-password"},
    )
    assert_error(wrong, 400, "wrong_password")
    assert login(server, "changer@example.com", "first-password").status_code == 200  # unchanged

    changed = api.http.post(
        "/api/auth/password",
        json={"currentPassword": "first-password", "newPassword": "second-password"},
    )
    assert changed.status_code == 200 and changed.json()["success"] is True, changed.text
    assert login(server, "changer@example.com", "second-password").status_code == 200
    assert_error(login(server, "changer@example.com", "first-password"), 401, "unauthorized")


# -- user administration ----------------------------------------------------------------------------


def test_admin_user_crud(server: Server, admin: Api, admin_id: str) -> None:
    created = admin.http.post(
        "/api/users",
        json={
            "email": "crud@example.com",
            "password": "crud-password",
            "firstName": "Cru",
            "lastName": "D",
        },
    )
    assert created.status_code == 201, created.text
    user = created.json()
    user_id = user["id"]
    assert user["email"] == "crud@example.com" and user["role"] == "user" and user["active"] is True
    assert user["apiKey"] and "crud-password" not in created.text
    assert not {"password", "passwordHash", "apiKeyHash"} & set(user)
    assert me(server, **{"x-api-key": user["apiKey"]}).json()["id"] == user_id

    for email in ("crud@example.com", "CRUD@Example.com"):
        duplicate = admin.http.post(
            "/api/users", json={"email": email, "password": "other-password"}
        )
        assert_error(duplicate, 409, "email_taken")
    assert (
        login(server, "crud@example.com", "crud-password").status_code == 200
    )  # the first one stands

    got = admin.http.get(f"/api/users/{user_id}")
    assert got.status_code == 200 and got.json()["email"] == "crud@example.com"
    assert "apiKey" not in got.json()

    changed = admin.http.put(
        f"/api/users/{user_id}", json={"firstName": "New", "lastName": "Name", "role": "admin"}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["firstName"], changed.json()["lastName"], changed.json()["role"]) == (
        "New",
        "Name",
        "admin",
    )
    got = admin.http.get(f"/api/users/{user_id}").json()
    assert (got["firstName"], got["lastName"], got["role"]) == ("New", "Name", "admin")
    listed = {u["id"]: u for u in admin.http.get("/api/users").json()["users"]}
    assert listed[user_id]["firstName"] == "New" and listed[user_id]["role"] == "admin"
    # The new role takes effect at once, and can be taken back.
    promoted = server.client(**{"x-api-key": user["apiKey"]})
    assert promoted.get("/api/users").status_code == 200
    assert admin.http.put(f"/api/users/{user_id}", json={"role": "user"}).json()["role"] == "user"
    assert_error(promoted.get("/api/users"), 403, "forbidden")

    assert_error(admin.http.delete(f"/api/users/{admin_id}"), 400, "cannot_delete_self")
    deleted = admin.http.delete(f"/api/users/{user_id}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert_error(admin.http.get(f"/api/users/{user_id}"), 404, "user_not_found")
    assert_error(
        admin.http.put(f"/api/users/{user_id}", json={"firstName": "Ghost"}), 404, "user_not_found"
    )
    assert_error(admin.http.delete(f"/api/users/{user_id}"), 404, "user_not_found")
    remaining = {u["id"]: u for u in admin.http.get("/api/users").json()["users"]}
    assert user_id not in remaining or remaining[user_id]["active"] is False
    assert_error(promoted.get("/api/auth/me"), 401, "unauthorized")
