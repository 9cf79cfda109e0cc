"""Crash and fault drills: kill -9 under load, a full disk, a read-only data directory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.drills import record
from tests.server import Api, Server, wait_until


def stored_message_ids(server: Server) -> set[str]:
    return {event.message_id for event in server.stored_events(topic="MessageSent")}


def load(
    server: Server, token: str, instance: str, acknowledged: list[str], stop: threading.Event
) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=10) as client:
        while not stop.is_set():
            try:
                answer = client.post(
                    f"/api/whatsapp/{instance}/send", json={"phone": "15550007002", "message": "m"}
                )
            except httpx.HTTPError:
                return
            if answer.status_code == 200:
                acknowledged.append(answer.json()["id"])


@pytest.mark.kills_the_server
def test_kill_9_under_load_loses_no_acknowledged_send(fresh_server: Server) -> None:
    api = Api.login(fresh_server)
    a = api.create_instance("Loaded")["id"]
    b = api.create_instance("Peer")["id"]
    api.pair(a, "15550007001")
    api.pair(b, "15550007002")
    acknowledged: list[str] = []
    stop = threading.Event()
    workers = [
        threading.Thread(
            target=load,
            args=(fresh_server, api.http.headers["Authorization"], a, acknowledged, stop),
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    fresh_server.kill()
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    assert len(acknowledged) > 10

    # Every acknowledged send is in the event store...
    stored = stored_message_ids(fresh_server)
    assert set(acknowledged) <= stored
    # ...and, after a restart, in the read models; the instances come back connected.
    fresh_server.start()
    api = Api.login(fresh_server)
    wait_until(lambda: api.status(a)["ready"] and api.status(b)["ready"], timeout=15)
    history = api.http.get(
        f"/api/instances/{a}/chats/15550007002/messages", params={"limit": 1000}
    ).json()
    shown = {m["messageId"] for m in history["messages"]}
    assert set(acknowledged) <= shown
    assert api.send(a, "15550007002", "after the crash").status_code == 200
    record(
        f"kill -9 under load ({fresh_server.provider})",
        acknowledged=len(acknowledged),
        stored=sum(m in stored for m in acknowledged),
        in_history=len(set(acknowledged) & shown),
        lost=len(set(acknowledged) - shown),
    )


# The full-disk and read-only drills are SQLite's by nature: they shrink or freeze the
# filesystem under the server's own data directory. On MongoDB the data lives in the
# database server, whose disk is not the product's to fill in a test.


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB filesystem for the data directory (root only)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_gives_clear_errors_and_no_damage(tmp_path: Path, tiny_disk: Path) -> None:
    server = Server(tmp_path, SQLITE_DATABASE_URL=f"file:{tiny_disk / 'whatsapp-api.db'}")
    server.start()
    try:
        api = Api.login(server)
        a = api.create_instance("Full")["id"]
        api.pair(a, "15550007101")
        sent = [api.send(a, "15550007102", f"before {i}").json()["id"] for i in range(5)]
        filler = tiny_disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        answers = [api.send(a, "15550007102", "x" * 2000) for _ in range(30)]
        failed = [r for r in answers if r.status_code != 200]
        assert failed, "the disk never filled up"
        for answer in failed:
            # 503 while writes fail; 409 once a restarted instance is still reconnecting;
            # 202 when the instance did not answer in time (the send may still happen).
            assert (answer.status_code, answer.json()["code"]) in {
                (503, "storage_unavailable"),
                (202, "send_outcome_unknown"),
                (503, "instance_unavailable"),
                (409, "instance_not_connected"),
            }, answer.text
            assert "Traceback" not in answer.text
        assert server.client().get("/health").status_code in (200, 503)
        sent += [r.json()["id"] for r in answers if r.status_code == 200]
        filler.unlink()
        # Space again: the server carries on, and nothing acknowledged went missing.
        wait_until(lambda: api.send(a, "15550007102", "after").status_code == 200, timeout=15)
    finally:
        server.stop()
    db = sqlite3.connect(tiny_disk / "whatsapp-api.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    stored = stored_message_ids(server)
    assert set(sent) <= stored
    # Every 5xx the server answered is an error line that names its request id.
    errors = (tmp_path / "logs" / "error.log").read_text()
    for answer in failed:
        if answer.status_code >= 500:
            assert f"request={answer.headers['x-request-id']}" in errors, answer.headers
    record(
        "full disk (4 MB tmpfs)",
        refused_503=len(failed),
        acknowledged=len(sent),
        lost=len(set(sent) - stored),
        integrity_ok=True,
    )


def test_a_read_only_data_directory_stops_start_up_with_a_clear_line(
    tmp_path: Path, tiny_disk: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    server = Server(tmp_path, SQLITE_DATABASE_URL=f"file:{tiny_disk / 'data' / 'whatsapp-api.db'}")
    with pytest.raises(RuntimeError):
        server.start(timeout=15)
    log = server.log_text()
    assert "cannot use the data directory" in log and str(tiny_disk) in log
    record("read-only data directory", refused_start=True, clear_line=True)
