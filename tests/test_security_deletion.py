"""Deleting an instance survives kill -9 at its worst moment, against a real server.

Before, the session directory was removed before `Deleted` was stored: a kill -9 in
between left an instance that was not deleted but had lost its pairing. Now `Deleted` is
durable first, the files go after, and a start removes what a crash left behind.

The drill kills the server (SIGKILL, from inside, at one exact moment: the test patches the
engine's `forget`, which removes the session files, before the server starts), once before
and once after the files are removed, then starts it again.
"""

from __future__ import annotations

import httpx
import pytest

from tests.drills import record
from tests.server import Api, Server, wait_until

pytestmark = pytest.mark.drill_cases("security cases")

# Run in the server's process before it starts: `forget` (the removal of an instance's
# session files) SIGKILLs the server, before or after doing its work.
KILL_IN_FORGET = """
import os, shutil, signal
from actors.engines.sandbox import SandboxEngine
_forget = SandboxEngine.forget
def forget(self):
    if {after}:
        _forget(self)
        shutil.rmtree({session!r}, ignore_errors=True)  # as the whatsmeow engine's forget does
    os.kill(os.getpid(), signal.SIGKILL)
SandboxEngine.forget = forget
"""


@pytest.mark.kills_the_server
@pytest.mark.drill("kill -9 during an instance's deletion ({provider})")
@pytest.mark.parametrize("files_removed", [False, True], ids=["before-removal", "after-removal"])
def test_a_delete_killed_midway_is_finished_by_the_next_start(
    fresh_server: Server, files_removed: bool
) -> None:
    api = Api.login(fresh_server)
    doomed = api.create_instance("Doomed")["id"]
    kept = api.create_instance("Kept")["id"]
    api.pair(doomed, "15558900001")
    api.pair(kept, "15558900002")
    # Session files as the whatsmeow engine keeps them (INSTANCES_DIR/<id>/session.db); the
    # sandbox keeps its pairing in the event store alone.
    sessions = fresh_server.root / "instances"
    for instance in (doomed, kept):
        (sessions / instance).mkdir(parents=True, exist_ok=True)
        (sessions / instance / "session.db").write_bytes(b"a linked device's keys")

    fresh_server.stop()
    fault = KILL_IN_FORGET.format(after=files_removed, session=str(sessions / doomed))
    fresh_server.start(fault=fault)
    api = Api.login(fresh_server)
    wait_until(lambda: api.status(doomed)["ready"])
    with pytest.raises(httpx.TransportError):  # the server dies: no answer
        api.http.delete(f"/api/instances/{doomed}")
    assert fresh_server.process is not None
    assert fresh_server.process.wait(timeout=30) == -9
    fresh_server.process = None
    # The store says deleted, whatever the files say.
    assert fresh_server.stored_events(doomed, "Instance.Deleted")

    fresh_server.start()
    api = Api.login(fresh_server)
    deleted = api.http.get(f"/api/instances/{doomed}").status_code == 404
    record(killed=1, deleted=int(deleted), leftovers=int((sessions / doomed).exists()))
    assert deleted
    assert doomed not in [i["id"] for i in api.http.get("/api/instances").json()["instances"]]
    assert not (sessions / doomed).exists()  # removed at start if the crash left it
    # The other instance lost nothing: its files stay, it reconnects without a QR code.
    assert (sessions / kept / "session.db").read_bytes() == b"a linked device's keys"
    wait_until(lambda: api.status(kept)["ready"], timeout=10)
