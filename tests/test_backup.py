"""Backups: taken while the server sends, restored into a new directory, served from there.

The backup is taken by `whatsapp-api backup` from a running server under a send load; it is
restored by `whatsapp-api restore` into a new data directory (on MongoDB, a new database),
and a server started there must have every send acknowledged before the backup began, the
users, the instances (paired sandbox instances connected again), the webhook cursors and
the JWT secret (tokens issued before still valid). A damaged archive is refused with one
clear line and nothing written. Every test runs on both providers.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.drills import record
from tests.places import Storage, place
from tests.receiver import Receiver
from tests.server import Api, Server, running_server, wait_until

ALL = {"notifyReceived": True, "notifySent": True, "notifyDelivery": True, "notifyRead": True}
PHONES = {"a": "15550401001", "b": "15550401002", "quiet": "15550401003"}
TOOL = str(Path(sys.executable).with_name("whatsapp-api"))


def tool(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`whatsapp-api ARGS` with the configuration of `server` (running or not)."""
    return subprocess.run(
        [TOOL, *args], env=server.env, cwd=server.root, capture_output=True, text=True, timeout=300
    )


def cursors_of(server: Server, instances: list[str]) -> dict[str, int]:
    """The webhook cursors stored for `server`, read as the server reads them."""
    from app.storage import open_storage

    storage = open_storage(server.settings())
    cursors = storage.cursors()
    try:
        return {instance: cursors.get(instance) for instance in instances}
    finally:
        cursors.close()
        storage.close()


def notifications(server: Server, stop: int | None = None) -> list[tuple[Any, ...]]:
    """The event store's notifications (up to position `stop`), each as its position,
    aggregate, version, topic and stored bytes."""
    return [
        (n.id, str(n.originator_id), n.originator_version, n.topic, bytes(n.state))
        for n in server.stored_notifications(stop)
    ]


def sender(
    server: Server, token: str, source: str, to: str, acked: list[str], stop: threading.Event
) -> None:
    """Sends one message at a time until stopped; `acked` keeps the answers' ids in order
    (and an answer other than 200 as "failed: ...", which the test refuses)."""
    with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=30) as client:
        while not stop.is_set():
            answer = client.post(
                f"/api/whatsapp/{source}/send", json={"phone": to, "message": "under load"}
            )
            if answer.status_code != 200:
                acked.append(f"failed: {answer.status_code} {answer.text}")
                return
            acked.append(answer.json()["id"])


@dataclass
class Backup:
    """An archive, and what the server it was taken from had done."""

    archive: Path
    provider: str
    instances: dict[str, str]
    token: str
    api_key: str
    before: dict[str, list[str]]  # acknowledged before the backup began, per sender
    during: dict[str, list[str]]  # every acknowledged send, per sender, in order
    quiet_sends: set[str]  # sent while the quiet instance's webhooks were off
    cursors_before: dict[str, int]
    cursors_after: dict[str, int]
    events: list[tuple[Any, ...]]  # the old store's events up to the backup's position
    receiver: Receiver
    summary: str = ""


@pytest.fixture(scope="module")
def taken(
    request: pytest.FixtureRequest, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backup]:
    root = tmp_path_factory.mktemp("backed-up")
    receiver = Receiver()
    # No JWT_SECRET: the server generates its secret and keeps it in the data directory.
    # The place is dropped once the backup is taken: what is restored comes from the archive.
    with (
        place(request, provider, root) as storage,
        running_server(root, storage, JWT_SECRET="") as old,
    ):
        admin = Api.login(old)
        admin.create_user("alice@example.com", password="alice-password-1")
        login = old.client().post(
            "/api/auth/login", json={"email": "alice@example.com", "password": "alice-password-1"}
        )
        alice = Api(old, token=login.json()["token"])
        instances = {name: alice.create_instance(name)["id"] for name in PHONES}
        for name, phone in PHONES.items():
            alice.pair(instances[name], phone)
        quiet = instances["quiet"]
        quiet_sends = {
            alice.send(quiet, PHONES["a"], f"while off {i}").json()["id"] for i in range(3)
        }
        # Turning webhooks on stores the quiet instance's cursor past those sends.
        turned_on = alice.http.put(
            f"/api/instances/{quiet}",
            json={"webhookUrl": receiver.url, "webhookEnabled": True, "webhookSettings": ALL},
        )
        assert turned_on.status_code == 200, turned_on.text
        cursors_before = cursors_of(old, list(instances.values()))
        assert cursors_before[quiet] > 0

        token = alice.http.headers["Authorization"]
        stop = threading.Event()
        acked: dict[str, list[str]] = {"a": [], "b": []}
        workers = [
            threading.Thread(
                target=sender,
                args=(old, token, instances[n], PHONES[other], acked[n], stop),
            )
            for n, other in (("a", "b"), ("b", "a"))
        ]
        for worker in workers:
            worker.start()
        try:
            wait_until(lambda: all(len(ids) >= 5 for ids in acked.values()), timeout=30)
            before = {n: list(ids) for n, ids in acked.items()}
            archive = root / "backup.tar.gz"
            made = tool(old, "backup", "--output", str(archive))
            time.sleep(0.2)  # a few more sends after the backup: they are not in it
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=30)
        assert made.returncode == 0, made.stdout + made.stderr
        assert not [m for ids in acked.values() for m in ids if m.startswith("failed")]
        cursors_after = cursors_of(old, list(instances.values()))
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        events = notifications(old, stop=manifest["position"])
        assert len(events) == manifest["events"] > 0
        backup = Backup(
            archive,
            provider,
            instances,
            token,
            login.json()["user"]["apiKey"],
            before,
            acked,
            quiet_sends,
            cursors_before,
            cursors_after,
            events,
            receiver,
            made.stdout,
        )
    try:
        yield backup
    finally:
        receiver.close()


@pytest.fixture()
def target(storage: Storage) -> Iterator[Server]:
    """A server configuration (not started) over a new, empty place of the test's own: a
    data directory, and on MongoDB a database; stopped at the end, its place dropped."""
    server = Server(storage.root, storage, JWT_SECRET="")
    try:
        yield server
    finally:
        server.stop()


def test_the_backup_says_what_it_holds_and_only_its_owner_can_read_it(taken: Backup) -> None:
    assert f"backed up to {taken.archive}" in taken.summary
    # The sandbox keeps its pairing in the event store, not on disk: no session files here
    # (an engine's are: test_a_live_session_database_is_copied_whole_as_of_one_moment).
    assert "the JWT secret" in taken.summary and "session files of 0 instance(s)" in taken.summary
    assert taken.archive.stat().st_mode & 0o077 == 0  # it holds secrets
    with tarfile.open(taken.archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert names[0] == "manifest.json"
    assert sorted(names[1:]) == sorted(entry["path"] for entry in manifest["files"])
    assert "secrets/jwt-secret" in names
    assert not [n for n in names if n.startswith("instances/")]
    assert not [n for n in names if "-read" in n or n.endswith(".log")]  # no read models, logs
    assert manifest["provider"] == taken.provider and manifest["position"] > 0


@pytest.mark.drill("backup under load ({provider})")
def test_a_restored_server_has_everything_acknowledged_before_the_backup(
    taken: Backup, target: Server
) -> None:
    restored = tool(target, "restore", str(taken.archive))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    stored = {event.message_id for event in target.stored_events(topic="MessageSent")}
    acknowledged = {m for ids in taken.during.values() for m in ids}
    before = {m for ids in taken.before.values() for m in ids}
    record(
        acknowledged=len(acknowledged),
        before_backup=len(before),
        restored=len(stored & acknowledged),
        lost=len(before - stored),
    )
    assert "restored" in restored.stdout and "2 user(s), 3 instance(s)" in restored.stdout
    # The event store is the old one as of the backup's position: every event, unchanged.
    assert notifications(target) == taken.events
    # The webhook cursors, as of a moment during the backup (never ahead of the events).
    cursors = cursors_of(target, list(taken.instances.values()))
    for instance, position in cursors.items():
        assert taken.cursors_before[instance] <= position <= taken.cursors_after[instance]

    # Every send acknowledged before the backup began is in the event store; those
    # acknowledged while it ran are there up to a point, in order (a copy of one moment).
    kept: dict[str, list[str]] = {}
    for name in ("a", "b"):
        assert set(taken.before[name]) <= stored
        kept[name] = [m for m in taken.during[name] if m in stored]
        assert kept[name] == taken.during[name][: len(kept[name])]
    target.start()

    # The JWT secret came back: a token issued by the old server is still valid.
    alice = Api(target, token=taken.token.removeprefix("Bearer "))
    me = alice.http.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["email"] == "alice@example.com"
    assert Api(target, api_key=taken.api_key).http.get("/api/auth/me").status_code == 200
    Api.login(target, "alice@example.com", "alice-password-1")

    # The instances, paired again by themselves from their restored sessions.
    listed = {i["id"] for i in alice.http.get("/api/instances").json()["instances"]}
    assert listed == set(taken.instances.values())
    for instance in taken.instances.values():
        wait_until(lambda i=instance: alice.status(i)["ready"], timeout=30)

    # The rebuilt chat histories show what the event store holds.
    for name, other in (("a", "b"), ("b", "a")):
        history = alice.http.get(
            f"/api/instances/{taken.instances[name]}/chats/{PHONES[other]}/messages",
            params={"limit": 1000},
        ).json()
        assert set(kept[name]) <= {m["messageId"] for m in history["messages"]}

    # What the quiet instance sent while its webhooks were off is still never sent.
    quiet = taken.instances["quiet"]
    after = alice.send(quiet, PHONES["a"], "after the restore").json()["id"]

    def sent() -> set[str]:
        received = taken.receiver.received
        return {r.json["data"].get("messageId") for r in received if r.event == "message_sent"}

    wait_until(lambda: after in sent(), timeout=30)
    assert not sent() & taken.quiet_sends


def test_a_target_that_is_not_empty_is_refused_unless_forced(taken: Backup, target: Server) -> None:
    target.start()  # a server of its own: an event store, an administrator, a secret
    Api.login(target).create_instance("In the way")
    target.stop()
    refused = tool(target, "restore", str(taken.archive))
    assert refused.returncode == 1
    assert "not empty" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    forced = tool(target, "restore", "--force", str(taken.archive))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    target.start()
    alice = Api(target, token=taken.token.removeprefix("Bearer "))
    names = {i["name"] for i in alice.http.get("/api/instances").json()["instances"]}
    assert names == set(PHONES)  # the replaced installation's instance is gone
    target.stop()


def damaged_copies(archive: Path, into: Path) -> dict[str, Path]:
    """The archive with a byte flipped in its middle; cut short; with a file changed
    behind its manifest's back; and with a file its manifest does not list."""
    data = archive.read_bytes()
    copies = {}
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    copies["flipped"] = flipped
    copies["truncated"] = data[: len(data) * 2 // 3]

    def rewritten(edit: str | None = None, extra: str | None = None) -> bytes:
        out = io.BytesIO()
        with tarfile.open(archive) as source, tarfile.open(fileobj=out, mode="w:gz") as tar:
            for member in source.getmembers():
                body = source.extractfile(member).read()  # type: ignore[union-attr]
                if member.name == edit:
                    body = b"x" * len(body)  # the same size, other bytes
                tar.addfile(member, io.BytesIO(body))
            if extra is not None:
                added = tarfile.TarInfo(extra)
                added.size = 4
                tar.addfile(added, io.BytesIO(b"evil"))
        return out.getvalue()

    copies["edited"] = rewritten(edit="secrets/jwt-secret")
    copies["added"] = rewritten(extra="store/extra.bin")
    copies["not gzip"] = gzip.decompress(data)[:4096]
    paths = {}
    for name, content in copies.items():
        paths[name] = into / f"{name.replace(' ', '-')}.tar.gz"
        paths[name].write_bytes(bytes(content))
    return paths


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        # What a flipped byte breaks depends on where it falls (gzip's framing, a header,
        # a file's deflated bytes): any of the reasons will do, said in the one line.
        ("flipped", r"cannot be read|does not match its checksum|is missing|manifest|bytes"),
        ("truncated", "cannot be read to its end"),
        ("edited", "secrets/jwt-secret does not match its checksum"),
        ("added", "'store/extra\\.bin', which its manifest does not list"),
        ("not gzip", "cannot be read to its end"),
    ],
)
def test_a_damaged_archive_is_refused_with_one_clear_line(
    taken: Backup, target: Server, tmp_path_factory: pytest.TempPathFactory, damage: str, says: str
) -> None:
    archive = damaged_copies(taken.archive, tmp_path_factory.mktemp("damaged"))[damage]
    refused = tool(target, "restore", str(archive))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert lines[0].startswith(f"whatsapp-api: {archive} is damaged: ")
    assert re.search(says, lines[0]) and lines[0].endswith("nothing was restored"), lines[0]
    # Nothing was written: the target is still empty, so a good archive restores there.
    leftovers = [p for p in target.root.rglob("*") if p.is_file() and p != target.log]
    assert leftovers == [] and target.stored_bytes() == b""


def test_restore_needs_a_backup_file(
    taken: Backup, target: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp_path = tmp_path_factory.mktemp("elsewhere")
    missing = tool(target, "restore", str(tmp_path / "nothing.tar.gz"))
    assert missing.returncode == 1 and "no backup at" in missing.stderr
    shutil.copyfile(taken.archive, tmp_path / "copy.tar.gz")
    exists = tool(target, "backup", "--output", str(tmp_path / "copy.tar.gz"))
    assert exists.returncode == 1 and "exists already" in exists.stderr
    # A place that cannot be written: one line, no traceback.
    nowhere = tool(target, "backup", "--output", str(tmp_path / "copy.tar.gz" / "backup.tar.gz"))
    assert nowhere.returncode == 1 and "Traceback" not in nowhere.stderr, nowhere.stderr
    assert nowhere.stderr.startswith("whatsapp-api: backup failed: cannot write ")
    assert len(nowhere.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no second filesystem at /dev/shm")
def test_a_sqlite_event_store_elsewhere_is_restored_across_filesystems(tmp_path: Path) -> None:
    """SQLITE_DATABASE_URL may put the event store on another filesystem than the data
    directory, where the staging directory is: a rename cannot cross, so it is moved."""
    from storage.provider import BackedUp
    from storage.sqlite import backup as sqlite_backup

    staged = tmp_path / "staging"
    staged.mkdir()
    (staged / sqlite_backup.EVENTS).write_bytes(b"the event store")
    (staged / sqlite_backup.CURSORS).write_bytes(b"the cursors")
    elsewhere = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        events, cursors = elsewhere / "store" / "events.db", tmp_path / "data" / "webhooks.db"
        sqlite_backup.restore(staged, events, cursors, BackedUp(1, 1, 1), lambda *_: None)
        assert events.read_bytes() == b"the event store"
        assert cursors.read_bytes() == b"the cursors"
    finally:
        shutil.rmtree(elsewhere)


@pytest.mark.sqlite_only("the engines' session files are the same on either provider")
def test_a_live_session_database_is_copied_whole_as_of_one_moment(
    storage: Storage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """whatsmeow keeps an instance's session in a SQLite database under INSTANCES_DIR, written
    while the server runs. In WAL mode its last commits are in `session.db-wal` until a
    checkpoint: a byte copy of `session.db` would miss them. The backup copies the database
    through SQLite's backup API, as one file of one moment; the engine's log stays out."""
    from app import backup as backups

    storage.event_store()  # an installation to back up
    instances = storage.root / "instances"
    live = instances / "a-whatsmeow-instance" / "session.db"
    live.parent.mkdir(parents=True)
    (live.parent / "engine.log").write_text("not needed to come back\n")
    writer = sqlite3.connect(live)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA wal_autocheckpoint = 0")  # every commit stays in the -wal
        writer.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY, identity BLOB)")
        writer.executemany(
            "INSERT INTO whatsmeow_device VALUES (?, ?)",
            [(f"1555040{n:04}@s.whatsapp.net", bytes(32)) for n in range(200)],
        )
        writer.commit()
        assert live.with_name("session.db-wal").stat().st_size > 0
        settings = Settings.from_env({**storage.env(), "INSTANCES_DIR": str(instances)})
        out = tmp_path_factory.mktemp("out")
        manifest = backups.backup(settings, out / "backup.tar.gz", lambda *_: None)
    finally:
        writer.close()
    assert manifest.instances == 1
    with tarfile.open(out / "backup.tar.gz") as tar:
        names = tar.getnames()
        tar.extract("instances/a-whatsmeow-instance/session.db", out, filter="data")
    assert not [n for n in names if n.endswith(("engine.log", "-wal", "-shm"))], names
    copy = sqlite3.connect(out / "instances" / "a-whatsmeow-instance" / "session.db")
    try:
        assert copy.execute("SELECT count(*) FROM whatsmeow_device").fetchone() == (200,)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one file
    finally:
        copy.close()
