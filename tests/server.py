"""A real `whatsapp-api serve` process on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tests.mongo import free_port

if TYPE_CHECKING:
    from app.config import Settings
    from app.eventstore import EventStore
    from tests.places import Storage

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"


class Server:
    """One server process over one data directory; can be stopped, killed and started again."""

    def __init__(self, root: Path, storage: Storage | None = None, **env: str) -> None:
        """On `storage` (tests/places.py; its root should be `root`, except for the nodes
        of a cluster, which share one), or on SQLite files under `root`; `env` adds or
        overrides settings."""
        self.root = root
        self.port = free_port()
        self.storage = storage
        self.database = storage.database if storage is not None else None
        if storage is not None:
            env = {**storage.env(), **env}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "NODE_ENV"))},
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "SQLITE_DATABASE_URL": f"file:{root / 'data' / 'whatsapp-api.db'}",
            "UPLOADS_DIR": str(root / "uploads"),
            "INSTANCES_DIR": str(root / "instances"),
            "LOGS_DIR": str(root / "logs"),
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "JWT_SECRET": "test-secret-" + "x" * 40,
            "DEFAULT_ENGINE": "sandbox",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        if self.database is not None and "NODE_URL" not in self.env:
            # Every server of the suite on MongoDB runs as a cluster of one node (NODE_URL
            # set: leases, fencing, the leader lease and the follower at work); NODE_URL=""
            # makes a plain single node.
            self.env["NODE_URL"] = self.url
            self.env.setdefault("NODE_ID", f"node-{self.port}")
            self.env.setdefault("CLUSTER_SECRET", "one-node-cluster-secret-" + "c" * 16)
        self.log = root / "server.log"

    def start(self, timeout: float | None = None, fault: str | None = None) -> None:
        """Start the server; `fault` is Python run in its process first (a drill's way to
        make it die at one exact moment, e.g. by patching a function to SIGKILL it)."""
        self.launch(fault)
        self.wait_until_up(timeout)

    def launch(self, fault: str | None = None) -> None:
        """Start the process without waiting for it (`wait_until_up` does)."""
        whatsapp_api = shutil.which("whatsapp-api", path=str(Path(sys.executable).parent))
        command = [whatsapp_api] if whatsapp_api else [sys.executable, "-m", "app.cli"]
        if fault is not None:
            command = [sys.executable, "-c", f"{fault}\nfrom app.cli import main\nmain()"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "serve"],
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_up(self, timeout: float | None = None) -> None:
        # On MongoDB, a server killed mid-transaction leaves its writes locked until the
        # database aborts that transaction (60 s on mongod): a restart may wait that long.
        timeout = timeout or (90 if self.database is not None else 30)
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    # -- what the server stored, read the same way on either provider --------------------

    @property
    def provider(self) -> str:
        return self.storage.name if self.storage is not None else "sqlite"

    def settings(self) -> Settings:
        from app.config import Settings

        return Settings.from_env(self.env)

    def stored_events(self, originator_id: str | None = None, topic: str = "") -> list[Any]:
        """The domain events in the event store (of one aggregate, and whose topic ends
        with `topic`, if given), in their order, read through a store of the test's own."""
        with self.event_store() as store:
            return [
                store.mapper.to_domain_event(notification)
                for notification in _notifications(store)
                if (originator_id is None or str(notification.originator_id) == originator_id)
                and notification.topic.endswith(topic)
            ]

    def stored_notifications(self, stop: int | None = None) -> list[Any]:
        """The event store's notifications as stored (up to position `stop`), in order."""
        with self.event_store() as store:
            return list(_notifications(store, stop))

    @contextmanager
    def event_store(self) -> Iterator[EventStore]:
        """The server's event store, opened by the test (creating nothing)."""
        from app.eventstore import open_store
        from app.storage import open_storage

        storage = open_storage(self.settings())
        try:
            store = open_store(storage, create=False)
            try:
                yield store
            finally:
                store.close()
        finally:
            storage.close()

    def stored_bytes(self) -> bytes:
        """Everything the server stored (event store, read models, cursors), as raw bytes:
        the files of its data directory, and the documents of its MongoDB databases."""
        data = self.root / "data"
        files = (
            b"".join(p.read_bytes() for p in data.iterdir() if p.is_file())
            if data.exists()
            else b""
        )
        if self.storage is None or self.storage.mongodb_url is None:
            return files
        import bson
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(self.storage.mongodb_url)
        try:
            return files + b"".join(
                bson.encode(document)
                for name in client.list_database_names()
                if name.startswith(self.database)
                for collection in client[name].list_collection_names()
                for document in client[name][collection].find()
            )
        finally:
            client.close()


def _notifications(store: Any, stop: int | None = None) -> Iterator[Any]:
    start = 1
    while True:
        page = store.recorder.select_notifications(start=start, limit=1000, stop=stop)
        yield from page
        if len(page) < 1000:
            return
        start = page[-1].id + 1


@contextmanager
def running_server(root: Path, storage: Storage | None = None, **env: str) -> Iterator[Server]:
    """A started server (see `Server`), stopped at the end; its storage is the caller's."""
    server = Server(root, storage, **env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Api:
    """A signed-in API client with the steps stories repeat."""

    def __init__(
        self, server: Server, token: str | None = None, api_key: str | None = None
    ) -> None:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if api_key:
            headers["x-api-key"] = api_key
        self.http = server.client(**headers)
        self.server = server

    @classmethod
    def login(cls, server: Server, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Api:
        answer = server.client().post(
            "/api/auth/login", json={"email": email, "password": password}
        )
        assert answer.status_code == 200, answer.text
        return cls(server, token=answer.json()["token"])

    def create_user(
        self, email: str, password: str = "user-password-1", **fields: Any
    ) -> dict[str, Any]:
        answer = self.http.post("/api/users", json={"email": email, "password": password, **fields})
        assert answer.status_code == 201, answer.text
        return answer.json()

    def create_instance(self, name: str, **fields: Any) -> dict[str, Any]:
        answer = self.http.post(
            "/api/instances", json={"name": name, "engine": "sandbox", **fields}
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    def wait_for_qr(self, instance_id: str, timeout: float = 5) -> str:
        return wait_until(
            lambda: self.http.get(f"/api/instances/{instance_id}/qr").json().get("qrCode"), timeout
        )

    def pair(self, instance_id: str, phone: str) -> None:
        self.wait_for_qr(instance_id)
        answer = self.http.post(f"/api/sandbox/instances/{instance_id}/scan", json={"phone": phone})
        assert answer.status_code == 200, answer.text
        wait_until(lambda: self.status(instance_id)["ready"])

    def status(self, instance_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/api/whatsapp/{instance_id}/status")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def read(self, instance_id: str, chat: str, message_ids: list[str]) -> None:
        read_marks(self, instance_id, chat, message_ids)

    def send(self, instance_id: str, phone: str, message: str, **headers: str) -> httpx.Response:
        return self.http.post(
            f"/api/whatsapp/{instance_id}/send",
            json={"phone": phone, "message": message},
            headers=headers,
        )


def read_marks(api: Api, instance_id: str, chat: str, message_ids: list[str]) -> None:
    """`instance_id` marks these messages of `chat` read (as a phone that opens the chat;
    the sandbox sends read receipts only then), once it has them: another instance's
    messages reach its read models a moment after their send is answered."""

    def marked() -> bool:
        answer = api.http.post(
            f"/api/whatsapp/{instance_id}/read", json={"chatId": chat, "messageIds": message_ids}
        )
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200

    wait_until(marked)


def wait_until(probe: Any, timeout: float = 5, interval: float = 0.02) -> Any:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(interval)
