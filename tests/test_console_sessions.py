"""Console sessions (app/sessions.py) as an attacker would try them: the cookie's attributes,
CSRF, a cookie passed off as a token and a token as a cookie, replay after sign-out, a
planted cookie, a deactivated user, a password change; and API clients left as they were."""

from __future__ import annotations

import httpx
import pytest

from tests.server import ADMIN_EMAIL, ADMIN_PASSWORD, Api, Server, wait_until

pytestmark = [
    pytest.mark.sqlite_only("sessions live in the event store, the same on both providers"),
    pytest.mark.drill_cases("security cases"),
]

USER = "session-user@example.com"
PASSWORD = "session-password-1"


def signed_in(
    server: Server, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD
) -> tuple[httpx.Client, str]:
    """A client holding a console session cookie, and the session's CSRF token."""
    client = server.client()
    answer = client.post("/api/auth/session", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return client, answer.json()["csrfToken"]


def test_the_cookie_is_http_only_same_site_strict_and_scoped_to_the_api(server: Server) -> None:
    answer = server.client().post(
        "/api/auth/session", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("wa_session=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/api" in cookie.lower()
    assert "secure" not in attributes  # plain http here; https requests get Secure
    body = answer.json()
    assert set(body) == {"user", "csrfToken", "expiresAt"}  # no token, no API key
    assert body["user"]["email"] == ADMIN_EMAIL


def test_a_change_needs_the_csrf_token_a_read_does_not(server: Server) -> None:
    client, csrf = signed_in(server)
    assert client.get("/api/instances").status_code == 200
    assert client.get("/api/auth/session").json()["csrfToken"] == csrf
    body = {"name": "csrf", "engine": "sandbox"}
    missing = client.post("/api/instances", json=body)
    assert missing.status_code == 403 and missing.json()["code"] == "csrf_token_invalid"
    flipped = csrf[:-1] + ("1" if csrf[-1] == "0" else "0")
    wrong = client.post("/api/instances", json=body, headers={"x-csrf-token": flipped})
    assert wrong.status_code == 403
    _, other_csrf = signed_in(server)
    assert other_csrf != csrf
    borrowed = client.post("/api/instances", json=body, headers={"x-csrf-token": other_csrf})
    assert borrowed.status_code == 403  # a token is good for its own session only
    made = client.post("/api/instances", json=body, headers={"x-csrf-token": csrf})
    assert made.status_code == 201, made.text
    assert client.get("/api/instances").json()["instances"]


def test_a_cookie_is_no_token_and_a_token_is_no_cookie(server: Server) -> None:
    client, _ = signed_in(server)
    cookie = client.cookies["wa_session"]
    as_bearer = server.client(Authorization=f"Bearer {cookie}").get("/api/auth/me")
    assert as_bearer.status_code == 401
    token = Api.login(server).http.headers["authorization"].split()[1]
    as_cookie = server.client(cookie=f"wa_session={token}").get("/api/auth/me")
    assert as_cookie.status_code == 401
    forged = server.client(cookie=f"wa_session={cookie[:-2]}xx").get("/api/auth/me")
    assert forged.status_code == 401


def test_a_cookie_copied_before_sign_out_is_refused_after(server: Server) -> None:
    kept = signed_in(server)[0].cookies["wa_session"]  # another session, not signed out
    client, csrf = signed_in(server)
    copy = f"wa_session={client.cookies['wa_session']}"
    out = client.delete("/api/auth/session", headers={"x-csrf-token": csrf})
    assert out.status_code == 200
    assert (
        'wa_session=""' in out.headers["set-cookie"]
        and "max-age=0" in out.headers["set-cookie"].lower()
    )
    replayed = server.client(cookie=copy).get("/api/auth/me")
    assert replayed.status_code == 401 and "ended" in replayed.json()["error"]
    # The sign-out is stored: the audit trail has it, and a server that did not see it
    # happen (here: the same one after a restart) refuses the cookie too.
    ended = server.stored_events(topic="domain.session:Session.Ended")
    assert [e.reason for e in ended][-1] == "signed_out"
    server.restart()
    assert server.client(cookie=copy).get("/api/auth/me").status_code == 401
    assert server.client(cookie=f"wa_session={kept}").get("/api/auth/me").status_code == 200


def test_a_planted_cookie_is_never_adopted(server: Server) -> None:
    attacker, _ = signed_in(server)
    planted = attacker.cookies["wa_session"]
    victim = server.client(cookie=f"wa_session={planted}")
    answer = victim.post(
        "/api/auth/session", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    issued = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert issued != planted  # a new session at every sign-in


def test_a_deactivated_user_and_a_changed_password_end_sessions(server: Server, admin: Api) -> None:
    made = admin.create_user(USER, password=PASSWORD)
    client, csrf = signed_in(server, USER, PASSWORD)
    old = f"wa_session={client.cookies['wa_session']}"
    # This console changes the password: it stays signed in under a new session.
    changed = client.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "session-password-2"},
        headers={"x-csrf-token": csrf},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["csrfToken"] != csrf
    assert client.get("/api/auth/me").status_code == 200
    assert server.client(cookie=old).get("/api/auth/me").status_code == 401
    # Deactivated: the session stops at once.
    assert admin.http.delete(f"/api/users/{made['id']}").status_code == 200
    assert client.get("/api/auth/me").status_code == 401


def test_a_password_changed_elsewhere_ends_every_console_session(
    server: Server, admin: Api
) -> None:
    """Changed through the API with a token, or reset by an administrator: a console
    signed in before either is refused after it (the session carries the password's
    generation, as tokens do)."""
    email, password = "elsewhere@example.com", "elsewhere-password-1"
    made = admin.create_user(email, password=password)
    console, _ = signed_in(server, email, password)
    api = Api.login(server, email, password)
    changed = api.http.post(
        "/api/auth/password",
        json={"currentPassword": password, "newPassword": "elsewhere-password-2"},
    )
    assert changed.status_code == 200, changed.text
    assert api.http.get("/api/auth/me").status_code == 401  # the old token too
    refused = console.get("/api/auth/me")
    assert refused.status_code == 401 and "password has changed" in refused.json()["error"]
    # A console signed in after the change works, until an administrator resets it.
    console, _ = signed_in(server, email, "elsewhere-password-2")
    assert console.get("/api/auth/me").status_code == 200
    reset = admin.http.put(f"/api/users/{made['id']}", json={"password": "elsewhere-password-3"})
    assert reset.status_code == 200, reset.text
    assert console.get("/api/auth/me").status_code == 401


def test_api_clients_are_unaffected(server: Server) -> None:
    api = Api.login(server)
    junk = {"cookie": "wa_session=junk"}
    # A bearer token or an API key decides alone; no CSRF token is asked of them.
    assert api.http.get("/api/auth/me", headers=junk).status_code == 200
    made = api.http.post(
        "/api/instances", json={"name": "bearer", "engine": "sandbox"}, headers=junk
    )
    assert made.status_code == 201
    key = (
        server.client()
        .post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        .json()["user"]["apiKey"]
    )
    keyed = server.client(**{"x-api-key": key}).post(
        "/api/instances", json={"name": "keyed", "engine": "sandbox"}
    )
    assert keyed.status_code == 201
    # A console session can only be ended by the console.
    assert api.http.delete("/api/auth/session").json()["code"] == "no_session"


def test_a_sign_in_is_json_and_never_a_form(server: Server) -> None:
    """Login CSRF: another site's form can post form fields or text/plain, and text/plain can
    spell JSON; none of them signs a browser in (tests/test_ui.py tries it from a real page)."""
    credentials = f'{{"email":"{ADMIN_EMAIL}","password":"{ADMIN_PASSWORD}"}}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = server.client().post(
            "/api/auth/session", content=credentials, headers={"content-type": content_type}
        )
        assert answer.status_code == 415 and answer.json()["code"] == "json_required"
        assert "set-cookie" not in answer.headers
    assert server.client().post("/api/auth/session", content=credentials).status_code == 415
    json = {"content-type": "application/json; charset=utf-8"}
    answer = server.client().post("/api/auth/session", content=credentials, headers=json)
    assert answer.status_code == 200 and "set-cookie" in answer.headers


def test_a_session_sends_by_post_with_its_token_and_never_by_link(
    server: Server, admin: Api
) -> None:
    """The simple send answers GET for low-code tools; a link or an image that a browser
    follows with its session cookie (and no CSRF token) sends nothing."""
    instance = admin.create_instance("simple send")["id"]
    admin.pair(instance, "15550007001")
    path = f"/api/whatsapp-simple/{instance}/send"
    link = f"{path}?phone=15550007002&message=by+link"
    client, csrf = signed_in(server)
    refused = client.get(link)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_token_invalid"
    assert client.head(link).status_code == 403
    form = {"phone": "15550007002", "message": "by form"}
    assert client.post(path, data=form).status_code == 403
    assert client.post(path, data=form, headers={"x-csrf-token": csrf}).status_code == 200
    # An API client keeps its GET.
    assert admin.http.get(link).status_code == 200

    def texts() -> list[str]:
        chat = admin.http.get(f"/api/instances/{instance}/chats/15550007002/messages")
        return sorted(m["content"] for m in chat.json()["messages"])

    assert wait_until(lambda: texts() == ["by form", "by link"])
