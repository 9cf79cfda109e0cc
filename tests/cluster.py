"""Several real `whatsapp-api serve` nodes on 127.0.0.1 sharing one MongoDB database and one
uploads/instances volume (a directory of the test's), as docker/ runs them.

Each node is a `tests.server.Server` with NODE_URL, NODE_ID, CLUSTER_SECRET and a short
LEASE_TTL; `RoundRobin` is the load balancer in front of them: it sends each request to
the next node, tries the next one when a node refuses the connection (as a load balancer
does with a node that is down) and, like a well-behaved client, waits `Retry-After` and
tries again on a 503.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.places import Storage
from tests.server import ADMIN_EMAIL, ADMIN_PASSWORD, Server, wait_until

SECRET = "cluster-secret-for-tests-" + "s" * 20
LEASE_TTL = "5s"


class Cluster:
    """`size` nodes over one database (`nodes[i]` is node i, NODE_ID `node<i>`)."""

    def __init__(
        self, root: Path, mongodb_url: str, size: int = 3, lease_ttl: str = LEASE_TTL, **env: str
    ) -> None:
        self.root = root
        self.mongodb_url = mongodb_url
        self.storage = Storage("mongodb", root, mongodb_url)  # one database for every node
        self.database = self.storage.database
        shared = {
            "UPLOADS_DIR": str(root / "shared" / "uploads"),
            "INSTANCES_DIR": str(root / "shared" / "instances"),
            "CLUSTER_SECRET": SECRET,
            "LEASE_TTL": lease_ttl,
            **env,
        }
        self.nodes: list[Server] = []
        for i in range(size):
            (root / f"node{i}").mkdir(parents=True, exist_ok=True)
            node = Server(root / f"node{i}", self.storage, **shared)
            node.env["NODE_ID"] = f"node{i}"
            node.env["NODE_URL"] = node.url
            self.nodes.append(node)

    def start(self) -> None:
        self.nodes[0].start(timeout=90)  # the first one makes the database's collections
        for node in self.nodes[1:]:
            node.launch()
        for node in self.nodes[1:]:
            node.wait_until_up(90)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def running(self) -> list[Server]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def drop(self) -> None:
        self.storage.close()

    def lease_owners(self) -> dict[str, str | None]:
        """Instance id -> the node holding its lease, straight from the database."""
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(self.mongodb_url)
        try:
            return {
                str(d["_id"]): d.get("owner")
                for d in client[self.database]["cluster_leases"].find({"_id": {"$ne": "leader"}})
            }
        finally:
            client.close()

    def event_documents(self) -> list[dict[str, Any]]:
        """Every stored event document, in position order (with its `lease` stamp)."""
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(
            self.mongodb_url, uuidRepresentation="standard"
        )
        try:
            events = client[self.database]["whatsapp_events"]
            return list(events.find({}, {"state": 0}).sort("_id", 1))
        finally:
            client.close()


@contextmanager
def running_cluster(root: Path, mongodb_url: str, size: int = 3, **env: str) -> Iterator[Cluster]:
    cluster = Cluster(root, mongodb_url, size, **env)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        cluster.drop()


class RoundRobin:
    """A client behind a round-robin load balancer over the running nodes (see the module)."""

    def __init__(self, cluster: Cluster, token: str | None = None, patience: float = 30) -> None:
        self.cluster = cluster
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.patience = patience
        self._turn = itertools.count()
        self.retried_503 = 0
        self.connection_refused = 0
        self.skip: set[str] = set()  # URLs of nodes taken out of rotation (a health check's)
        self._clients: dict[str, httpx.Client] = {}

    def _client(self, node: Server) -> httpx.Client:
        client = self._clients.get(node.url)
        if client is None:
            client = self._clients[node.url] = httpx.Client(
                base_url=node.url, headers=self.headers, timeout=30
            )
        return client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The first answer that is not a 503 (after its Retry-After) from the next node that
        takes the connection; raises if none comes within `patience` seconds."""
        deadline = time.monotonic() + self.patience
        while True:
            nodes = [n for n in self.cluster.nodes if n.url not in self.skip]
            node = nodes[next(self._turn) % len(nodes)]
            try:
                answer = self._client(node).request(method, path, **kwargs)
            except httpx.TransportError:
                self.connection_refused += 1
                if time.monotonic() > deadline:
                    raise
                continue
            if answer.status_code != 503:
                return answer
            self.retried_503 += 1
            if time.monotonic() > deadline:
                return answer
            time.sleep(float(answer.headers.get("retry-after", "1")))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    @classmethod
    def signed_in(cls, cluster: Cluster, **kwargs: Any) -> RoundRobin:
        plain = cls(cluster)
        answer = plain.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        plain.close()
        return cls(cluster, answer.json()["token"], **kwargs)

    def create_paired(self, name: str, phone: str) -> str:
        """A sandbox instance, paired as `phone`; its id."""
        created = self.post("/api/instances", json={"name": name, "engine": "sandbox"})
        assert created.status_code == 201, created.text
        instance_id: str = created.json()["id"]
        wait_until(lambda: self.get(f"/api/instances/{instance_id}/qr").json().get("qrCode"), 20)
        scanned = self.post(f"/api/sandbox/instances/{instance_id}/scan", json={"phone": phone})
        assert scanned.status_code == 200, scanned.text
        wait_until(lambda: self.get(f"/api/whatsapp/{instance_id}/status").json()["ready"], 20)
        return instance_id
