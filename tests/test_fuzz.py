"""API fuzzing with schemathesis against the server's own /openapi.json, signed in, with real ids.

Three runs on one server: a user with a bearer token, a user with an API key (each alone, so
the fuzzer never mixes a good credential with a made-up one), and an administrator. Each run
has its own paired sandbox instance with chats, an unpaired one showing a QR code and a cloud
instance (on the local fake Graph API). Path parameters are drawn from these real ids, and
positive bodies and queries with a `phone` name a real recipient half the time, so that
generated requests reach the handlers instead of bouncing off 401 and unknown-id 404.
Operations that would destroy what the others need (delete, log out, change a user) get a
fresh victim per request; a rotated API key replaces the run's key. Nothing leaves 127.0.0.1:
positive bodies that would start a whatsmeow engine (it dials WhatsApp) get the sandbox
instead, and Cloud API settings point at the fake Graph API.

Every answer must conform to the document (status, content type, the JSON schema of its
answer type) and none may be a 5xx. "Schema-valid data is accepted" is left out: rules no
schema can say (the current password must be right, a cloud instance needs credentials)
rightly answer 400. The drills screen shows, per run, how many requests reached a handler:
a 2xx or a handler's own 4xx, i.e. not 401, not an admin-only 403, not an unknown-id 404.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.drills import record
from tests.fake_graph import PHONE_NUMBER_ID, TOKEN, FakeGraph
from tests.server import Api, Server, running_server, wait_until

pytestmark = pytest.mark.sqlite_only(
    "fuzzing is the suite's longest test, and what it finds is in the HTTP layer; the same "
    "routes run on MongoDB in the bad-input and security modules"
)

EXAMPLES = 8
UNKNOWN_ID = frozenset({"instance_not_found", "user_not_found"})
# (method, path) -> the path parameter that names what the operation destroys or changes.
DESTRUCTIVE = {
    ("DELETE", "/api/instances/{instanceId}"): "instance",
    ("POST", "/api/instances/{instanceId}/logout"): "instance",
    ("POST", "/api/whatsapp/{instanceId}/logout"): "instance",
    ("DELETE", "/api/users/{userId}"): "user",
    ("PUT", "/api/users/{userId}"): "user",
}
CLOUD_ROUTES = "/api/cloud/"


@dataclass
class Tally:
    """What the generated requests got back, counted before anything is asserted."""

    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, status: int, code: str | None, public: bool) -> None:
        if status >= 500:
            self.outcomes["5xx"] += 1
        elif status == 401 and not public:  # login's own 401 (wrong password) reached it
            self.outcomes["401"] += 1
        elif status == 403 and code == "forbidden":
            self.outcomes["admin-only 403"] += 1
        elif status == 404 and code in UNKNOWN_ID:
            self.outcomes["unknown-id 404"] += 1
        else:
            self.outcomes["reached"] += 1

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class Run:
    """One signed-in caller, the real things it owns, and how to make more."""

    api: Api
    headers: dict[str, str]
    ids: dict[str, list[str]]  # path parameter -> real values
    phones: list[str]  # real recipients
    victim: Callable[[str], dict[str, str]]  # "instance" or "user" -> fresh path parameters
    graph_url: str

    def path_parameters(self, method: str, path: str, draw: Callable[[Any], Any]) -> dict[str, str]:
        if (method, path) in DESTRUCTIVE:
            return self.victim(DESTRUCTIVE[(method, path)])
        chosen = {name: draw(st.sampled_from(values)) for name, values in self.ids.items()}
        if path.startswith(CLOUD_ROUTES):
            chosen["instanceId"] = self.ids["cloudInstanceId"][0]
        return chosen


def fuzz(url: str, document: dict[str, Any], run: Run, tally: Tally) -> tuple[int, list[str]]:
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=url)
    # Credentials come from the run alone: no generated values for the security schemes.
    schema.config.generation.update(with_security_parameters=False)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            fuzz_operation(operation, run, tally)
        except BaseException as failure:  # a FailureGroup describes every distinct failure
            if isinstance(failure, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(failure)[:1500]}")
    return operations, failures


def fuzz_operation(operation: Any, run: Run, tally: Tally) -> None:
    method, path = operation.method.upper(), operation.path
    public = operation.definition.raw.get("security") == []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), data=st.data())
    def check(case: schemathesis.Case, data: st.DataObject) -> None:
        known = run.path_parameters(method, path, data.draw)
        for name in case.path_parameters or {}:
            case.path_parameters[name] = known.get(name, case.path_parameters[name])
        if case.meta is not None and case.meta.generation.mode.is_positive:
            for container in (case.body, case.query):
                if not isinstance(container, dict) or not isinstance(container.get("phone"), str):
                    continue
                if data.draw(st.booleans()):
                    container["phone"] = data.draw(st.sampled_from(run.phones))
            keep_on_loopback(case.body, run.graph_url)
        response = case.call(headers=run.headers)
        body = _json(response)
        code = body.get("code") if isinstance(body, dict) else None
        tally.add(response.status_code, code, public)
        if (
            path == "/api/auth/api-key"
            and response.status_code == 200
            and "x-api-key" in run.headers
        ):
            run.headers["x-api-key"] = body["apiKey"]  # the old key stops working at once
        case.validate_response(
            response, excluded_checks=[positive_data_acceptance], headers=run.headers
        )

    check()


def keep_on_loopback(body: Any, graph_url: str) -> None:
    """A valid body that would reach beyond 127.0.0.1 is pointed back at it."""
    if not isinstance(body, dict):
        return
    if body.get("engine") == "whatsmeow":
        body["engine"] = "sandbox"
    if isinstance(body.get("cloud"), dict):
        body["cloud"]["graphBaseUrl"] = graph_url


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("fuzz")) as server:
        yield server


@pytest.fixture(scope="module")
def callers(fuzzed_server: Server) -> dict[str, Api]:
    """Every caller signed in before anything is fuzzed: the two sign-in routes
    (`/api/auth/login` and the console's `/api/auth/session`) count the fuzzer's wrong
    passwords against 127.0.0.1, and past the throttle's address limit a later sign-in
    would be refused (429) for its whole window."""
    admin = Api.login(fuzzed_server)
    signed_in = {"admin": admin}
    for credential in ("bearer", "api-key"):
        email = f"fuzz-{credential}@example.com"
        admin.create_user(email, password="fuzz-password")
        signed_in[credential] = Api.login(fuzzed_server, email, "fuzz-password")
    return signed_in


def prepare(
    graph: FakeGraph,
    callers: dict[str, Api],
    role: str,
    credential: str,
    number: int,
) -> Run:
    """A signed-in caller with a paired instance that has chats, an unpaired one, a cloud one."""
    admin = callers["admin"]
    api = admin if role == "admin" else callers[credential]
    base = f"1555009{number}"
    paired, peer = api.create_instance("Fuzzed")["id"], api.create_instance("Peer")["id"]
    api.pair(paired, f"{base}001")
    api.pair(peer, f"{base}002")
    assert api.send(paired, f"{base}002", "hello").status_code == 200
    inbound = api.http.post(
        f"/api/sandbox/instances/{paired}/inbound",
        json={"from": f"{base}777", "message": "hi", "pushName": "Zed"},
    )
    assert inbound.status_code == 200, inbound.text
    unpaired = api.create_instance("Unpaired")["id"]
    api.wait_for_qr(unpaired)
    cloud = api.create_instance(
        "Cloud",
        engine="cloud",
        cloud={
            "phoneNumberId": PHONE_NUMBER_ID,
            "accessToken": TOKEN,
            "appSecret": "fuzz-app-secret",
            "verifyToken": "fuzz-verify",
            "graphBaseUrl": graph.url,
        },
    )["id"]
    wait_until(lambda: api.status(cloud)["ready"])
    me = api.http.get("/api/auth/me").json()["id"]
    if credential == "api-key":
        key = api.http.post("/api/auth/api-key").json()["apiKey"]
        headers = {"x-api-key": key}
    else:
        headers = {"Authorization": api.http.headers["Authorization"]}
    victims = iter(range(1_000_000))

    def victim(kind: str) -> dict[str, str]:
        n = next(victims)
        if kind == "user":
            if role != "admin":
                return {"userId": spare_user}  # answered 403 before anything changes
            created = admin.create_user(f"victim-{role}-{credential}-{n}@example.com")
            return {"userId": created["id"]}
        instance = api.create_instance(f"Victim {n}")["id"]
        api.pair(instance, f"{base}{500 + n:03d}")
        return {"instanceId": instance}

    spare_user = admin.create_user(f"spare-{role}-{credential}@example.com")["id"]
    return Run(
        api=api,
        headers=headers,
        ids={
            "instanceId": [paired, unpaired, cloud],
            "cloudInstanceId": [cloud],
            "chatId": [f"{base}002", f"{base}777", f"{base}777@s.whatsapp.net"],
            "phone": [f"{base}002", f"{base}777"],
            "userId": [spare_user, me],
        },
        phones=[f"{base}002", f"{base}777", f"{base}001"],
        victim=victim,
        graph_url=graph.url,
    )


@pytest.mark.drill("API fuzzing ({role}, {credential})")
@pytest.mark.parametrize(
    ("role", "credential", "number"),
    [("user", "bearer", 1), ("user", "api-key", 2), ("admin", "bearer", 3)],
    ids=["user-bearer", "user-api-key", "admin-bearer"],
)
def test_every_operation_survives_generated_requests(
    fuzzed_server: Server,
    graph: FakeGraph,
    callers: dict[str, Api],
    role: str,
    credential: str,
    number: int,
) -> None:
    run = prepare(graph, callers, role, credential, number)
    document = fuzzed_server.client().get("/openapi.json").json()
    tally = Tally()
    operations, failures = fuzz(fuzzed_server.url, document, run, tally)
    reached = tally.outcomes["reached"]
    share = f"{reached / max(tally.requests, 1):.0%}"
    record(
        operations=operations,
        requests=tally.requests,
        reached_a_handler=f"{reached:,} ({share})",
        **{k.replace(" ", "_"): v for k, v in sorted(tally.outcomes.items()) if k != "reached"},
        failures=len(failures),
    )
    assert operations >= 40
    assert not failures, "\n\n".join(failures)
    assert reached > tally.requests / 2, dict(tally.outcomes)
