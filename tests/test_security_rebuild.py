"""A rebuild killed at its worst moments leaves nothing behind for long, against a real
server's data (SQLite: the read models are files).

Before, a rebuild killed just before the pointer switch left its complete new file, and one
killed before the old file was removed left that one: copies as large as the read models
(56 MB at a million events) that no later rebuild removed. Now every rebuild starts by
removing them (one rebuild at a time, by a lock file), and so does every start.

Each kill is a real SIGKILL at one exact moment: the rebuild runs in a process of its own
in which the test has patched the function called at that moment to kill the process.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.server import Api, Server

pytestmark = [
    pytest.mark.drill_cases("security cases"),
    pytest.mark.sqlite_only(
        "MongoDB keeps read models in generations of collections, which the "
        "next rebuild already dropped; the files of this drill are SQLite's"
    ),
]

KILL_AT_SWITCH = """
import os, signal
from storage.sqlite.read_models import ReadModelStore
ReadModelStore.switch_to = lambda self, file: os.kill(os.getpid(), signal.SIGKILL)
"""
KILL_BEFORE_OLD_FILE_GOES = """
import os, signal
import storage.sqlite.read_models as store
_remove = store._remove
def remove(path, journal_only=False):
    if not journal_only:  # the old file, once the new one is in service
        os.kill(os.getpid(), signal.SIGKILL)
    _remove(path, journal_only)
store._remove = remove
"""


def rebuild(server: Server, fault: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"{fault}\nimport sys\nfrom app.cli import main\nsys.exit(main())",
            "rebuild-projections",
        ],
        env=server.env,
        cwd=server.root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_model_files(server: Server) -> list[str]:
    return sorted(
        p.name for p in (server.root / "data").iterdir() if p.name.startswith("whatsapp-api-read")
    )


def in_service(server: Server) -> str:
    pointer = server.root / "data" / "whatsapp-api-read.db.current"
    return pointer.read_text().strip() if pointer.exists() else "whatsapp-api-read.db"


def databases(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith(".db")]


def test_what_killed_rebuilds_leave_is_removed(fresh_server: Server) -> None:
    api = Api.login(fresh_server)
    instance = api.create_instance("Rebuilt")["id"]
    api.pair(instance, "15558950001")
    for n in range(5):
        assert api.send(instance, "15558950002", f"message {n}").status_code == 200
    fresh_server.stop()

    killed = rebuild(fresh_server, KILL_AT_SWITCH)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # A complete new file beside the one in service, which no pointer names.
    assert len(databases(read_model_files(fresh_server))) == 2

    killed = rebuild(fresh_server, KILL_BEFORE_OLD_FILE_GOES)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # The new file is in service; the old one was not removed.
    left = databases(read_model_files(fresh_server))
    assert in_service(fresh_server) in left and len(left) >= 2, left

    # The next start removes what is not in service, and serves the right read models.
    fresh_server.start()
    assert databases(read_model_files(fresh_server)) == [in_service(fresh_server)]
    api = Api.login(fresh_server)
    chat = api.http.get(f"/api/instances/{instance}/chats/15558950002/messages").json()
    assert len(chat["messages"]) == 5
    fresh_server.stop()

    # So does the next rebuild, after another kill.
    assert rebuild(fresh_server, KILL_AT_SWITCH).returncode == -signal.SIGKILL
    done = rebuild(fresh_server)
    assert done.returncode == 0, done.stderr[-2000:]
    assert databases(read_model_files(fresh_server)) == [in_service(fresh_server)]
    extras = {
        n for n in read_model_files(fresh_server) if not n.startswith(in_service(fresh_server))
    }
    assert extras <= {"whatsapp-api-read.db.current", "whatsapp-api-read.db.rebuild-lock"}, extras


def test_one_rebuild_at_a_time(fresh_server: Server) -> None:
    """A second rebuild while one runs says so in one line, and removes nothing of it."""
    fresh_server.stop()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "handle = open(sys.argv[1], 'ab')\n"
            "fcntl.flock(handle, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(fresh_server.root / "data" / "whatsapp-api-read.db.rebuild-lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = rebuild(fresh_server)
        assert refused.returncode == 1
        assert "another rebuild" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        holder.kill()
        holder.wait()
