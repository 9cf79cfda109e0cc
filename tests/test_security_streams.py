"""Live audit streams (server-sent events) against a real server: they end the moment the
caller's access does, and many of them cost the server one feed, not a store read each.

A stream used to check access once, when it opened: a demoted or deactivated administrator
kept receiving every tenant's messages, an expired token kept its stream, and every open
stream read the store again for every event stored anywhere, without a limit on how many
one user could open.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import jwt
import pytest

from app import streams as streams_module
from app.streams import EventStreams
from domain.instance import Instance
from projections import catalog
from projections.runner import LiveProjections
from tests.places import Storage, place
from tests.server import Api, Server, running_server, wait_until
from tests.sse import SseReader

pytestmark = pytest.mark.drill_cases("security cases")

PER_USER = 3
PER_SERVER = 10
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("streams")
    with (
        place(request, provider, root) as storage,
        running_server(
            root,
            storage,
            MAX_EVENT_STREAMS_PER_USER=str(PER_USER),
            MAX_EVENT_STREAMS=str(PER_SERVER),
        ) as running,
    ):
        yield running


def new_user(server: Server, admin: Api, role: str = "user") -> tuple[Api, str]:
    email = f"watcher-{next(_numbers)}-{uuid.uuid4().hex[:6]}@example.com"
    created = admin.create_user(email, password="watcher-password", role=role)
    return Api.login(server, email, "watcher-password"), created["id"]


def head(server: Server) -> int:
    return int(httpx.get(server.url + "/health").json()["checks"]["eventStore"]["position"])


def metric(admin: Api, name: str) -> float:
    for line in admin.http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"/metrics has no {name}")


@contextmanager
def watching(
    server: Server, path: str, headers: dict[str, str], after: int | None = None
) -> Iterator[SseReader]:
    params = {"after": str(after)} if after is not None else {}
    with httpx.stream(
        "GET",
        server.url + path,
        params=params,
        headers={**headers, "Accept": "text/event-stream"},
        timeout=10,
    ) as response:
        yield SseReader(response)


def auth(api: Api) -> dict[str, str]:
    return {"Authorization": api.http.headers["Authorization"]}


def no_streams_open(admin: Api) -> None:
    """Streams of earlier tests are given back once their clients leave."""
    wait_until(lambda: metric(admin, "whatsapp_event_streams") == 0)


# -- access is checked again on every batch --------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            lambda admin, user_id: admin.http.put(f"/api/users/{user_id}", json={"role": "user"}),
            "forbidden",
        ),
        (lambda admin, user_id: admin.http.delete(f"/api/users/{user_id}"), "unauthorized"),
    ],
    ids=["demoted", "deactivated"],
)
def test_an_administrators_stream_of_every_event_ends_with_their_access(
    server: Server, admin: Api, change: Any, code: str
) -> None:
    watcher, watcher_id = new_user(server, admin, role="admin")
    with watching(server, "/api/events", auth(watcher), after=head(server)) as events:
        # The control: the stream shows what happens anywhere now.
        admin.create_user(f"bystander-{uuid.uuid4().hex[:6]}@example.com")
        assert events.next()["data"]["type"] == "UserRegistered"

        assert change(admin, watcher_id).status_code == 200
        rest = events.rest()
    assert events.ended
    assert [e.get("event") for e in rest] == ["end"], rest  # nothing after the change
    assert rest[0]["data"]["code"] == code
    # And the way back in is closed too.
    again = httpx.get(
        server.url + "/api/events", headers={**auth(watcher), "Accept": "text/event-stream"}
    )
    assert again.status_code in (401, 403)


def test_a_stream_ends_when_its_token_expires(server: Server, admin: Api) -> None:
    user, user_id = new_user(server, admin)
    instance = user.create_instance("Expiring")["id"]
    now = int(time.time())
    token = jwt.encode(
        {"sub": user_id, "role": "user", "iat": now, "exp": now + 3},
        server.env["JWT_SECRET"],
        algorithm="HS256",
    )
    with watching(
        server, f"/api/instances/{instance}/events", {"Authorization": f"Bearer {token}"}
    ) as events:
        assert events.next()["data"]["type"] == "InstanceCreated"
        rest = events.rest()  # nothing happens on this instance: the expiry alone ends it
    assert events.ended and rest[-1]["event"] == "end", rest
    assert rest[-1]["data"]["code"] == "unauthorized" and "expired" in rest[-1]["data"]["error"]


def deactivate_user(admin: Api, user: Api, user_id: str, instance: str) -> httpx.Response:
    return admin.http.delete(f"/api/users/{user_id}")


def delete_instance(admin: Api, user: Api, user_id: str, instance: str) -> httpx.Response:
    return user.http.delete(f"/api/instances/{instance}")


def change_password(admin: Api, user: Api, user_id: str, instance: str) -> httpx.Response:
    return user.http.post(
        "/api/auth/password",
        json={"currentPassword": "watcher-password", "newPassword": "watcher-password-2"},
    )


def rotate_api_key(admin: Api, user: Api, user_id: str, instance: str) -> httpx.Response:
    return user.http.post("/api/auth/api-key", json={"currentPassword": "watcher-password"})


@pytest.mark.parametrize(
    ("change", "by_key", "code"),
    [
        (deactivate_user, False, "unauthorized"),
        (deactivate_user, True, "unauthorized"),
        (delete_instance, False, "instance_not_found"),
        (change_password, False, "unauthorized"),
        (rotate_api_key, True, "unauthorized"),
    ],
    ids=[
        "user-deactivated",
        "user-deactivated-key",
        "instance-deleted",
        "password-changed",
        "api-key-rotated",
    ],
)
def test_an_instance_stream_ends_with_its_owners_access(
    server: Server, admin: Api, change: Any, by_key: bool, code: str
) -> None:
    user, user_id = new_user(server, admin)
    instance = user.create_instance("Watched")["id"]
    credentials = auth(user)
    if by_key:
        signed_in = server.client().post(
            "/api/auth/login",
            json={
                "email": user.http.get("/api/auth/me").json()["email"],
                "password": "watcher-password",
            },
        )
        credentials = {"x-api-key": signed_in.json()["user"]["apiKey"]}
    with watching(server, f"/api/instances/{instance}/events", credentials) as events:
        assert events.next()["data"]["type"] == "InstanceCreated"
        assert change(admin, user, user_id, instance).status_code == 200
        rest = events.rest()
    assert events.ended and rest[-1]["event"] == "end", rest
    assert rest[-1]["data"]["code"] == code


# -- how many, and at what cost ----------------------------------------------------------------


def test_streams_are_capped_per_user(server: Server, admin: Api) -> None:
    no_streams_open(admin)
    user, _ = new_user(server, admin)
    instance = user.create_instance("Popular")["id"]
    path = f"/api/instances/{instance}/events"
    with ExitStack() as stack:
        opened = [stack.enter_context(watching(server, path, auth(user))) for _ in range(PER_USER)]
        for events in opened:
            assert events.next()["data"]["type"] == "InstanceCreated"
        refused = httpx.get(
            server.url + path, headers={**auth(user), "Accept": "text/event-stream"}
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "too_many_streams"
        assert refused.headers["Retry-After"] == "5"
        # Paging through the history is not a stream, and is not capped.
        assert user.http.get(path).status_code == 200
    # Closed streams give their places back.
    no_streams_open(admin)
    with watching(server, path, auth(user)) as events:
        assert events.next()["data"]["type"] == "InstanceCreated"


def test_streams_are_capped_per_server(server: Server, admin: Api) -> None:
    no_streams_open(admin)
    users = [new_user(server, admin)[0] for _ in range(PER_SERVER // PER_USER + 1)]
    paths = [f"/api/instances/{u.create_instance('Crowded')['id']}/events" for u in users]
    with ExitStack() as stack:
        pairs = itertools.islice(itertools.cycle(zip(users, paths, strict=True)), PER_SERVER)
        for user, path in pairs:
            stack.enter_context(watching(server, path, auth(user)))
        # A user under their own cap is refused: the server has as many as it allows.
        last_user, last_path = users[-1], paths[-1]
        refused = httpx.get(
            server.url + last_path, headers={**auth(last_user), "Accept": "text/event-stream"}
        )
        assert refused.status_code == 429 and refused.json()["code"] == "too_many_streams"
        assert "server" in refused.json()["error"]


def test_many_streams_share_one_feed(server: Server, admin: Api) -> None:
    """Live events reach every stream without a store read per stream, each decoded once."""
    no_streams_open(admin)
    users = [new_user(server, admin)[0] for _ in range(3)]
    instances = []
    for user in users:
        instance = user.create_instance("Busy")["id"]
        user.pair(instance, f"155577{next(_numbers):05d}")
        instances.append(instance)
    start = head(server)
    with ExitStack() as stack:
        readers = [
            (user, instance, stack.enter_context(watching(server, path, auth(user), after=start)))
            for user, instance in zip(users, instances, strict=True)
            for path in [f"/api/instances/{instance}/events"] * PER_USER
        ]
        # Each stream read the store once, to catch up from `after`.
        wait_until(lambda: metric(admin, "whatsapp_event_stream_store_reads_total") >= 9)
        reads = metric(admin, "whatsapp_event_stream_store_reads_total")
        decoded = metric(admin, "whatsapp_event_stream_decoded_total")

        for user, instance in zip(users, instances, strict=True):
            for n in range(5):
                assert user.send(instance, "15557009999", f"busy {n}").status_code == 200
        for user, instance, events in readers:
            stored = user.http.get(
                f"/api/instances/{instance}/events", params={"after": start}
            ).json()["events"]
            got = events.until(stored[-1]["position"])
            assert [e["id"] for e in got] == [e["position"] for e in stored]  # all, once, in order
        moved = head(server) - start

        assert metric(admin, "whatsapp_event_stream_store_reads_total") == reads
        # Each new event was decoded at most once for nine streams.
        assert metric(admin, "whatsapp_event_stream_decoded_total") - decoded <= moved


# -- a slow client falls back to the store ----------------------------------------------------


def test_a_stream_that_falls_behind_reads_what_it_missed_from_the_store(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that stops reading cannot make the server hold events without bound: past
    BUFFER they are dropped and read back from the store, with nothing lost or repeated."""
    monkeypatch.setattr(streams_module, "BUFFER", 5)
    store = storage.event_store()
    read_models = storage.read_models()
    projections = LiveProjections(store, catalog.build(read_models), catalog.TRACKING_NAME)
    projections.start()
    try:

        async def scenario() -> tuple[list[int], list[int], int]:
            hub = EventStreams(store, projections, per_user=1, total=1)
            instance = Instance("u", "Slow", "", "sandbox", {}, {})
            store.save(instance)
            stream = hub.open("u", instance.id, [], 0, lambda: None)
            events = hub.events(stream)
            assert await anext(events) == "retry: 2000\n\n"
            received = [int((await anext(events)).split("\n", 1)[0][4:])]  # InstanceCreated
            for n in range(12):  # stored while the client reads nothing
                instance.update({"name": f"Slow {n}"})
                store.save(instance)
            await asyncio.wait_for(_until(lambda: stream.behind), 10)
            while len(received) < 13:
                received.append(
                    int((await asyncio.wait_for(anext(events), 10)).split("\n", 1)[0][4:])
                )
            hub.close(stream)
            stored = [
                n.id for n in store.recorder.select_originator_notifications(instance.id, 0, 100)
            ]
            return received, stored, hub.store_reads

        received, stored, reads = asyncio.run(scenario())
    finally:
        projections.stop()
    assert received == stored
    assert reads == 2  # catching up when it opened, and once after it fell behind


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)
