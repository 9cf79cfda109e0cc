"""Numbers that break naive parsing are 400s, never 500s, against a real server: positions
and paging values too big for 64 bits, digits that are not ASCII, thousands of digits; and
generated requests of those classes for every query parameter, event position and integer
body field the API documents.

Before: `Last-Event-ID: 99999999999999999999` (past SQLite's integer), `²` (a digit to
`str.isdigit`, not to `int`) and 5,000 digits (past Python's limit for `int()`) were 500s,
and so was a replay `fromPosition` of 2^70.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.drills import record
from tests.server import Api, Server

pytestmark = pytest.mark.drill_cases("security cases")

HOSTILE = [
    "99999999999999999999",
    str(2**70),
    "-" + str(2**70),
    "9" * 5000,
    "²",
    "\u0661\u0662",  # Arabic-Indic digits
    "\uff11\uff12",  # full-width digits
    "1_000",
    " 12",
    "+5",
    "0x10",
    "1e3",
    "NaN",
]

# Non-ASCII decimal digits: `str.isdigit()` says yes, and some of them `int()` reads too.
unicode_digits = st.text(
    st.characters(categories=["Nd"], exclude_characters="0123456789"), min_size=1, max_size=24
)
hostile_numbers = st.one_of(
    st.integers(min_value=2**62 + 1, max_value=2**400).map(str),
    st.integers(max_value=-1, min_value=-(2**400)).map(str),
    st.integers(min_value=21, max_value=6000).map(lambda n: "9" * n),
    unicode_digits,
    st.sampled_from(HOSTILE),
)


@pytest.fixture(scope="module")
def owner(server: Server, admin: Api) -> Iterator[dict[str, str]]:
    """Real ids to put in paths, so a request reaches the parameter it tests."""
    instance = admin.create_instance("Hostile numbers")["id"]
    admin.pair(instance, "15558800001")
    admin.send(instance, "15558800002", "something to page through")
    yield {
        "instanceId": instance,
        "chatId": "15558800002",
        "userId": admin.http.get("/api/auth/me").json()["id"],
    }


def header(value: str) -> bytes:
    """The bytes that make the server read `value` (it reads headers as Latin-1, so `²`
    arrives as `²`; other characters go as UTF-8). A space, which HTTP strips, goes as `_`."""
    value = value.replace(" ", "_")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def assert_400(answer: httpx.Response, codes: tuple[str, ...]) -> None:
    assert answer.status_code == 400, (answer.request.url, answer.status_code, answer.text[:300])
    assert answer.json()["code"] in codes


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_last_event_id_is_400(
    server: Server, admin: Api, owner: dict[str, str], value: str
) -> None:
    for path in ("/api/events", f"/api/instances/{owner['instanceId']}/events"):
        for accept in ("text/event-stream", "application/json"):
            answer = admin.http.get(
                path,
                headers={"Last-Event-ID": header(value), "Accept": accept},  # type: ignore[dict-item]
            )
            assert_400(answer, ("invalid_last_event_id",))


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_paging_values_are_400(admin: Api, owner: dict[str, str], value: str) -> None:
    instance = owner["instanceId"]
    for path, name in (
        ("/api/events", "after"),
        (f"/api/instances/{instance}/events", "limit"),
        (f"/api/instances/{instance}/activity", "skip"),
        (f"/api/instances/{instance}/chats/{owner['chatId']}/messages", "limit"),
        (f"/api/instances/{instance}/webhooks/deliveries", "skip"),
    ):
        assert_400(admin.http.get(path, params={name: value}), ("invalid_query",))


def test_a_replay_position_past_64_bits_is_400(admin: Api, owner: dict[str, str]) -> None:
    url = f"/api/instances/{owner['instanceId']}/webhooks/replay"
    for body in ({"fromPosition": 2**70}, {"fromPosition": 1, "toPosition": 2**70}):
        assert_400(admin.http.post(url, json=body), ("validation_error",))
    # The largest position is taken (202, or 409 for an instance without webhooks running).
    assert admin.http.post(url, json={"fromPosition": 2**62}).status_code in (202, 409)


def query_parameters(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, parameter) for every query parameter of a GET the API documents (not the
    Cloud webhook, which answers Meta, nor the sending one)."""
    found = []
    for path, operations in document["paths"].items():
        if "/cloud/" in path or "whatsapp-simple" in path:
            continue
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter["in"] == "query":
                found.append((path, parameter["name"]))
    return found


def integer_fields(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, field) for every integer field of a documented JSON body."""
    schemas = document["components"]["schemas"]
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if not ref:
                continue
            for name, field in schemas[ref.rsplit("/", 1)[-1]].get("properties", {}).items():
                kinds = [field.get("type")] + [k.get("type") for k in field.get("anyOf", [])]
                if "integer" in kinds:
                    found.append((method, path, name))
    return found


@pytest.mark.drill("hostile numbers, generated ({provider})")
def test_generated_hostile_numbers_never_make_a_5xx(
    server: Server, admin: Api, owner: dict[str, str]
) -> None:
    """Hypothesis sends numbers of every hostile class to every documented query parameter,
    to Last-Event-ID and to every integer field of a JSON body: each answer is below 500."""
    document = admin.http.get("/openapi.json").json()
    targets = query_parameters(document)
    fields = integer_fields(document)
    assert len(targets) >= 10 and fields  # the document still says what there is

    sent = 0

    def fill(path: str) -> str:
        for name, value in owner.items():
            path = path.replace("{" + name + "}", value)
        return path

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        target=st.sampled_from(targets),
        field=st.sampled_from(fields),
        value=hostile_numbers,
        huge=st.one_of(
            st.integers(min_value=2**63, max_value=2**400),
            st.integers(max_value=-(2**63), min_value=-(2**400)),
        ),
    )
    def probe(target: tuple[str, str], field: tuple[str, str, str], value: str, huge: int) -> None:
        nonlocal sent
        path, name = target
        answers = [
            admin.http.get(fill(path), params={name: value}),
            admin.http.get(
                "/api/events",
                headers={"Last-Event-ID": header(value), "Accept": "text/event-stream"},  # type: ignore[dict-item]
            ),
        ]
        method, body_path, key = field
        if "/send" not in body_path:  # no messages go out from a fuzz run
            answers.append(admin.http.request(method.upper(), fill(body_path), json={key: huge}))
        for answer in answers:
            sent += 1
            assert answer.status_code < 500, (answer.request.url, answer.text[:300])
            assert answer.headers["content-type"].startswith("application/json")

    try:
        probe()
    finally:
        record(requests=sent)
