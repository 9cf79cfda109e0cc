"""SIGTERM: nothing acknowledged is lost; a second SIGTERM exits at once."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from tests.drills import record
from tests.server import Api, Server, wait_until


@pytest.mark.drill("SIGTERM under load ({provider})")
def test_sigterm_during_load_loses_no_acknowledged_message(fresh_server: Server) -> None:
    api = Api.login(fresh_server)
    a = api.create_instance("Busy")["id"]
    api.pair(a, "15550008881")
    token = api.http.headers["Authorization"]
    acknowledged: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(
            base_url=fresh_server.url, headers={"Authorization": token}, timeout=10
        ) as client:
            while not stop.is_set():
                try:
                    answer = client.post(
                        f"/api/whatsapp/{a}/send", json={"phone": "15550008882", "message": "x"}
                    )
                except httpx.HTTPError:
                    return  # the server went away
                if answer.status_code == 200:
                    acknowledged.append(answer.json()["id"])

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    # Load for a while, and until sends are being acknowledged (on a loaded machine, or on
    # MongoDB, the first second may see none).
    time.sleep(1.5)
    wait_until(lambda: len(acknowledged) >= 20, timeout=60)
    assert fresh_server.process is not None
    fresh_server.process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once shut down: the conventional exit status.
    status = fresh_server.process.wait(timeout=30)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)

    stored = {event.message_id for event in fresh_server.stored_events(topic="MessageSent")}
    record(acknowledged=len(acknowledged), lost=len(set(acknowledged) - stored))
    assert status in (0, -signal.SIGTERM)
    assert len(acknowledged) >= 20
    assert set(acknowledged) <= stored
    log = fresh_server.log_text()
    assert "shutting down" in log and "Application shutdown complete" in log
    fresh_server.process = None


@pytest.mark.sqlite_only("signal handling is the same whatever the storage")
@pytest.mark.drill("second SIGTERM while shutdown waits")
def test_a_second_sigterm_exits_at_once(fresh_server: Server) -> None:
    """The first SIGTERM waits for in-flight requests (up to 20 s); the second must not.

    An idle server exits at once after the first signal anyway, so the shutdown is held up
    by a request that cannot finish: a media download from a local server that accepts the
    connection and never answers (the download's own timeout is 30 s)."""
    api = Api.login(fresh_server)
    instance = api.create_instance("Held")["id"]
    api.pair(instance, "15550008882")  # a send to a disconnected instance downloads nothing
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow.png"
        held = threading.Thread(
            target=lambda: _post_quietly(
                api, f"/api/whatsapp/{instance}/send-media", {"phone": "15550008883", "url": url}
            ),
            daemon=True,
        )
        held.start()
        silent.settimeout(10)
        connection, _ = silent.accept()  # the request is in flight, inside the server
        with connection:
            process = fresh_server.process
            assert process is not None
            process.send_signal(signal.SIGTERM)
            # The shutdown is held up by that request (uvicorn says so)...
            wait_until(lambda: "Waiting for connections to close" in fresh_server.log_text())
            assert process.poll() is None
            # ...and a second signal ends it without waiting for the request (or the
            # 20 s grace period): the process exits with status 1 and says why.
            process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                status = None
            said_why = "exiting now" in fresh_server.log_text()
            record(exited_during_the_wait=status is not None, exit_status=status)
            assert status == 1 and said_why, fresh_server.log_text()[-2000:]
    fresh_server.process = None


def _post_quietly(api: Api, path: str, body: dict[str, str]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        api.http.post(path, json=body, timeout=60)
