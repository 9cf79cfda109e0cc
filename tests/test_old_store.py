"""Data stored by an earlier version opens unchanged: same topics, same answers.

`tests/fixtures/old_store/` holds what a server of commit 1d7d2ae stored (SQLite files; a
dump of its MongoDB databases) and what it answered about it, made by
`tests/fixtures/make_old_store.py`. Committed bytes, not data made by today's code: the
point is that today's code reads what yesterday's wrote (every event topic, the
snapshots, the read models, the webhook cursors, the position counter).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.make_old_store import ALICE, answers
from tests.places import Storage
from tests.server import Api, Server

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "old_store"


def restore(url: str, database: str, dump: dict[str, dict[str, list[Any]]]) -> None:
    """Put the dumped documents back, each database under `database` + its suffix."""
    from bson import json_util
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(url)
    try:
        for suffix, collections in dump.items():
            for name, documents in collections.items():
                client[database + suffix].create_collection(name)
                if documents:
                    client[database + suffix][name].insert_many(
                        json_util.loads(json.dumps(documents))
                    )
    finally:
        client.close()


@pytest.fixture()
def old_server(storage: Storage) -> Any:
    """A server of today over a copy of what the old one stored, and what it answered."""
    source = FIXTURE / storage.name
    shutil.copytree(source / "instances", storage.root / "instances")
    if storage.name == "sqlite":
        shutil.copytree(source / "data", storage.root / "data", dirs_exist_ok=True)
    else:
        assert storage.mongodb_url is not None and storage.database is not None
        dump = json.loads((source / "dump.json").read_text())
        restore(storage.mongodb_url, storage.database, dump)
    server = Server(storage.root, storage)
    server.start()
    try:
        yield server, json.loads((source / "answers.json").read_text())
    finally:
        server.stop()


GAINED_DEFAULTS = {("MessageSent", "origin"): "api"}


def assert_same(now: dict[str, Any], then: dict[str, Any]) -> None:
    """What the old server answered, answered again (a restart adds its own events)."""
    assert now["users"] == then["users"]
    # Chat history rows gained fields since (replies, reactions, edits, identity): the old
    # ones answer as before, the new ones say nothing happened to the old messages.
    assert now["chat"]["pagination"] == then["chat"]["pagination"]
    assert len(now["chat"]["messages"]) == len(then["chat"]["messages"])
    for new, old in zip(now["chat"]["messages"], then["chat"]["messages"], strict=True):
        assert {k: v for k, v in new.items() if k in old} == old
        gained = {k: v for k, v in new.items() if k not in old}
        assert gained == {
            "sender": None,
            "phone": new["remoteJid"].split("@")[0],  # the number its chat is named by
            "lid": None,
            "quotedMessageId": None,
            "reactions": [],
            "edited": False,
            "revoked": False,
        }
    assert now["contacts"] == then["contacts"]
    old_events = then["audit"]["events"]
    shown = now["audit"]["events"][: len(old_events)]
    assert [(e["position"], e["type"]) for e in shown] == [
        (e["position"], e["type"]) for e in old_events
    ]
    # The same data, plus the fields events gained since, at their defaults: None, no
    # mentions or group recipients, a received message's chat is its sender's, and a sent
    # message came through the API (every message sent before was).
    for new, old in zip(shown, old_events, strict=True):
        assert {k: v for k, v in new.items() if k != "data"} == {
            k: v for k, v in old.items() if k != "data"
        }
        assert {k: v for k, v in new["data"].items() if k in old["data"]} == old["data"]
        gained = {k: v for k, v in new["data"].items() if k not in old["data"]}
        if "chat" in gained and new["type"] == "MessageReceived":
            assert gained.pop("chat") == old["data"]["sender"]
        for (kind, field), default in GAINED_DEFAULTS.items():
            if kind == new["type"] and field in gained:
                assert gained.pop(field) == default, new
        assert all(v in (None, []) for v in gained.values()), new
    for kind, key in (("deliveries", "deliveries"), ("activity", "logs")):
        listed = {row["id"]: row for row in now[kind][key]}
        assert [listed.get(row["id"]) for row in then[kind][key]] == then[kind][key], kind

    def steady(instance: dict[str, Any]) -> dict[str, Any]:
        # `node`: on MongoDB the server runs as a cluster of one, which says where each runs.
        return {k: v for k, v in instance.items() if k not in ("updatedAt", "node")}

    assert [steady(i) for i in now["instances"]["instances"]] == [
        steady(i) for i in then["instances"]["instances"]
    ]
    for counter in ("messagesSent", "messagesReceived", "mediaSent", "instanceCount"):
        assert now["stats"]["total"][counter] == then["stats"]["total"][counter], counter


def test_a_store_written_by_the_previous_version_opens_unchanged(old_server: Any) -> None:
    server, then = old_server
    ids = then["ids"]

    # Every stored event keeps its topic and is read back as the same domain event.
    stored = server.stored_events()
    topics = [f"{type(e).__module__}:{type(e).__qualname__}" for e in stored]
    assert topics[: len(then["topics"])] == then["topics"]

    # The server answers as the old one did (from its read models, or, where the projections
    # have changed since, from read models it rebuilt at start from the old events).
    assert_same(answers(server, ids), then)

    # Rebuilt from the old events by today's projections, they answer the same again.
    rebuilt = subprocess.run(
        [sys.executable, "-m", "app.cli", "rebuild-projections"],
        env=server.env,
        cwd=server.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert_same(answers(server, ids), then)

    # And the store takes new events after the old ones (snapshots and positions agree).
    alice = Api.login(server, *ALICE)
    answer = alice.send(ids["shop"], "15550000002", "after the upgrade")
    assert answer.status_code == 200, answer.text
    chat = alice.http.get(f"/api/instances/{ids['shop']}/chats/15550000002/messages").json()
    assert chat["messages"][0]["messageId"] == answer.json()["id"]
