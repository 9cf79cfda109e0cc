"""Bad input on every route group answers a clear 4xx in the error shape: never a 500, never a traceback.

Each answer is checked for its status, its machine `code`, a non-empty human `error`, and the
absence of a Python traceback. Uploads and downloads run on a server of their own with a tiny
MAX_FILE_SIZE, so that "too large" is cheap to reach.
"""

from __future__ import annotations

import json
import re
import struct
import uuid
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.media_host import MediaHost
from tests.places import place
from tests.server import Api, Server, running_server, wait_until

pytestmark = pytest.mark.drill_cases("bad input cases")

MIB = 1024 * 1024
OVER_A_MIB = b'{"pad": "' + b"x" * (MIB + 10) + b'"}'
JSON = {"Content-Type": "application/json"}


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is `status` with the documented error shape and machine `code`."""
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
    if code == "validation_error":  # says which field and what is wrong with it
        assert set(body["details"]) == {"field", "problem"} and body["details"]["problem"], body
    # One id per request, in the answer and in the server's log line about it.
    assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["x-request-id"]), answer.headers
    return body


def post_raw(api: Api, url: str, content: bytes, **headers: str) -> httpx.Response:
    return api.http.post(url, content=content, headers={**JSON, **headers})


def png_bytes() -> bytes:
    """A valid 1x1 PNG, built by hand (about 70 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


# -- shared state on the module's server ---------------------------------------------


@pytest.fixture(scope="module")
def user(server: Server, admin: Api) -> Api:
    admin.create_user("bad-input@example.com", password="bad-input-password")
    return Api.login(server, "bad-input@example.com", "bad-input-password")


@pytest.fixture(scope="module")
def paired(user: Api) -> str:
    instance = user.create_instance("Paired")["id"]
    user.pair(instance, "15550101001")
    return instance


@pytest.fixture(scope="module")
def unpaired(user: Api) -> str:
    """An instance that shows a QR code and was never scanned."""
    instance = user.create_instance("Unpaired")["id"]
    user.wait_for_qr(instance)
    return instance


# -- auth -----------------------------------------------------------------------------


def test_login_refuses_malformed_empty_unknown_wrong_and_long(server: Server) -> None:
    client = server.client()
    url = "/api/auth/login"
    assert_error(
        client.post(url, content=b'{"email": "a@b.c", "password": ', headers=JSON),
        400,
        "invalid_json",
    )
    assert_error(client.post(url, content=b"", headers=JSON), 400, "invalid_body")
    assert_error(client.post(url, content=b"   \n", headers=JSON), 400, "invalid_body")
    unknown = assert_error(
        client.post(url, json={"email": "a@b.c", "password": "x", "admin": True}),
        400,
        "validation_error",
    )
    assert unknown["details"]["field"] == "admin"
    assert_error(client.post(url, json={"email": 12345, "password": "x"}), 400, "validation_error")
    assert_error(client.post(url, json=["a@b.c", "x"]), 400, "validation_error")
    assert_error(client.post(url, json={"email": "a@b.c"}), 400, "validation_error")
    assert_error(
        client.post(url, json={"email": "a" * 300 + "@b.c", "password": "x"}),
        400,
        "validation_error",
    )
    assert_error(
        client.post(url, json={"email": "a@b.c", "password": "p" * 257}), 400, "validation_error"
    )
    assert_error(client.post(url, content=OVER_A_MIB, headers=JSON), 413, "payload_too_large")


def test_change_password_refuses_bad_bodies(user: Api) -> None:
    url = "/api/auth/password"
    assert_error(post_raw(user, url, b"{oops"), 400, "invalid_json")
    assert_error(post_raw(user, url, b""), 400, "invalid_body")
    assert_error(
        user.http.post(
            url,
            json={
                "currentPassword": "bad-input-password",
                "newPassword": "long-enough-1",
                "confirm": "long-enough-1",
            },
        ),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(url, json={"currentPassword": 1, "newPassword": "long-enough-1"}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(url, json={"currentPassword": "bad-input-password", "newPassword": "short"}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(
            url, json={"currentPassword": "bad-input-password", "newPassword": "n" * 257}
        ),
        400,
        "validation_error",
    )
    assert_error(post_raw(user, url, OVER_A_MIB), 413, "payload_too_large")
    # None of that changed the password.
    Api.login(user.server, "bad-input@example.com", "bad-input-password")


# -- users ------------------------------------------------------------------------------


def test_create_user_refuses_bad_bodies(admin: Api) -> None:
    url = "/api/users"
    good = {"email": "valid-new@example.com", "password": "password-123"}
    assert_error(post_raw(admin, url, b'{"email": "x@y.z",'), 400, "invalid_json")
    assert_error(post_raw(admin, url, b""), 400, "invalid_body")
    assert_error(admin.http.post(url, json={**good, "isAdmin": True}), 400, "validation_error")
    assert_error(admin.http.post(url, json={**good, "email": ["x@y.z"]}), 400, "validation_error")
    assert_error(admin.http.post(url, json={**good, "firstName": 7}), 400, "validation_error")
    assert_error(
        admin.http.post(url, json={**good, "email": "not-an-email"}), 400, "validation_error"
    )
    assert_error(
        admin.http.post(url, json={**good, "email": "a" * 250 + "@b.cd"}), 400, "validation_error"
    )
    assert_error(admin.http.post(url, json={**good, "password": "short"}), 400, "validation_error")
    assert_error(
        admin.http.post(url, json={**good, "firstName": "n" * 101}), 400, "validation_error"
    )
    assert_error(admin.http.post(url, json={**good, "role": "root"}), 400, "validation_error")
    assert_error(post_raw(admin, url, OVER_A_MIB), 413, "payload_too_large")
    # Nothing above created the user.
    listed = admin.http.get(url).json()["users"]
    assert "valid-new@example.com" not in [u["email"] for u in listed]


def test_user_paths_with_bad_or_unknown_ids_are_404(admin: Api) -> None:
    for user_id in (
        "not-a-uuid",
        "1234",
        str(uuid.uuid4()),
        "00000000-0000-0000-0000-000000000000",
    ):
        url = f"/api/users/{user_id}"
        assert_error(admin.http.get(url), 404, "user_not_found")
        assert_error(admin.http.put(url, json={"firstName": "X"}), 404, "user_not_found")
        assert_error(admin.http.delete(url), 404, "user_not_found")


def test_update_user_refuses_bad_bodies(admin: Api) -> None:
    target = admin.create_user("update-target@example.com")["id"]
    url = f"/api/users/{target}"
    assert_error(admin.http.put(url, content=b"{", headers=JSON), 400, "invalid_json")
    assert_error(admin.http.put(url, content=b"", headers=JSON), 400, "invalid_body")
    assert_error(admin.http.put(url, json={"email": "new@example.com"}), 400, "validation_error")
    assert_error(admin.http.put(url, json={"role": "superuser"}), 400, "validation_error")
    assert_error(admin.http.put(url, json={"lastName": "l" * 101}), 400, "validation_error")
    assert_error(
        admin.http.put(url, json={"limits": {"maxInstances": -1}}), 400, "validation_error"
    )
    assert_error(
        admin.http.put(url, json={"limits": {"maxInstances": "many"}}), 400, "validation_error"
    )
    assert_error(admin.http.put(url, content=OVER_A_MIB, headers=JSON), 413, "payload_too_large")
    assert admin.http.get(url).json()["role"] == "user"


# -- instances ----------------------------------------------------------------------------


def test_create_instance_refuses_bad_bodies(user: Api) -> None:
    url = "/api/instances"
    before = len(user.http.get(url).json()["instances"])
    assert_error(post_raw(user, url, b'{"name": "x"'), 400, "invalid_json")
    assert_error(post_raw(user, url, b"null"), 400, "validation_error")
    assert_error(post_raw(user, url, b""), 400, "invalid_body")
    assert_error(
        user.http.post(url, json={"name": "x", "engine": "sandbox", "color": "red"}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(url, json={"name": 5, "engine": "sandbox"}), 400, "validation_error"
    )
    assert_error(
        user.http.post(url, json={"name": "x", "engine": "sandbox", "webhookEnabled": "yes"}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(url, json={"name": "", "engine": "sandbox"}), 400, "validation_error"
    )
    assert_error(
        user.http.post(url, json={"name": "n" * 101, "engine": "sandbox"}), 400, "validation_error"
    )
    assert_error(
        user.http.post(url, json={"name": "x", "engine": "sandbox", "description": "d" * 2001}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(url, json={"name": "x", "engine": "sandbox", "maxRetries": 21}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(url, json={"name": "x", "engine": "telegram"}), 400, "validation_error"
    )
    assert_error(
        user.http.post(url, json={"name": "x", "engine": "cloud"}), 400, "validation_error"
    )
    assert_error(post_raw(user, url, OVER_A_MIB), 413, "payload_too_large")
    assert len(user.http.get(url).json()["instances"]) == before


@pytest.mark.parametrize(
    "webhook_url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://127.0.0.1:25/",
        "http://",
        "example.com/hook",
    ],
)
def test_webhook_url_must_be_http(user: Api, paired: str, webhook_url: str) -> None:
    created = user.http.post(
        "/api/instances", json={"name": "W", "engine": "sandbox", "webhookUrl": webhook_url}
    )
    assert_error(created, 400, "invalid_webhook_url")
    updated = user.http.put(f"/api/instances/{paired}", json={"webhookUrl": webhook_url})
    assert_error(updated, 400, "invalid_webhook_url")
    assert user.http.get(f"/api/instances/{paired}").json()["webhookUrl"] is None


def test_replay_refuses_bad_bodies(user: Api, paired: str) -> None:
    url = f"/api/instances/{paired}/webhooks/replay"
    both = assert_error(
        user.http.post(url, json={"fromPosition": 1, "since": "2026-01-01T00:00:00Z"}),
        400,
        "validation_error",
    )
    assert both["details"]["field"] == "fromPosition"
    assert_error(user.http.post(url, json={}), 400, "validation_error")
    late = assert_error(user.http.post(url, json={"since": "yesterday"}), 400, "validation_error")
    assert late["details"] == {"field": "since", "problem": late["error"]}
    wrong = assert_error(user.http.post(url, json={"fromPosition": "1"}), 400, "validation_error")
    assert wrong["details"]["field"] == "fromPosition"


# Times no calendar holds once in UTC, digits of other scripts, impossible days, 5,000
# digits: a 400 that names the parameter, never a 500 (the event-history routes too).
BAD_TIMES = (
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "²⁰²⁶-01-01",
    "2026-02-30",
    "2026-01-01T24:61:00Z",
    "9" * 5000,
)


@pytest.mark.parametrize("bad", BAD_TIMES)
def test_bad_or_extreme_dates_are_400(user: Api, paired: str, bad: str) -> None:
    for route in ("activity", "chats/15550009999/messages"):
        for name in ("startDate", "endDate"):
            answer = user.http.get(f"/api/instances/{paired}/{route}", params={name: bad})
            assert name in assert_error(answer, 400, "invalid_query")["error"]
    replay = user.http.post(f"/api/instances/{paired}/webhooks/replay", json={"since": bad[:40]})
    assert assert_error(replay, 400, "validation_error")["details"]["field"] == "since"


# Generated times at any offset from -23:59 to +23:59, a third of them in the first or the
# last day of the calendar (where an offset takes them out of it), dates alone, and text.
OFFSET = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
MOMENTS = st.one_of(
    st.one_of(
        st.datetimes(max_value=datetime(1, 1, 2), timezones=OFFSET),
        st.datetimes(min_value=datetime(9999, 12, 30), timezones=OFFSET),
        st.datetimes(timezones=OFFSET),
    ).map(lambda t: t.isoformat()),
    st.dates().map(str),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(moment=MOMENTS)
def test_generated_dates_are_answered_or_refused_never_500(
    user: Api, paired: str, moment: str
) -> None:
    url = f"/api/instances/{paired}/activity"
    answer = user.http.get(url, params={"startDate": moment, "endDate": moment})
    if answer.status_code != 200:
        assert "Date'" in assert_error(answer, 400, "invalid_query")["error"]


def test_update_instance_refuses_bad_bodies(user: Api, paired: str) -> None:
    url = f"/api/instances/{paired}"
    assert_error(user.http.put(url, content=b"{,}", headers=JSON), 400, "invalid_json")
    assert_error(user.http.put(url, content=b"", headers=JSON), 400, "invalid_body")
    assert_error(user.http.put(url, json={"engine": "cloud"}), 400, "validation_error")
    assert_error(user.http.put(url, json={"name": ["a"]}), 400, "validation_error")
    assert_error(user.http.put(url, json={"name": "n" * 101}), 400, "validation_error")
    assert_error(
        user.http.put(url, json={"webhookSettings": {"maxRetries": "3"}}), 400, "validation_error"
    )
    assert_error(
        user.http.put(url, json={"webhookSettings": {"retries": 3}}), 400, "validation_error"
    )
    assert_error(
        user.http.put(url, json={"cloud": {"phoneNumberId": "1", "accessToken": "t"}}),
        400,
        "validation_error",
    )
    assert_error(user.http.put(url, content=OVER_A_MIB, headers=JSON), 413, "payload_too_large")
    assert user.http.get(url).json()["name"] == "Paired"


@pytest.mark.parametrize(
    "instance_id", ["not-a-uuid", "12345", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "random"]
)
def test_instance_paths_with_bad_or_unknown_ids_are_404(user: Api, instance_id: str) -> None:
    if instance_id == "random":
        instance_id = str(uuid.uuid4())
    base = f"/api/instances/{instance_id}"
    assert_error(user.http.get(base), 404, "instance_not_found")
    assert_error(user.http.put(base, json={"name": "x"}), 404, "instance_not_found")
    assert_error(user.http.delete(base), 404, "instance_not_found")
    assert_error(user.http.post(base + "/reconnect"), 404, "instance_not_found")
    assert_error(user.http.post(base + "/logout"), 404, "instance_not_found")
    assert_error(user.http.get(base + "/qr"), 404, "instance_not_found")
    assert_error(user.http.get(base + "/activity"), 404, "instance_not_found")
    assert_error(user.http.get(base + "/chats/15550101002/messages"), 404, "instance_not_found")


@pytest.mark.parametrize("image_format", ["gif", "jpg", "SVG", "", "svg%00", "../png"])
def test_qr_format_other_than_svg_or_png_is_400(
    user: Api, unpaired: str, image_format: str
) -> None:
    for base in ("/api/instances", "/api/whatsapp"):
        answer = user.http.get(f"{base}/{unpaired}/qr", params={"format": image_format})
        assert_error(answer, 400, "invalid_format")


def test_qr_formats_svg_and_png_work(user: Api, unpaired: str) -> None:
    svg = user.http.get(f"/api/instances/{unpaired}/qr", params={"format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    png = user.http.get(f"/api/whatsapp/{unpaired}/qr", params={"format": "png"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_qr_of_a_paired_instance_is_404_qr_not_available(user: Api, paired: str) -> None:
    assert_error(user.http.get(f"/api/instances/{paired}/qr"), 404, "qr_not_available")


@pytest.fixture(scope="module")
def without_whatsmeow(
    request: pytest.FixtureRequest, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server on which the whatsmeow library cannot be found (neonize hidden at start-up)."""
    root = tmp_path_factory.mktemp("no-whatsmeow")
    hide = root / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['neonize'] = None\n")
    with (
        place(request, provider, root) as storage,
        running_server(root, storage, PYTHONPATH=str(hide)) as running,
    ):
        yield running


def test_engine_whatsmeow_unavailable_is_400(without_whatsmeow: Server) -> None:
    api = Api.login(without_whatsmeow)
    answer = api.http.post("/api/instances", json={"name": "WM", "engine": "whatsmeow"})
    body = assert_error(answer, 400, "engine_unavailable")
    assert "whatsmeow" in body["error"]
    assert api.http.get("/api/instances").json()["instances"] == []
    # The engines that are there still work.
    assert api.create_instance("Sandbox")["engine"] == "sandbox"


# -- whatsapp ------------------------------------------------------------------------------


def test_send_refuses_bad_bodies(user: Api, paired: str) -> None:
    url = f"/api/whatsapp/{paired}/send"
    good = {"phone": "15550101002", "message": "hello"}
    assert_error(
        post_raw(user, url, b'{"phone": "15550101002", "message": "hi"'), 400, "invalid_json"
    )
    assert_error(post_raw(user, url, b"\xff\xfe"), 400, "invalid_json")
    assert_error(post_raw(user, url, b""), 400, "invalid_body")
    assert_error(user.http.post(url, json={**good, "priority": "high"}), 400, "validation_error")
    assert_error(user.http.post(url, json={**good, "phone": 15550101002}), 400, "validation_error")
    assert_error(
        user.http.post(url, json={**good, "message": {"text": "hi"}}), 400, "validation_error"
    )
    assert_error(user.http.post(url, json={"phone": "15550101002"}), 400, "validation_error")
    assert_error(user.http.post(url, json={**good, "message": ""}), 400, "validation_error")
    assert_error(
        user.http.post(url, json={**good, "message": "m" * 65_537}), 400, "validation_error"
    )
    assert_error(user.http.post(url, json={**good, "phone": "1" * 65}), 400, "validation_error")
    assert_error(post_raw(user, url, OVER_A_MIB), 413, "payload_too_large")


def test_json_nested_deeper_than_the_decoder_goes_is_400(user: Api, paired: str) -> None:
    # A template's components are free-form JSON: 5,000 nested arrays are 10 kB, well
    # under the body limit, and deeper than the decoder recurses.
    nested = b"[" * 5000 + b"]" * 5000
    body = b'{"phone": "15550101002", "name": "hello", "language": "en", "components": [{"a": '
    answer = post_raw(user, f"/api/whatsapp/{paired}/send-template", body + nested + b"}]}")
    assert "nested" in assert_error(answer, 400, "invalid_json")["error"]


def other_digits(number: str, zero: int) -> str:
    """`number` in another script's digits (Unicode \\d, but not 0-9)."""
    return number.translate({ord("0") + d: zero + d for d in range(10)})


FULL_WIDTH, ARABIC_INDIC = other_digits("15550101002", 0xFF10), other_digits("15550101002", 0x0660)
BAD_PHONES = [
    "1234567",
    "1234567890123456",
    "1555abc0001",
    "phone",
    "++",
    "1555 0101 002 x",
    "abc@s.whatsapp.net",
    "15550101002@example.com",
    "@g.us",
    FULL_WIDTH,
    ARABIC_INDIC,
    FULL_WIDTH + "@s.whatsapp.net",
]


@pytest.mark.parametrize("phone", BAD_PHONES)
def test_bad_phone_numbers_are_400(user: Api, paired: str, phone: str) -> None:
    answer = user.http.post(f"/api/whatsapp/{paired}/send", json={"phone": phone, "message": "hi"})
    assert_error(answer, 400, "invalid_phone")
    simple = user.http.get(
        f"/api/whatsapp-simple/{paired}/send", params={"phone": phone, "message": "hi"}
    )
    assert_error(simple, 400, "invalid_phone")


def test_phone_numbers_in_the_accepted_forms_are_sent(user: Api, paired: str) -> None:
    for phone in ("12345678", "123456789012345", "+1 555-010-1002", "15550101002@s.whatsapp.net"):
        answer = user.send(paired, phone, "hello")
        assert answer.status_code == 200, (phone, answer.text)
        assert answer.json()["id"]


@pytest.mark.parametrize("instance_id", ["not-a-uuid", "random"])
def test_whatsapp_paths_with_bad_or_unknown_ids_are_404(user: Api, instance_id: str) -> None:
    if instance_id == "random":
        instance_id = str(uuid.uuid4())
    base = f"/api/whatsapp/{instance_id}"
    message = {"phone": "15550101002", "message": "hi"}
    assert_error(user.http.get(base + "/status"), 404, "instance_not_found")
    assert_error(user.http.get(base + "/qr"), 404, "instance_not_found")
    assert_error(user.http.get(base + "/contacts"), 404, "instance_not_found")
    assert_error(user.http.post(base + "/logout"), 404, "instance_not_found")
    assert_error(user.http.post(base + "/send", json=message), 404, "instance_not_found")
    assert_error(
        user.http.post(
            base + "/send-media", json={"phone": "15550101002", "url": "http://x/y.png"}
        ),
        404,
        "instance_not_found",
    )
    assert_error(
        user.http.post(
            base + "/send-file",
            data={"phone": "15550101002"},
            files={"file": ("a.txt", b"hi", "text/plain")},
        ),
        404,
        "instance_not_found",
    )
    assert_error(
        user.http.get(f"/api/whatsapp-simple/{instance_id}/send", params=message),
        404,
        "instance_not_found",
    )
    assert_error(
        user.http.post(f"/api/whatsapp-simple/{instance_id}/send", data=message),
        404,
        "instance_not_found",
    )


def test_send_on_an_unpaired_instance_is_409(user: Api, unpaired: str) -> None:
    message = {"phone": "15550101002", "message": "hi"}
    assert_error(
        user.http.post(f"/api/whatsapp/{unpaired}/send", json=message),
        409,
        "instance_not_connected",
    )
    assert_error(
        user.http.get(f"/api/whatsapp-simple/{unpaired}/send", params=message),
        409,
        "instance_not_connected",
    )
    assert_error(
        user.http.post(f"/api/whatsapp-simple/{unpaired}/send", data=message),
        409,
        "instance_not_connected",
    )
    assert_error(
        user.http.post(
            f"/api/whatsapp/{unpaired}/send-file",
            data={"phone": "15550101002"},
            files={"file": ("a.txt", b"hello", "text/plain")},
        ),
        409,
        "instance_not_connected",
    )
    assert user.status(unpaired)["ready"] is False


@pytest.mark.parametrize("key", ["k" * 201, ""])
def test_bad_idempotency_key_is_400(user: Api, paired: str, key: str) -> None:
    message = {"phone": "15550101002", "message": "idempotency check"}
    headers = {"Idempotency-Key": key}
    assert_error(
        user.http.post(f"/api/whatsapp/{paired}/send", json=message, headers=headers),
        400,
        "invalid_idempotency_key",
    )
    assert_error(
        user.http.get(f"/api/whatsapp-simple/{paired}/send", params=message, headers=headers),
        400,
        "invalid_idempotency_key",
    )
    assert_error(
        user.http.post(
            f"/api/whatsapp/{paired}/send-file",
            data={"phone": "15550101002"},
            files={"file": ("a.txt", b"hello", "text/plain")},
            headers=headers,
        ),
        400,
        "invalid_idempotency_key",
    )
    # The longest allowed key is fine.
    assert (
        user.send(paired, "15550101002", "ok", **{"Idempotency-Key": "k" * 200}).status_code == 200
    )


def chat(api: Api, instance: str, phone: str) -> list[dict[str, Any]]:
    answer = api.http.get(
        f"/api/instances/{instance}/chats/{phone}/messages", params={"limit": 100}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["messages"]


def test_idempotent_send_returns_the_first_result_and_sends_once(user: Api, paired: str) -> None:
    phone = "15550101077"
    key = f"order-{uuid.uuid4()}"
    first = user.send(paired, phone, "your order shipped", **{"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    again = user.send(paired, phone, "your order shipped", **{"Idempotency-Key": key})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    # The simple route shares the key space: the same message is still the first one, another
    # message under the same key is refused (test_security_sends.py has the other sends).
    simple = user.http.get(
        f"/api/whatsapp-simple/{paired}/send",
        params={"phone": phone, "message": "your order shipped"},
        headers={"Idempotency-Key": key},
    )
    assert simple.status_code == 200 and simple.json()["id"] == first.json()["id"]
    reused = user.http.get(
        f"/api/whatsapp-simple/{paired}/send",
        params={"phone": phone, "message": "x"},
        headers={"Idempotency-Key": key},
    )
    assert_error(reused, 422, "idempotency_key_reused")
    other = user.send(paired, phone, "your order shipped", **{"Idempotency-Key": key + "-2"})
    assert other.status_code == 200 and other.json()["id"] != first.json()["id"]
    unkeyed = [user.send(paired, phone, "no key").json()["id"] for _ in range(2)]
    assert unkeyed[0] != unkeyed[1]
    messages = wait_until(lambda: len(chat(user, paired, phone)) >= 4 and chat(user, paired, phone))
    ids = [m["messageId"] for m in messages]
    assert sorted(ids) == sorted([first.json()["id"], other.json()["id"], *unkeyed]), messages
    assert ids.count(first.json()["id"]) == 1


# -- whatsapp-simple ------------------------------------------------------------------------


def test_simple_send_refuses_bad_input(user: Api, paired: str) -> None:
    url = f"/api/whatsapp-simple/{paired}/send"
    assert_error(user.http.get(url), 400, "validation_error")
    assert_error(user.http.get(url, params={"phone": "15550101002"}), 400, "validation_error")
    assert_error(user.http.get(url, params={"message": "hi"}), 400, "validation_error")
    assert_error(user.http.get(url, params={"phone": "", "message": "hi"}), 400, "validation_error")
    assert_error(user.http.post(url), 400, "validation_error")
    assert_error(user.http.post(url, data={"phone": "15550101002"}), 400, "validation_error")
    assert_error(
        user.http.post(url, data={"phone": "15550101002", "message": "m" * 65_537}),
        400,
        "validation_error",
    )
    assert_error(post_raw(user, url, b'{"phone": '), 400, "invalid_json")
    assert_error(
        user.http.post(url, json={"phone": 15550101002, "message": "hi"}), 400, "validation_error"
    )
    assert_error(user.http.post(url, json=["15550101002", "hi"]), 400, "validation_error")
    assert_error(post_raw(user, url, OVER_A_MIB), 413, "payload_too_large")
    form = b"phone=15550101002&message=" + b"m" * (MIB + 10)
    assert_error(
        user.http.post(
            url, content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        ),
        413,
        "payload_too_large",
    )


def test_simple_send_accepts_query_form_and_json(user: Api, paired: str) -> None:
    url = f"/api/whatsapp-simple/{paired}/send"
    fields = {"phone": "15550101002", "message": "simple"}
    ids = {
        user.http.get(url, params=fields).json()["id"],
        user.http.post(url, params=fields).json()["id"],
        user.http.post(url, data=fields).json()["id"],
        user.http.post(url, json=fields).json()["id"],
    }
    assert len(ids) == 4 and all(ids)


# -- sandbox ----------------------------------------------------------------------------------


def test_sandbox_routes_refuse_bad_bodies(user: Api, paired: str) -> None:
    scan = f"/api/sandbox/instances/{paired}/scan"
    inbound = f"/api/sandbox/instances/{paired}/inbound"
    assert_error(post_raw(user, scan, b'{"phone": "1555'), 400, "invalid_json")
    assert_error(
        user.http.post(scan, json={"phone": "15550101009", "pin": "0000"}), 400, "validation_error"
    )
    assert_error(user.http.post(scan, json={"phone": 15550101009}), 400, "validation_error")
    assert_error(user.http.post(scan, json={"phone": "1" * 65}), 400, "validation_error")
    for phone in ("123", "1555abcd0001", "1234567890123456"):
        assert_error(user.http.post(scan, json={"phone": phone}), 400, "invalid_phone")
    assert_error(post_raw(user, scan, OVER_A_MIB), 413, "payload_too_large")

    assert_error(post_raw(user, inbound, b"{"), 400, "invalid_json")
    assert_error(post_raw(user, inbound, b""), 400, "invalid_body")
    assert_error(user.http.post(inbound, json={"message": "hi"}), 400, "validation_error")
    assert_error(
        user.http.post(inbound, json={"sender": "15557770000", "message": "hi"}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(inbound, json={"from": "15557770000", "message": "hi", "extra": 1}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(inbound, json={"from": "15557770000", "message": 5}), 400, "validation_error"
    )
    assert_error(
        user.http.post(inbound, json={"from": "15557770000", "message": "m" * 65_537}),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(
            inbound, json={"from": "15557770000", "message": "hi", "pushName": "p" * 101}
        ),
        400,
        "validation_error",
    )
    assert_error(
        user.http.post(inbound, json={"from": "not a phone", "message": "hi"}), 400, "invalid_phone"
    )
    assert_error(post_raw(user, inbound, OVER_A_MIB), 413, "payload_too_large")
    # Still paired as before, and a good inbound message is taken.
    assert user.status(paired)["ready"] is True
    ok = user.http.post(inbound, json={"from": "15557770000", "message": "hi", "pushName": "Zed"})
    assert ok.status_code == 200 and ok.json()["id"], ok.text


def test_what_the_engine_cannot_do_is_400_unsupported_by_engine(user: Api, paired: str) -> None:
    # SPEC: an engine that cannot do something answers 400 unsupported_by_engine naming it.
    pairing = assert_error(
        user.http.post(f"/api/instances/{paired}/pairing-code", json={"phone": "15550101009"}),
        400,
        "unsupported_by_engine",
    )
    assert pairing["error"] == "The sandbox engine cannot make pairing codes"
    check = assert_error(
        user.http.get(f"/api/whatsapp/{paired}/check/15550101009"), 400, "unsupported_by_engine"
    )
    assert "sandbox engine" in check["error"]


@pytest.mark.parametrize("instance_id", ["not-a-uuid", "random"])
def test_sandbox_paths_with_bad_or_unknown_ids_are_404(user: Api, instance_id: str) -> None:
    if instance_id == "random":
        instance_id = str(uuid.uuid4())
    base = f"/api/sandbox/instances/{instance_id}"
    assert_error(
        user.http.post(base + "/scan", json={"phone": "15550101009"}), 404, "instance_not_found"
    )
    assert_error(
        user.http.post(base + "/inbound", json={"from": "15557770000", "message": "hi"}),
        404,
        "instance_not_found",
    )
    assert_error(user.http.post(base + "/drop"), 404, "instance_not_found")


def test_unknown_routes_and_methods_use_the_error_shape(user: Api, paired: str) -> None:
    assert_error(user.http.get("/api/nothing-here"), 404, "not_found")
    assert_error(user.http.delete(f"/api/whatsapp/{paired}/send"), 405, "method_not_allowed")


# -- files: uploads and downloads on a server with MAX_FILE_SIZE=1000 -------------------------

SMALL_LIMIT = 1000


@pytest.fixture(scope="module")
def small(
    request: pytest.FixtureRequest, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server whose files may be at most 1000 bytes; its root sits one level down, so
    anything written beside it (a path traversal) would land in the parent we inspect."""
    root = tmp_path_factory.mktemp("small") / "root"
    root.mkdir()
    with (
        place(request, provider, root) as storage,
        running_server(root, storage, MAX_FILE_SIZE=str(SMALL_LIMIT)) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def small_api(small: Server) -> tuple[Api, str]:
    api = Api.login(small)
    instance = api.create_instance("Files")["id"]
    api.pair(instance, "15550102001")
    return api, instance


@pytest.fixture(scope="module")
def media_host() -> Iterator[MediaHost]:
    big = b"B" * (SMALL_LIMIT * 5)
    host = MediaHost(
        {
            "/pixel.png": (png_bytes(), "image/png", True),
            "/big.bin": (big, "application/octet-stream", True),
            "/big-unsized.bin": (big, "application/octet-stream", False),
            "/empty.txt": (b"", "text/plain", True),
        }
    )
    yield host
    host.close()


def upload(
    api: Api, instance: str, files: Any = None, data: Any = None, **headers: str
) -> httpx.Response:
    return api.http.post(
        f"/api/whatsapp/{instance}/send-file", files=files, data=data, headers=headers
    )


def test_send_file_larger_than_max_file_size_is_413(
    small: Server, small_api: tuple[Api, str]
) -> None:
    api, instance = small_api
    before = set((small.root / "uploads").iterdir())
    # Past MAX_FILE_SIZE but inside the multipart allowance: the file itself is refused.
    answer = upload(
        api,
        instance,
        files={"file": ("big.bin", b"x" * (SMALL_LIMIT + 1))},
        data={"phone": "15550102002"},
    )
    refused = assert_error(answer, 413, "file_too_large")
    assert (
        refused["error"].startswith("The uploaded file is larger than")
        and str(SMALL_LIMIT) in refused["error"]
    )
    # Far past it: the body is refused from its Content-Length.
    answer = upload(
        api,
        instance,
        files={"file": ("huge.bin", b"x" * (200 * 1024))},
        data={"phone": "15550102002"},
    )
    assert_error(answer, 413, "payload_too_large")
    # Nothing half-written is left behind.
    assert set((small.root / "uploads").iterdir()) == before


def test_send_file_uploads_to_a_paired_instance(small: Server, small_api: tuple[Api, str]) -> None:
    api, instance = small_api
    content = b"exactly the limit " + b"." * (SMALL_LIMIT - 18)
    assert len(content) == SMALL_LIMIT
    answer = upload(
        api,
        instance,
        files={"file": ("notes.txt", content, "text/plain")},
        data={"phone": "15550102002", "caption": "see attached"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"]
    stored = [p for p in (small.root / "uploads").iterdir() if p.read_bytes() == content]
    assert len(stored) == 1 and stored[0].name.endswith("notes.txt")
    messages = wait_until(lambda: chat(api, instance, "15550102002"))
    assert messages[-1]["messageId"] == answer.json()["id"] and messages[-1]["hasMedia"]


def test_send_file_refuses_incomplete_or_wrong_bodies(small_api: tuple[Api, str]) -> None:
    api, instance = small_api
    file = {"file": ("a.txt", b"hello", "text/plain")}
    assert_error(upload(api, instance, files=file), 400, "validation_error")  # no phone
    assert_error(upload(api, instance, files=file, data={"phone": ""}), 400, "validation_error")
    assert_error(
        upload(api, instance, files={"other": ("a.txt", b"hi")}, data={"phone": "15550102002"}),
        400,
        "validation_error",
    )  # no file
    assert_error(
        upload(
            api,
            instance,
            data={"phone": "15550102002", "file": "not a file"},
            files={"x": ("x", b"x")},
        ),
        400,
        "validation_error",
    )
    assert_error(
        upload(api, instance, files=file, data={"phone": "15550102002", "caption": "c" * 4097}),
        400,
        "validation_error",
    )
    assert_error(upload(api, instance, files=file, data={"phone": "12ab"}), 400, "invalid_phone")
    assert_error(
        upload(api, instance, files={"file": ("empty.txt", b"")}, data={"phone": "15550102002"}),
        400,
        "empty_file",
    )
    url = f"/api/whatsapp/{instance}/send-file"
    assert_error(
        api.http.post(url, json={"phone": "15550102002", "file": "aGVsbG8="}), 400, "invalid_body"
    )
    assert_error(
        api.http.post(url, data={"phone": "15550102002"}), 400, "invalid_body"
    )  # urlencoded
    assert_error(api.http.post(url, content=b"hello"), 400, "invalid_body")
    broken = b'--XYZ\r\nContent-Disposition: form-data; name="phone"\r\n\r\n1555'
    answer = api.http.post(
        url, content=broken, headers={"Content-Type": "multipart/form-data; boundary=XYZ"}
    )
    assert answer.status_code == 400 and "Traceback" not in answer.text, answer.text
    assert answer.json()["code"] in ("invalid_multipart", "validation_error")
    answer = api.http.post(
        url, content=b"x", headers={"Content-Type": "multipart/form-data"}
    )  # no boundary
    assert answer.status_code == 400 and "Traceback" not in answer.text, answer.text


@pytest.mark.parametrize(
    "filename", ["../../etc/passwd", "..\\..\\etc\\passwd", "/etc/passwd", "....//passwd"]
)
def test_send_file_keeps_a_traversing_filename_inside_uploads(
    small: Server, small_api: tuple[Api, str], filename: str
) -> None:
    api, instance = small_api
    uploads = (small.root / "uploads").resolve()
    outside = small.root.parent
    before = {p for p in outside.rglob("*") if p.is_file() and uploads not in p.parents}
    system_passwd = Path("/etc/passwd").read_bytes()
    content = f"root:x:0:0:{uuid.uuid4()}:/root:/bin/sh\n".encode()
    answer = upload(
        api,
        instance,
        files={"file": (filename, content, "text/plain")},
        data={"phone": "15550102002"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"]
    stored = [p for p in uploads.iterdir() if p.read_bytes() == content]
    assert len(stored) == 1, stored
    assert stored[0].resolve().parent == uploads
    assert ".." not in stored[0].name and "/" not in stored[0].name and "\\" not in stored[0].name
    after = {p for p in outside.rglob("*") if p.is_file() and uploads not in p.parents}
    new_outside = {p for p in after - before if "passwd" in p.name or content in p.read_bytes()}
    assert not new_outside, new_outside
    assert not (outside / "etc").exists() and not (small.root / "etc").exists()
    assert Path("/etc/passwd").read_bytes() == system_passwd


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/file.png",
        "gopher://127.0.0.1/x",
        "data:image/png;base64,AAAA",
        "/etc/passwd",
        "http://",
        "javascript:alert(1)",
    ],
)
def test_send_media_refuses_urls_that_are_not_http(small_api: tuple[Api, str], url: str) -> None:
    api, instance = small_api
    answer = api.http.post(
        f"/api/whatsapp/{instance}/send-media", json={"phone": "15550102002", "url": url}
    )
    assert_error(answer, 400, "invalid_url")


def test_send_media_refuses_bad_bodies(small_api: tuple[Api, str], media_host: MediaHost) -> None:
    api, instance = small_api
    media_host.requests.clear()
    url = f"/api/whatsapp/{instance}/send-media"
    good = {"phone": "15550102002", "url": media_host.url + "/pixel.png"}
    assert_error(post_raw(api, url, b'{"url": '), 400, "invalid_json")
    assert_error(post_raw(api, url, b""), 400, "invalid_body")
    assert_error(api.http.post(url, json={**good, "mime": "image/png"}), 400, "validation_error")
    assert_error(api.http.post(url, json={**good, "url": 42}), 400, "validation_error")
    assert_error(api.http.post(url, json={"phone": "15550102002"}), 400, "validation_error")
    assert_error(
        api.http.post(url, json={**good, "url": "http://example.com/" + "a" * 2048}),
        400,
        "validation_error",
    )
    assert_error(api.http.post(url, json={**good, "caption": "c" * 4097}), 400, "validation_error")
    assert_error(api.http.post(url, json={**good, "filename": "f" * 256}), 400, "validation_error")
    assert_error(api.http.post(url, json={**good, "phone": "12"}), 400, "invalid_phone")
    assert_error(post_raw(api, url, OVER_A_MIB), 413, "payload_too_large")
    assert_error(
        api.http.post(url, json={**good, "url": media_host.url + "/missing.png"}),
        400,
        "media_download_failed",
    )
    assert_error(
        api.http.post(url, json={**good, "url": media_host.url + "/empty.txt"}),
        400,
        "media_download_failed",
    )
    assert_error(
        api.http.post(url, json=good, headers={"Idempotency-Key": "k" * 201}),
        400,
        "invalid_idempotency_key",
    )
    # Nothing above reached the media host except the two failing downloads.
    assert sorted(media_host.requests) == ["/empty.txt", "/missing.png"]


def test_send_media_fetches_an_http_url(
    small: Server, small_api: tuple[Api, str], media_host: MediaHost
) -> None:
    api, instance = small_api
    answer = api.http.post(
        f"/api/whatsapp/{instance}/send-media",
        json={
            "phone": "15550102003",
            "url": media_host.url + "/pixel.png",
            "caption": "a pixel",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"]
    assert "/pixel.png" in media_host.requests
    assert any(p.read_bytes() == png_bytes() for p in (small.root / "uploads").iterdir())
    messages = wait_until(lambda: chat(api, instance, "15550102003"))
    assert messages[-1]["messageId"] == answer.json()["id"]
    assert messages[-1]["messageType"] == "image" and messages[-1]["hasMedia"]


@pytest.mark.parametrize("path", ["/big.bin", "/big-unsized.bin"])
def test_send_media_larger_than_max_file_size_is_413(
    small: Server, small_api: tuple[Api, str], media_host: MediaHost, path: str
) -> None:
    api, instance = small_api
    before = set((small.root / "uploads").iterdir())
    answer = api.http.post(
        f"/api/whatsapp/{instance}/send-media",
        json={"phone": "15550102002", "url": media_host.url + path},
    )
    refused = assert_error(answer, 413, "file_too_large")
    # The download was too large, not the request: the answer says which.
    assert refused["error"].startswith("The file at the media URL is larger than"), refused
    assert "MAX_FILE_SIZE" in refused["error"] and "request body" not in refused["error"]
    assert path in media_host.requests
    assert set((small.root / "uploads").iterdir()) == before


def test_no_request_of_this_module_failed_on_the_server(server: Server, small: Server) -> None:
    """No 5xx in the access logs, and no unexpected exception logged by the error handler.
    Every refusal above was expected: each is its access line, with no traceback, and
    error.log (errors only) stays empty."""
    for running in (server, small):
        log = running.log_text()
        assert "app.access" in log
        server_errors = re.findall(r"app\.access: \S+ \S+ 5\d\d .*", log)
        assert not server_errors, server_errors[:5]
        assert "ERROR app.errors" not in log, log[log.find("ERROR app.errors") :][:3000]
        assert "Traceback" not in log, log[log.find("Traceback") - 500 :][:3000]
        refusals = re.findall(r"app\.access: \S+ \S+ 4\d\d .*", log)
        assert refusals and all(re.search(r" request=\w+ code=\w+$", r) for r in refusals)
        assert (running.root / "logs" / "error.log").read_text() == ""


def test_error_bodies_are_json_objects(user: Api) -> None:
    answer = user.http.get(f"/api/instances/{uuid.uuid4()}")
    assert answer.headers["content-type"].startswith("application/json")
    assert set(json.loads(answer.content)) == {"error", "code"}
