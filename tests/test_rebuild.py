"""rebuild-projections gives read models identical to the live ones, and is safe to interrupt:
through the real server (SQLite), and on every read-model provider against the store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.eventstore import EventStore
from domain.instance import Instance
from domain.user import User
from domain.webhook import WebhookLog
from projections import catalog
from projections import rebuild as rebuild_module
from projections.runner import LiveProjections
from storage.sqlite.read_models import ReadModelStore
from tests.places import Storage
from tests.server import Api, Server, wait_until

# The server tests here inspect SQLite read-model files (the rebuilt file, its journal mode);
# the rebuild itself, and the command, run on every provider below.
SERVER_ON_SQLITE = pytest.mark.sqlite_only("the server tests inspect SQLite read-model files")


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a read-model file, rows sorted (tracking included)."""
    db = sqlite3.connect(path)
    try:
        tables = [
            t
            for (t,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
            )
        ]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        db.close()


def serving(server: Server) -> Path:
    return ReadModelStore(server.root / "data" / "whatsapp-api-read.db").current_file()


def workload(server: Server) -> tuple[Api, str, str]:
    admin = Api.login(server)
    admin.create_user("rebuild@example.com", password="rebuild-password", firstName="Re")
    user = Api.login(server, "rebuild@example.com", "rebuild-password")
    a = user.create_instance("A")["id"]
    b = user.create_instance("B", webhookUrl="http://127.0.0.1:9/x")["id"]
    user.pair(a, "15552220001")
    user.pair(b, "15552220002")
    for i in range(5):
        assert user.send(a, "15552220002", f"m{i}").status_code == 200
    user.http.post(
        f"/api/sandbox/instances/{b}/inbound",
        json={"from": "15557770001", "message": "x", "pushName": "Q"},
    )
    user.http.put(
        f"/api/instances/{b}", json={"name": "B2", "webhookSettings": {"notifyRead": True}}
    )
    user.http.post(f"/api/sandbox/instances/{a}/drop")
    wait_until(lambda: user.status(a)["ready"])
    c = user.create_instance("C")["id"]
    user.http.delete(f"/api/instances/{c}")
    return user, a, b


def rebuild_cli(server: Server, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "rebuild-projections", *names],
        env=server.env,
        cwd=server.root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settled(server: Server) -> dict[str, list[tuple[Any, ...]]]:
    """The live read models once they have caught up with the event store."""
    head = (
        sqlite3.connect(server.root / "data" / "whatsapp-api.db")
        .execute("SELECT MAX(rowid) FROM stored_events")
        .fetchone()[0]
    )
    wait_until(lambda: dict(dump(serving(server))["tracking"]).get(catalog.TRACKING_NAME) == head)
    return dump(serving(server))


@SERVER_ON_SQLITE
def test_rebuild_while_serving_is_identical_and_the_server_carries_on(fresh_server: Server) -> None:
    user, a, _ = workload(fresh_server)
    before_file = serving(fresh_server)
    before = settled(fresh_server)
    assert len(before["messages"]) == 11  # 5 sent by A, 5 received by B, 1 inbound

    result = rebuild_cli(fresh_server)
    assert result.returncode == 0, result.stderr
    assert "rebuilt all read models" in result.stdout

    after_file = serving(fresh_server)
    assert after_file != before_file and not before_file.exists()
    assert dump(after_file) == before
    journal = sqlite3.connect(after_file).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"  # built without a journal, served as every read-model file

    # The running server reads and writes the new file from now on.
    assert user.send(a, "15552220002", "after the rebuild").status_code == 200
    history = user.http.get(f"/api/instances/{a}/chats/15552220002/messages").json()
    assert history["messages"][0]["content"] == "after the rebuild"
    assert dump(after_file)["messages"] != before["messages"]


@SERVER_ON_SQLITE
def test_rebuilding_some_read_models_keeps_the_others(fresh_server: Server) -> None:
    workload(fresh_server)
    before = settled(fresh_server)
    result = rebuild_cli(fresh_server, "usage", "messages")
    assert result.returncode == 0, result.stderr
    assert dump(serving(fresh_server)) == before
    assert rebuild_cli(fresh_server, "nonsense").returncode == 2


@SERVER_ON_SQLITE
def test_an_interrupted_rebuild_leaves_the_old_read_models_in_service(
    fresh_server: Server, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload(fresh_server)
    fresh_server.stop()  # stores the API call counts, caught up by the read models
    live_file = serving(fresh_server)
    before = dump(live_file)
    monkeypatch.setattr(rebuild_module, "PAGE", 5)  # several pages, so it stops half-way

    def interrupt(position: int, head: int) -> None:
        if position >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild_module.rebuild(storage.event_store(), storage.read_models(), (), interrupt)
    assert serving(fresh_server) == live_file
    assert dump(live_file) == before
    assert not list((fresh_server.root / "data").glob("*.building*"))


# -- on every read-model provider, without a server ----------------------------------------


def fill(store: EventStore, instances: int = 3, messages: int = 8) -> None:
    """Users, instances, messages with receipts, contacts, webhook outcomes and usage."""
    user = User(
        email="r@example.com",
        password_hash="x",
        first_name="R",
        last_name="S",
        role="user",
        api_key_hash="h",
        api_key_sealed="s",
    )
    store.save(user)
    for n in range(instances):
        instance = Instance(
            user_id=str(user.id),
            name=f"I{n}",
            description="",
            engine="sandbox",
            webhook={"url": "http://127.0.0.1:9/h"},
            engine_settings={},
        )
        log = WebhookLog(str(instance.id))
        instance.open_connection(f"1555000{n}", None)
        store.save(instance, log)
        for m in range(messages):
            peer = f"1666000{m % 3}@s.whatsapp.net"
            instance.record_sent(f"M{m}", peer, "text", f"m{m}", None, m, None)
            instance.record_received(f"R{m}", peer, "Zed", "text", "hi", None, m)
            instance.record_status(f"M{m}", "read", peer, True)
            log.delivered(
                instance_id=str(instance.id),
                position=m,
                event_type="message_sent",
                delivery_id=f"d{m}",
                attempts=1,
                status_code=200,
                replay=False,
            )
            store.save(instance, log)


def catch_up(events: EventStore, live: Any) -> None:
    """Run the live projections into `live` until they reach the store's last event."""
    projections = LiveProjections(events, catalog.build(live), catalog.TRACKING_NAME)
    projections.start()
    try:
        assert projections.wait(events.recorder.max_notification_id() or 0, timeout=20)
    finally:
        projections.stop()


@pytest.fixture()
def events(storage: Storage) -> EventStore:
    return storage.event_store()


def test_a_rebuild_while_events_arrive_misses_nothing_and_repeats_nothing(
    events: EventStore,
    storage: Storage,
) -> None:
    fill(events)
    live = storage.read_models()
    projections = LiveProjections(events, catalog.build(live), catalog.TRACKING_NAME)
    projections.start()
    before = storage.serving()
    stop = threading.Event()

    def keep_writing() -> None:  # the server carries on during the rebuild
        user = User(
            email="w@example.com",
            password_hash="x",
            first_name="W",
            last_name="",
            role="user",
            api_key_hash="w",
            api_key_sealed="s",
        )
        instance = Instance(
            user_id=str(user.id),
            name="W",
            description="",
            engine="sandbox",
            webhook={},
            engine_settings={},
        )
        instance.open_connection("15559990000", None)
        events.save(user, instance)
        n = 0
        while not stop.is_set():
            n += 1
            instance.record_sent(f"W{n}", "16660009999@s.whatsapp.net", "text", "w", None, n, None)
            events.save(instance)
            time.sleep(0.005)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        rebuild_module.rebuild(events, storage.read_models())
    finally:
        stop.set()
        writer.join()
    try:
        head = events.recorder.max_notification_id() or 0
        assert projections.wait(head, timeout=20), projections.error
        assert storage.serving() != before
        live_rows = storage.dump()
        assert storage.tracked(catalog.TRACKING_NAME) == head
    finally:
        projections.stop()
        live.close()
    # What the live projection wrote after the swap equals a rebuild from scratch.
    rebuild_module.rebuild(events, storage.read_models())
    assert storage.dump() == live_rows
    assert not storage.leftovers()


def test_rebuilding_some_read_models_copies_the_others(
    events: EventStore,
    storage: Storage,
) -> None:
    fill(events)
    live = storage.read_models()
    catch_up(events, live)
    rebuild_module.rebuild(events, live)  # now the read models carry the signature
    before = storage.dump()
    rebuild_module.rebuild(events, storage.read_models(), ["usage", "messages"])
    assert storage.dump() == before
    with pytest.raises(ValueError, match="unknown read model"):
        rebuild_module.rebuild(events, live, ["nonsense"])
    live.close()


def test_an_interrupted_rebuild_leaves_the_old_read_models_answering(
    events: EventStore,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill(events)
    live = storage.read_models()
    projections = LiveProjections(events, catalog.build(live), catalog.TRACKING_NAME)
    projections.start()
    try:
        assert projections.wait(events.recorder.max_notification_id() or 0, timeout=20)
        serving, before = storage.serving(), storage.dump()
        monkeypatch.setattr(rebuild_module, "PAGE", 5)  # several pages, so it stops half-way

        def interrupt(position: int, head: int) -> None:
            if position >= 10:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            rebuild_module.rebuild(events, storage.read_models(), (), interrupt)
        assert storage.serving() == serving
        assert storage.dump() == before
        assert not storage.leftovers()

        # A rebuild killed outright cannot clean up: the next one does.
        killed = storage.read_models().building()
        killed.store.ensure(catalog.TABLES)
        storage.abandon(killed)
        assert storage.leftovers()
        # The live projection still writes where the readers look.
        instance = Instance(
            user_id="u",
            name="after",
            description="",
            engine="sandbox",
            webhook={},
            engine_settings={},
        )
        position = events.save(instance)[-1].notification.id
        assert projections.wait(position, timeout=20)
        assert storage.rows("instances", id=str(instance.id))
    finally:
        projections.stop()
        live.close()
    rebuild_module.rebuild(events, storage.read_models())
    assert not storage.leftovers()
    assert storage.rows("instances", id=str(instance.id))


def test_the_command_rebuilds_the_read_models_of_the_configured_storage(
    events: EventStore, storage: Storage
) -> None:
    fill(events, instances=2, messages=3)
    catch_up(events, storage.read_models())
    before = storage.dump(meta=False)
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "rebuild-projections"],
        env={**os.environ, **storage.env()},
        cwd=storage.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "rebuilt all read models" in result.stdout
    assert storage.serving() in result.stdout
    assert storage.dump(meta=False) == before
