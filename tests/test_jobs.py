"""Scheduled jobs and quotas."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pykka
import pytest
from freezegun import freeze_time

from actors.engines.base import Banned
from actors.engines.sandbox import SandboxEngine, sandbox_engine
from actors.engines.sandbox_network import SandboxGroups, SandboxNetwork
from actors.instance import InstanceActor
from app.eventstore import EventStore, GroupCommitter
from app.jobs import cleanup_uploads
from app.scheduler import next_delay, run_job
from domain.instance import Instance
from storage.sqlite.events import environment as sqlite_env
from tests.server import Api, Server, wait_until


def test_cron_delays_follow_the_calendar() -> None:
    with freeze_time("2026-01-01T00:04:30Z"):
        assert next_delay("*/5 * * * *", datetime.now(UTC)) == 30
        assert next_delay("0 0 * * *", datetime.now(UTC)) == 24 * 3600 - 270
        assert next_delay("0 12 * * *", datetime.now(UTC)) == 12 * 3600 - 270


def test_a_failing_job_is_logged_and_does_not_stop_the_scheduler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        asyncio.run(run_job("flaky", flaky))
        asyncio.run(run_job("flaky", flaky))
    assert len(runs) == 2
    assert "job flaky failed" in caplog.text


def test_cleanup_removes_only_files_past_the_retention(tmp_path: Path) -> None:
    old, new = tmp_path / "old.jpg", tmp_path / "new.jpg"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    assert cleanup_uploads(tmp_path, retention_days=30) == 0
    with freeze_time(datetime.fromtimestamp(time.time() + 25 * 86400, UTC)):
        assert cleanup_uploads(tmp_path, retention_days=30) == 1
    assert not old.exists() and new.exists()


@pytest.fixture()
def actor(tmp_path: Path) -> Iterator[tuple[Any, Instance, SandboxNetwork]]:
    """A sandbox instance actor over a real event store, paired as 15550004444."""
    store = EventStore(env=sqlite_env(str(tmp_path / "es.db")))
    committer = GroupCommitter(store)
    network = SandboxNetwork(SandboxGroups(store.repository.get, committer.commit))
    instance = Instance(
        user_id="u", name="Jobs", description="", engine="sandbox", webhook={}, engine_settings={}
    )
    committer.commit(instance.collect_events())
    engines: list[SandboxEngine] = []

    def make(aggregate: Instance, emit: Any) -> SandboxEngine:
        engines.append(sandbox_engine(network, aggregate, emit))
        return engines[-1]

    ref = InstanceActor.start(instance.id, store.repository.get, committer, make, lambda *_: None)
    proxy = ref.proxy()
    wait_until(lambda: proxy.state().get()["hasQr"])
    try:
        yield proxy, instance, network
    finally:
        pykka.ActorRegistry.stop_all()
        committer.close()
        store.close()


def test_expired_qr_codes_are_dropped(actor: tuple[Any, Instance, SandboxNetwork]) -> None:
    proxy, _, _ = actor
    assert proxy.expire_qr(3600).get() is False
    assert proxy.expire_qr(0).get() is True
    assert proxy.state().get()["hasQr"] is False


def test_a_connected_but_dead_session_is_reconnected(
    actor: tuple[Any, Instance, SandboxNetwork],
) -> None:
    proxy, _, network = actor
    proxy.sandbox_scan("15550004444").get()
    wait_until(lambda: proxy.state().get()["ready"])
    assert proxy.check_connection().get() is False  # healthy: nothing to do
    engine = network.find("15550004444")
    network.leave("15550004444", engine)  # the line died without a word
    assert proxy.check_connection().get() is True
    wait_until(lambda: proxy.state().get()["ready"] and network.find("15550004444") is engine)


def test_an_expired_ban_reconnects_and_a_lost_session_logs_out(
    actor: tuple[Any, Instance, SandboxNetwork],
) -> None:
    proxy, _, network = actor
    proxy.sandbox_scan("15550005555").get()
    wait_until(lambda: proxy.state().get()["ready"])
    proxy.actor_ref.tell(Banned("SEND_TO_TOO_MANY_PEOPLE", -1))  # already expired
    wait_until(lambda: proxy.state().get()["status"] == "banned")
    assert proxy.check_session().get() == "ban_expired"
    wait_until(lambda: proxy.state().get()["ready"])
    engine = network.find("15550005555")
    assert engine is not None
    engine.unlink()  # the phone removed the linked device
    assert proxy.check_session().get() == "session_invalid"
    assert proxy.state().get()["status"] == "logged_out"


def test_quotas_refuse_with_429_and_leave_an_activity_entry(server: Server, admin: Api) -> None:
    user = admin.create_user("quota@example.com", password="quota-password")
    limited = admin.http.put(
        f"/api/users/{user['id']}", json={"limits": {"maxInstances": 1, "maxMessagesPerDay": 2}}
    )
    assert limited.status_code == 200 and limited.json()["limits"] == {
        "maxInstances": 1,
        "maxMessagesPerDay": 2,
    }
    api = Api.login(server, "quota@example.com", "quota-password")
    instance = api.create_instance("Only one")["id"]
    refused = api.http.post("/api/instances", json={"name": "Two", "engine": "sandbox"})
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert "at most 1 instance" in refused.json()["error"]

    api.pair(instance, "15550006666")
    assert api.send(instance, "15550006667", "one").status_code == 200
    assert api.send(instance, "15550006667", "two").status_code == 200
    third = api.send(instance, "15550006667", "three")
    assert third.status_code == 429 and "2 message(s) a day" in third.json()["error"]
    entries = api.http.get(
        f"/api/instances/{instance}/activity", params={"actions": "quota_exceeded"}
    ).json()
    assert entries["logs"][0]["details"] == {"quota": "maxMessagesPerDay", "limit": 2}
    # Lifting the quota lets the user send again.
    admin.http.put(f"/api/users/{user['id']}", json={"limits": {"maxMessagesPerDay": None}})
    assert api.send(instance, "15550006667", "four").status_code == 200
