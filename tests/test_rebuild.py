"""rebuild-projections gives read models identical to the live ones, and is safe to interrupt."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import rebuild as rebuild_module
from app.eventstore import EventStore, sqlite_env
from projections import catalog
from projections.store import ReadModelStore
from tests.server import Api, Server, wait_until


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a read-model file, rows sorted (tracking included)."""
    db = sqlite3.connect(path)
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
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
    user.http.post(f"/api/sandbox/instances/{b}/inbound", json={"from": "15557770001", "message": "x", "pushName": "Q"})
    user.http.put(f"/api/instances/{b}", json={"name": "B2", "webhookSettings": {"notifyRead": True}})
    user.http.post(f"/api/sandbox/instances/{a}/drop")
    wait_until(lambda: user.status(a)["ready"])
    c = user.create_instance("C")["id"]
    user.http.delete(f"/api/instances/{c}")
    return user, a, b


def rebuild_cli(server: Server, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "rebuild-projections", *names],
        env=server.env, cwd=server.root, capture_output=True, text=True, timeout=120,
    )


def settled(server: Server) -> dict[str, list[tuple[Any, ...]]]:
    """The live read models once they have caught up with the event store."""
    head = sqlite3.connect(server.root / "data" / "whatsapp-api.db").execute(
        "SELECT MAX(rowid) FROM stored_events").fetchone()[0]
    wait_until(lambda: dict(dump(serving(server))["tracking"]).get(catalog.TRACKING_NAME) == head)
    return dump(serving(server))


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

    # The running server reads and writes the new file from now on.
    assert user.send(a, "15552220002", "after the rebuild").status_code == 200
    history = user.http.get(f"/api/instances/{a}/chats/15552220002/messages").json()
    assert history["messages"][0]["content"] == "after the rebuild"
    assert dump(after_file)["messages"] != before["messages"]


def test_rebuilding_some_read_models_keeps_the_others(fresh_server: Server) -> None:
    workload(fresh_server)
    before = settled(fresh_server)
    result = rebuild_cli(fresh_server, "usage", "messages")
    assert result.returncode == 0, result.stderr
    assert dump(serving(fresh_server)) == before
    assert rebuild_cli(fresh_server, "nonsense").returncode == 2


def test_an_interrupted_rebuild_leaves_the_old_read_models_in_service(
    fresh_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload(fresh_server)
    fresh_server.stop()  # stores the API call counts, caught up by the read models
    live_file = serving(fresh_server)
    before = dump(live_file)
    monkeypatch.setattr(rebuild_module, "PAGE", 5)  # several pages, so it stops half-way

    def interrupt(position: int, head: int) -> None:
        if position >= 10:
            raise KeyboardInterrupt

    store = EventStore(env=sqlite_env(str(fresh_server.root / "data" / "whatsapp-api.db")))
    live = ReadModelStore(fresh_server.root / "data" / "whatsapp-api-read.db")
    try:
        with pytest.raises(KeyboardInterrupt):
            rebuild_module.rebuild(store, live, (), interrupt)
    finally:
        store.close()
        live.close()
    assert serving(fresh_server) == live_file
    assert dump(live_file) == before
    assert not list((fresh_server.root / "data").glob("*.building*"))
