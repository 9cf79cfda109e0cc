"""SIGTERM: nothing acknowledged is lost; a second SIGTERM exits at once."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from tests.drills import record
from tests.server import Api, Server


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
    time.sleep(1.0)
    assert fresh_server.process is not None
    fresh_server.process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal once shut down: the conventional exit status.
    assert fresh_server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    assert len(acknowledged) > 10

    stored = {event.message_id for event in fresh_server.stored_events(topic="MessageSent")}
    assert set(acknowledged) <= stored
    record(
        f"SIGTERM under load ({fresh_server.provider})",
        acknowledged=len(acknowledged),
        lost=len(set(acknowledged) - stored),
    )
    log = fresh_server.log_text()
    assert "shutting down" in log and "Application shutdown complete" in log
    fresh_server.process = None


def test_a_second_sigterm_exits_at_once(fresh_server: Server) -> None:
    process = fresh_server.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    process.wait(timeout=10)
    assert time.monotonic() - started < 5
    fresh_server.process = None
