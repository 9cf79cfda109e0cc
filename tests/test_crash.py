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
@pytest.mark.drill("kill -9 under load ({provider})")
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
    # Load for a while, and until sends are being acknowledged (on a loaded machine, or on
    # MongoDB, the first second may see none).
    time.sleep(1.5)
    wait_until(lambda: len(acknowledged) >= 20, timeout=60)
    fresh_server.kill()
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    # Every acknowledged send is in the event store...
    stored = stored_message_ids(fresh_server)
    record(
        acknowledged=len(acknowledged),
        stored=sum(m in stored for m in acknowledged),
        lost=len(set(acknowledged) - stored),
    )
    assert len(acknowledged) >= 20
    assert set(acknowledged) <= stored
    # ...and, after a restart, in the read models; the instances come back connected.
    fresh_server.start()
    api = Api.login(fresh_server)
    wait_until(lambda: api.status(a)["ready"] and api.status(b)["ready"], timeout=15)
    history = api.http.get(
        f"/api/instances/{a}/chats/15550007002/messages", params={"limit": 1000}
    ).json()
    shown = {m["messageId"] for m in history["messages"]}
    record(in_history=len(set(acknowledged) & shown))
    assert set(acknowledged) <= shown
    assert api.send(a, "15550007002", "after the crash").status_code == 200


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


@pytest.mark.drill("full disk (4 MB tmpfs)")
def test_a_full_disk_gives_clear_errors_and_no_damage(tmp_path: Path, tiny_disk: Path) -> None:
    """What the README promises: while the disk is full, sends answer `503
    storage_unavailable` (the instance keeps running: nothing restarts it), nothing
    acknowledged is lost, the database stays intact, and once there is space again the
    next send is acknowledged and stored."""
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
        sent += [r.json()["id"] for r in answers if r.status_code == 200]
        failed = [r for r in answers if r.status_code != 200]
        refused = [(r.status_code, r.json().get("code")) for r in failed]
        health_while_full = server.client().get("/health").status_code
        filler.unlink()
        # Space again: the very instance carries on (no restart, no new pairing).
        after = api.send(a, "15550007102", "after")
        after_id = after.json().get("id") if after.status_code == 200 else None
    finally:
        log = server.log_text()
        server.stop()
    db = sqlite3.connect(tiny_disk / "whatsapp-api.db")
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    stored = stored_message_ids(server)
    storage_refusals = refused.count((503, "storage_unavailable"))
    record(
        refused_503_storage_unavailable=storage_refusals,
        other_answers=len(refused) - storage_refusals,
        acknowledged=len(sent),
        lost=len(set(sent) - stored),
        send_after_space_stored=after_id is not None and after_id in stored,
        integrity_ok=integrity == "ok",
    )
    assert refused, "the disk never filled up"
    assert refused == [(503, "storage_unavailable")] * len(refused), refused
    assert "crashed" not in log and "restarting instance" not in log
    assert "Traceback" not in log
    assert health_while_full in (200, 503)
    assert set(sent) <= stored
    assert after.status_code == 200, after.text
    assert after_id in stored
    assert integrity == "ok"
    # Every 5xx the server answered is an error line that names its request id.
    errors = (tmp_path / "logs" / "error.log").read_text()
    for answer in failed:
        if answer.status_code >= 500:
            assert f"request={answer.headers['x-request-id']}" in errors, answer.headers


@pytest.mark.drill("read-only data directory")
def test_a_read_only_data_directory_stops_start_up_with_a_clear_line(
    tmp_path: Path, tiny_disk: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    server = Server(tmp_path, SQLITE_DATABASE_URL=f"file:{tiny_disk / 'data' / 'whatsapp-api.db'}")
    try:
        server.start(timeout=15)
        refused = False
    except RuntimeError:
        refused = True
    finally:
        server.stop()
    log = server.log_text()
    clear_line = "cannot use the data directory" in log and str(tiny_disk) in log
    record(refused_start=refused, clear_line=clear_line)
    assert refused and clear_line, log[-2000:]
