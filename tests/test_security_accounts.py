"""A deactivated user's instances stop (status `disabled`) and post nothing to their webhook,
and an administrator's reactivation starts them again, against a real server.

Before, deactivating a user only refused their credentials: their instances stayed
connected, kept receiving messages and kept posting them to the user's webhook, and nobody
could stop them (instance routes answer only their owner).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest

from tests.places import place
from tests.receiver import Receiver
from tests.server import Api, Server, running_server, wait_until

pytestmark = pytest.mark.drill_cases("security cases")

_numbers = itertools.count(1)


DEFAULT_QUOTA = 3


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("accounts")
    with (
        place(request, provider, root) as storage,
        running_server(root, storage, MAX_INSTANCES_PER_USER=str(DEFAULT_QUOTA)) as running,
    ):
        yield running


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def new_user(server: Server, admin: Api) -> tuple[Api, str, str]:
    email = f"owner-{next(_numbers)}-{uuid.uuid4().hex[:6]}@example.com"
    created = admin.create_user(email, password="owner-password-1")
    return Api.login(server, email, "owner-password-1"), created["id"], email


def phone() -> str:
    return f"1555840{next(_numbers):04d}{uuid.uuid4().int % 10}"


def bodies(receiver: Receiver) -> list[str]:
    return [r.json["data"].get("body", "") for r in receiver.received]


def instance_events(admin: Api, instance: str, kind: str) -> list[dict[str, Any]]:
    events = admin.http.get("/api/events", params={"types": kind, "limit": 1000}).json()["events"]
    return [e for e in events if e["aggregateId"] == instance]


def received_by(server: Server, instance: str, text: str) -> bool:
    return any(
        getattr(e, "body", None) == text
        for e in server.stored_events(instance, "Instance.MessageReceived")
    )


def test_a_deactivated_users_instances_stop_and_post_nothing_until_reactivated(
    server: Server, admin: Api, receiver: Receiver
) -> None:
    alice, alice_id, email = new_user(server, admin)
    a_phone, b_phone = phone(), phone()
    a = alice.create_instance("Alice", webhookUrl=receiver.url, webhookEnabled=True)["id"]
    alice.pair(a, a_phone)
    bob, _, _ = new_user(server, admin)
    b = bob.create_instance("Bob")["id"]
    bob.pair(b, b_phone)
    # The control: Bob's message reaches Alice's instance and her webhook.
    assert bob.send(b, a_phone, "before").status_code == 200
    wait_until(lambda: "before" in bodies(receiver))

    assert admin.http.delete(f"/api/users/{alice_id}").status_code == 200
    [disabled] = instance_events(admin, a, "InstanceDisabled")
    assert disabled["data"]["reason"] == "user_deactivated"
    answer = bob.send(b, a_phone, "while away")
    assert answer.status_code == 200, answer.text  # sent to a number nobody is online as
    assert not received_by(server, a, "while away")

    reactivated = admin.http.put(f"/api/users/{alice_id}", json={"active": True})
    assert reactivated.status_code == 200 and reactivated.json()["active"] is True
    alice = Api.login(server, email, "owner-password-1")
    wait_until(lambda: alice.status(a)["status"] == "connected")  # the session was kept
    assert bob.send(b, a_phone, "after").status_code == 200
    wait_until(lambda: "after" in bodies(receiver))
    assert "while away" not in bodies(receiver)
    actions = [
        log["action"] for log in alice.http.get(f"/api/instances/{a}/activity").json()["logs"]
    ]
    assert {"instance_disabled", "instance_enabled"} <= set(actions)


def test_deactivating_through_an_update_stops_instances_and_only_active_can_bring_back(
    server: Server, admin: Api
) -> None:
    alice, alice_id, _ = new_user(server, admin)
    a = alice.create_instance("Alice")["id"]
    alice.pair(a, phone())
    changed = admin.http.put(f"/api/users/{alice_id}", json={"active": False})
    assert changed.status_code == 200 and changed.json()["active"] is False
    assert instance_events(admin, a, "InstanceDisabled")
    # Gone from the user routes, except to be brought back.
    assert admin.http.get(f"/api/users/{alice_id}").status_code == 404
    assert admin.http.put(f"/api/users/{alice_id}", json={"firstName": "X"}).status_code == 404
    me = admin.http.get("/api/auth/me").json()["id"]
    refused = admin.http.put(f"/api/users/{me}", json={"active": False})
    assert refused.status_code == 400 and refused.json()["code"] == "cannot_delete_self"
    back = admin.http.put(f"/api/users/{alice_id}", json={"active": True, "firstName": "Back"})
    assert back.status_code == 200 and back.json()["firstName"] == "Back"
    assert instance_events(admin, a, "InstanceEnabled")


def test_an_instance_out_of_step_with_its_owner_is_stopped_at_start(
    fresh_server: Server,
) -> None:
    """A crash between storing a user's deactivation and stopping their instances leaves a
    running instance of a deactivated user; the next start stops it. The test stores the
    deactivation the way the crashed server would have, then starts the server."""
    admin = Api.login(fresh_server)
    alice, alice_id, _ = new_user(fresh_server, admin)
    a = alice.create_instance("Alice")["id"]
    alice.pair(a, phone())
    fresh_server.stop()

    with fresh_server.event_store() as store:
        user = store.repository.get(UUID(alice_id))
        user.deactivate()
        store.save(user)

    fresh_server.start()
    admin = Api.login(fresh_server)
    wait_until(lambda: instance_events(admin, a, "InstanceDisabled"), timeout=15)
    # And a restart keeps it stopped (it does not connect at start).
    fresh_server.restart()
    admin = Api.login(fresh_server)
    requested = instance_events(admin, a, "ConnectionRequested")
    disabled = instance_events(admin, a, "InstanceDisabled")
    assert requested[-1]["position"] < disabled[-1]["position"]


def test_every_user_has_an_instance_quota_by_default(server: Server, admin: Api) -> None:
    """MAX_INSTANCES_PER_USER (100; 3 on this server) applies to everyone without a limit
    of their own, concurrent requests included; an administrator can raise it per user."""
    alice, alice_id, _ = new_user(server, admin)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(
                lambda n: alice.http.post(
                    "/api/instances", json={"name": f"Rush {n}", "engine": "sandbox"}
                ),
                range(6),
            )
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * DEFAULT_QUOTA + [429] * (6 - DEFAULT_QUOTA), statuses
    refused = next(a for a in answers if a.status_code == 429).json()
    assert refused["code"] == "quota_exceeded" and f"at most {DEFAULT_QUOTA}" in refused["error"]
    assert len(alice.http.get("/api/instances").json()["instances"]) == DEFAULT_QUOTA

    raised = admin.http.put(f"/api/users/{alice_id}", json={"limits": {"maxInstances": 4}})
    assert raised.status_code == 200, raised.text
    assert alice.http.post("/api/instances", json={"name": "Fourth"}).status_code == 201
    assert alice.http.post("/api/instances", json={"name": "Fifth"}).status_code == 429
    # null takes the user's own limit away: the server's default applies again.
    assert (
        admin.http.put(
            f"/api/users/{alice_id}", json={"limits": {"maxInstances": None}}
        ).status_code
        == 200
    )
    assert alice.http.post("/api/instances", json={"name": "Sixth"}).status_code == 429
