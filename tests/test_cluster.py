"""Three nodes on one MongoDB (SecantusDB), as docker/ runs them: instances spread by
rendezvous hashing, any node answers any request, and the faults of the issue (kill -9 under
load, SIGSTOP past the lease, a rolling restart) lose nothing.

One cluster serves the whole module (starting three servers is the slow part); the drills
run in order and each leaves three nodes running. LEASE_TTL is 5 s.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cluster.signing import Signer
from tests import drills
from tests.cluster import SECRET, Cluster, RoundRobin, running_cluster
from tests.receiver import Receiver
from tests.server import Server, wait_until
from tests.whatsmeow import children, descendants, hanging_proxy

INSTANCES = 30
TTL = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mongodb_url: str) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), mongodb_url) as running:
        yield running


@pytest.fixture(scope="module")
def lb(cluster: Cluster) -> Iterator[RoundRobin]:
    client = RoundRobin.signed_in(cluster)
    yield client
    client.close()


@pytest.fixture(scope="module")
def instances(cluster: Cluster, lb: RoundRobin) -> list[str]:
    """30 sandbox instances, paired, created and paired through the load balancer."""
    ids = []
    for i in range(INSTANCES):
        created = lb.post("/api/instances", json={"name": f"spread {i}", "engine": "sandbox"})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    # Every instance is taken by the node it belongs to, wherever it was created.
    wait_until(lambda: all(cluster.lease_owners().get(i) for i in ids), 60, 0.2)
    for i, instance_id in enumerate(ids):
        wait_until(lambda i=instance_id: lb.get(f"/api/instances/{i}/qr").json().get("qrCode"), 30)
        scanned = lb.post(
            f"/api/sandbox/instances/{instance_id}/scan", json={"phone": f"1555100{i:04d}"}
        )
        assert scanned.status_code == 200, scanned.text
    for instance_id in ids:
        wait_until(lambda i=instance_id: lb.get(f"/api/whatsapp/{i}/status").json()["ready"], 30)
    return ids


def owners_by_node(cluster: Cluster, ids: list[str]) -> Counter[str]:
    owners = cluster.lease_owners()
    return Counter(str(owners.get(i)) for i in ids)


def one_node_at_a_time(cluster: Cluster) -> bool:
    """Every instance's stored events, in position order, come from one node at a time:
    their lease epochs never go back, and each epoch is one node's."""
    by_instance: dict[str, list[tuple[str, int]]] = {}
    for document in cluster.event_documents():
        stamp = document.get("lease")
        if stamp is not None:
            by_instance.setdefault(str(document["originator_id"]), []).append(
                (stamp["node"], stamp["epoch"])
            )
    for stamps in by_instance.values():
        epochs = [epoch for _, epoch in stamps]
        if epochs != sorted(epochs):
            return False
        nodes_of: dict[int, set[str]] = {}
        for node, epoch in stamps:
            nodes_of.setdefault(epoch, set()).add(node)
        if any(len(nodes) > 1 for nodes in nodes_of.values()):
            return False
    return True


# -- spread and forwarding -------------------------------------------------------------------


@pytest.mark.drill("3 nodes: 30 instances, round-robin requests")
def test_instances_spread_over_the_nodes_and_every_node_answers_for_all(
    cluster: Cluster, instances: list[str]
) -> None:
    shares = owners_by_node(cluster, instances)
    answers: Counter[int] = Counter()
    # A plain round robin that never retries: every node must answer every request.
    for node in cluster.nodes:
        with httpx.Client(base_url=node.url, headers=_bearer(cluster), timeout=30) as client:
            for instance_id in instances:
                answers[client.get(f"/api/whatsapp/{instance_id}/status").status_code] += 1
                sent = client.post(
                    f"/api/whatsapp/{instance_id}/send",
                    json={"phone": "15557770000", "message": f"from {node.env['NODE_ID']}"},
                )
                answers[sent.status_code] += 1
    failed = sum(n for status, n in answers.items() if status != 200)
    drills.record(
        spread=" ".join(f"{n}={shares[n]}" for n in sorted(shares)),
        requests=sum(answers.values()),
        failed=failed,
        one_node_at_a_time=one_node_at_a_time(cluster),
    )
    assert set(shares) == {"node0", "node1", "node2"}
    assert max(shares.values()) <= 15
    assert failed == 0, answers
    assert one_node_at_a_time(cluster)


def _bearer(cluster: Cluster) -> dict[str, str]:
    answer = httpx.post(
        cluster.nodes[0].url + "/api/auth/login",
        json={"email": "admin@example.com", "password": "admin-password-for-tests"},
    )
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _owner_and_other(cluster: Cluster, instance_id: str) -> tuple[Server, Server]:
    owner_id = cluster.lease_owners()[instance_id]
    owner = next(n for n in cluster.nodes if n.env["NODE_ID"] == owner_id)
    other = next(n for n in cluster.nodes if n is not owner)
    return owner, other


def test_an_instance_view_names_its_node_and_the_cluster_lists_every_node(
    cluster: Cluster, lb: RoundRobin, instances: list[str]
) -> None:
    owners = cluster.lease_owners()
    for instance_id in instances[:5]:
        assert lb.get(f"/api/instances/{instance_id}").json()["node"] == owners[instance_id]
    view = lb.get("/api/cluster").json()
    assert [n["id"] for n in view["nodes"]] == ["node0", "node1", "node2"]
    assert view["leader"] in ("node0", "node1", "node2")
    assert sum(n["instances"] for n in view["nodes"]) == len(owners)
    health = httpx.get(cluster.nodes[1].url + "/health").json()["checks"]["cluster"]
    assert health["ok"] and health["node"] == "node1" and health["nodes"] == 3
    metrics = httpx.get(cluster.nodes[1].url + "/metrics", headers=_bearer(cluster)).text
    held = len([i for i, o in owners.items() if o == "node1"])
    assert f"whatsapp_cluster_leases_held {held}.0" in metrics
    assert "whatsapp_cluster_lease_renewal_seconds_count" in metrics
    assert 'whatsapp_cluster_forwards_total{outcome="sent"}' in metrics


def test_doctor_sees_the_other_nodes_their_clocks_and_the_shared_volume(
    cluster: Cluster, instances: list[str]
) -> None:
    from app import doctor

    def cluster_lines(**changes: str) -> list[str]:
        lines: list[str] = []
        doctor.run({**cluster.nodes[0].env, **changes}, lines.append)
        return [line for line in lines if "cluster" in line or "] node " in line]

    good = "\n".join(cluster_lines())
    assert "[ok  ] cluster clock: within" in good
    assert "2 other live node(s): node1, node2" in good
    assert "[ok  ] node node1: answers at" in good and "FAIL" not in good
    # A node with another secret cannot trust the others' records; one whose volume is
    # not the others' misses their marks.
    wrong = "\n".join(cluster_lines(CLUSTER_SECRET="another-secret-" + "z" * 30))
    assert "[FAIL] node node1: its record is not signed with this node's CLUSTER_SECRET" in wrong
    alone = "\n".join(cluster_lines(UPLOADS_DIR=str(cluster.root / "elsewhere")))
    assert "[FAIL] node node2: UPLOADS_DIR is not shared with it" in alone


def test_a_forwarded_answer_comes_back_unchanged_images_and_streams_included(
    cluster: Cluster, lb: RoundRobin
) -> None:
    created = lb.post("/api/instances", json={"name": "forwarded", "engine": "sandbox"})
    instance_id = created.json()["id"]
    wait_until(lambda: lb.get(f"/api/instances/{instance_id}/qr").json().get("qrCode"), 30)
    owner, other = _owner_and_other(cluster, instance_id)
    headers = _bearer(cluster)
    with httpx.Client(headers=headers, timeout=30) as client:
        direct = client.get(f"{owner.url}/api/instances/{instance_id}/qr?format=png")
        forwarded = client.get(f"{other.url}/api/instances/{instance_id}/qr?format=png")
        assert forwarded.status_code == 200
        assert forwarded.content == direct.content and forwarded.content.startswith(b"\x89PNG")
        assert forwarded.headers["content-type"] == direct.headers["content-type"]
        assert forwarded.headers["cache-control"] == "no-store"
        # The owner logged the very request under the id the caller gave it.
        client.get(
            f"{other.url}/api/instances/{instance_id}/qr", headers={"X-Request-Id": "trace-42"}
        )
        assert "request=trace-42 via=" in owner.log_text()
        # A live event stream through another node: new events arrive as they are stored.
        lines: list[str] = []
        with client.stream(
            "GET",
            f"{other.url}/api/instances/{instance_id}/events",
            headers={"Accept": "text/event-stream"},
        ) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            scan = threading.Timer(
                0.5,
                lambda: lb.post(
                    f"/api/sandbox/instances/{instance_id}/scan", json={"phone": "15551999999"}
                ),
            )
            scan.start()
            for line in stream.iter_lines():
                lines.append(line)
                if line == "event: ConnectionOpened":
                    break
            scan.join()
        assert "event: InstanceCreated" in lines and "event: ConnectionOpened" in lines
        # A large upload streams through to the owner (multipart, 200 KB).
        photo = os.urandom(200_000)
        sent = client.post(
            f"{other.url}/api/whatsapp/{instance_id}/send-file",
            data={"phone": "15557770000", "caption": "big"},
            files={"file": ("photo.bin", io.BytesIO(photo), "application/octet-stream")},
        )
        assert sent.status_code == 200, sent.text
        stored = list((cluster.root / "shared" / "uploads").glob("*photo.bin"))
        assert any(p.read_bytes() == photo for p in stored)


@pytest.mark.drill_cases("security cases")
def test_a_forwarded_request_is_the_callers_own(
    cluster: Cluster, lb: RoundRobin, instances: list[str]
) -> None:
    stranger = lb.post(
        "/api/users", json={"email": "stranger@example.com", "password": "stranger-pass-1"}
    )
    assert stranger.status_code == 201, stranger.text
    key = stranger.json()["apiKey"]
    owner, other = _owner_and_other(cluster, instances[0])
    for node in (owner, other):  # the same answer whichever node it reaches
        answer = httpx.get(
            f"{node.url}/api/whatsapp/{instances[0]}/status", headers={"x-api-key": key}
        )
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "instance_not_found"
    assert httpx.get(f"{other.url}/api/whatsapp/{instances[0]}/status").status_code == 401


@pytest.mark.drill_cases("security cases")
def test_cluster_headers_that_do_not_verify_are_refused(
    cluster: Cluster, instances: list[str]
) -> None:
    owner, _ = _owner_and_other(cluster, instances[0])
    path = f"/api/whatsapp/{instances[0]}/status"
    headers = _bearer(cluster)
    forged = dict(
        Signer("another-secret-" + "x" * 32).forward_headers("node9", "GET", path.encode(), "")
    )
    stale = dict(Signer(SECRET).forward_headers("node1", "GET", path.encode(), "", now=1.0))
    other_path = dict(Signer(SECRET).forward_headers("node1", "GET", b"/api/events", ""))
    for extra in (forged, stale, other_path, {b"x-cluster-from": b"node1"}):
        answer = httpx.get(
            owner.url + path,
            headers={**headers, **{k.decode(): v.decode() for k, v in extra.items()}},
        )
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "cluster_signature_invalid"
        assert SECRET not in answer.text
    assert SECRET not in owner.log_text()


@pytest.mark.drill_cases("security cases")
def test_a_forwarded_request_is_never_forwarded_again(
    cluster: Cluster, instances: list[str]
) -> None:
    """A node that receives a forwarded request for an instance it does not run (the
    forwarding node's view was stale) answers it itself: no loops between nodes."""
    owner, other = _owner_and_other(cluster, instances[0])
    path = f"/api/whatsapp/{instances[0]}/status"
    signed = Signer(SECRET).forward_headers("node9", "GET", path.encode(), "127.0.0.1")

    def forwards(node: Server) -> dict[str, int]:
        counts: dict[str, int] = httpx.get(node.url + "/health").json()["checks"]["cluster"][
            "forwards"
        ]
        return counts

    before = forwards(other)
    answer = httpx.get(
        other.url + path,
        headers={**_bearer(cluster), **{k.decode(): v.decode() for k, v in signed}},
    )
    after = forwards(other)
    assert after["received"] == before["received"] + 1
    assert after["sent"] == before["sent"]  # not sent on to the owner
    assert answer.status_code == 503 and answer.json()["code"] == "instance_moving"
    assert "via=node9" not in owner.log_text()


def test_what_one_node_answers_is_what_the_next_request_sees_on_any_node(
    cluster: Cluster, lb: RoundRobin
) -> None:
    made = lb.post("/api/users", json={"email": "leaving@example.com", "password": "leaving-1"})
    user_id, key = made.json()["id"], made.json()["apiKey"]
    for node in cluster.nodes:  # every node has the user in its cache
        assert httpx.get(node.url + "/api/auth/me", headers={"x-api-key": key}).status_code == 200
    with httpx.Client(headers=_bearer(cluster), timeout=30) as admin:
        assert admin.delete(f"{cluster.nodes[0].url}/api/users/{user_id}").status_code == 200
    for node in cluster.nodes[1:]:
        assert httpx.get(node.url + "/api/auth/me", headers={"x-api-key": key}).status_code == 401
    # An instance created on one node is listed by the next request on another.
    with httpx.Client(headers=_bearer(cluster), timeout=30) as admin:
        created = admin.post(f"{cluster.nodes[1].url}/api/instances", json={"name": "seen"})
        listed = admin.get(f"{cluster.nodes[2].url}/api/instances").json()["instances"]
        assert created.json()["id"] in [i["id"] for i in listed]


def test_a_sandbox_message_between_nodes_arrives_through_the_event_store(
    cluster: Cluster, lb: RoundRobin, instances: list[str]
) -> None:
    owners = cluster.lease_owners()
    sender = instances[0]
    recipient = next(i for i in instances if owners[i] != owners[sender])
    phones = {i: lb.get(f"/api/instances/{i}").json()["phone"] for i in (sender, recipient)}
    sent = lb.post(
        f"/api/whatsapp/{sender}/send", json={"phone": phones[recipient], "message": "across"}
    )
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["id"]

    def received() -> list[dict[str, Any]]:
        page = lb.get(f"/api/instances/{recipient}/chats/{phones[sender]}/messages").json()
        return [m for m in page["messages"] if m["messageId"] == message_id]

    arrived = wait_until(received, 30, 0.1)
    assert arrived[0]["content"] == "across" and not arrived[0]["fromMe"]

    def status() -> str | None:
        page = lb.get(f"/api/instances/{sender}/chats/{phones[recipient]}/messages").json()
        return next((m["status"] for m in page["messages"] if m["messageId"] == message_id), None)

    wait_until(lambda: status() == "delivered", 30, 0.1)  # the receipt came back the same way
    # The recipient opens the chat: its read receipt crosses to the sender's node too.
    read = lb.post(
        f"/api/whatsapp/{recipient}/read",
        json={"chatId": phones[sender], "messageIds": [message_id]},
    )
    assert read.status_code == 200, read.text
    wait_until(lambda: status() == "read", 30, 0.1)
    relays = [e for e in cluster.nodes[0].stored_events(topic="SandboxRelay.Relayed")]
    assert {r.to for r in relays} >= {phones[recipient], phones[sender]}


def sessions_open_under(node: Server, session_dir: Path) -> set[str]:
    """The session databases the live whatsmeow children of one instance under `node`
    hold open. The children are forked by the node's fork server, so they are found by
    ancestry and by their stderr (the instance's engine.log), not by command line."""
    assert node.process is not None
    under = set(descendants(node.process.pid))
    opened: set[str] = set()
    for pid in children(session_dir):
        if pid in under:
            try:
                paths = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
            except OSError:  # it exited meanwhile
                continue
            opened |= {path for path in paths if path.endswith("session.db")}
    return opened


def test_a_whatsmeow_instance_that_moves_opens_the_same_session_on_its_new_node(
    cluster: Cluster, lb: RoundRobin
) -> None:
    """Offline, so nothing pairs: what can be shown is that the new owner's engine runs on
    the very session file (on the shared volume) the old owner's ran on, which is what
    lets a paired session reconnect there without a new QR code. Offline, a child whose
    dial fails exits at once (and the next waits out a backoff), so the instance connects
    through a proxy that never answers: its child stays up, in connect(), for as long as
    the test looks at it."""
    with hanging_proxy() as proxy:
        created = lb.post(
            "/api/instances",
            json={"name": "moving phone", "engine": "whatsmeow", "proxy": proxy.url},
        )
        assert created.status_code == 201, created.text
        instance_id = created.json()["id"]
        session_dir = cluster.root / "shared" / "instances" / instance_id
        session = str(session_dir / "session.db")
        try:
            owner, _ = wait_until(lambda: _owner_if_any(cluster, instance_id), 30, 0.1)
            before = wait_until(lambda: sessions_open_under(owner, session_dir), 30, 0.1)
            assert session in before
            owner.stop()  # SIGINT: it hands the instance over
            try:
                after = wait_until(
                    lambda: {
                        path
                        for node in cluster.running()
                        for path in sessions_open_under(node, session_dir)
                    },
                    60,
                    0.1,
                )
                assert session in after
            finally:
                owner.start(timeout=90)
        finally:
            lb.request("DELETE", f"/api/instances/{instance_id}")


def _owner_if_any(cluster: Cluster, instance_id: str) -> tuple[Server, Server] | None:
    if cluster.lease_owners().get(instance_id) is None:
        return None
    return _owner_and_other(cluster, instance_id)


# -- faults ------------------------------------------------------------------------------------


class Load:
    """Client threads sending through the load balancer until stopped; what was
    acknowledged, and every request that did not end in a 200."""

    def __init__(self, cluster: Cluster, instances: list[str], threads: int = 4) -> None:
        self.cluster = cluster
        self.instances = instances
        self.acknowledged: list[tuple[str, str]] = []
        self.failed: list[str] = []
        self.retried = 0  # 503 answers retried after their Retry-After
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        wait_until(lambda: len(self.acknowledged) >= count, timeout, 0.05)

    def _run(self, index: int) -> None:
        client = RoundRobin.signed_in(self.cluster, patience=60)
        try:
            n = 0
            while not self._stop.is_set():
                instance_id = self.instances[(index * 7 + n) % len(self.instances)]
                n += 1
                try:
                    answer = client.post(
                        f"/api/whatsapp/{instance_id}/send",
                        json={"phone": "15557770000", "message": f"load {index}-{n}"},
                    )
                except httpx.HTTPError as error:
                    self.failed.append(f"{type(error).__name__}: {error}")
                    continue
                if answer.status_code == 200:
                    self.acknowledged.append((instance_id, answer.json()["id"]))
                else:
                    self.failed.append(f"{answer.status_code} {answer.text[:200]}")
        finally:
            self.retried += client.retried_503
            client.close()


def stored_message_ids(cluster: Cluster) -> set[str]:
    return {e.message_id for e in cluster.nodes[0].stored_events(topic="MessageSent")}


def in_history(lb: RoundRobin, acknowledged: list[tuple[str, str]]) -> int:
    """How many acknowledged sends the chat histories show."""
    shown: set[str] = set()
    for instance_id in {i for i, _ in acknowledged}:
        page = lb.get(
            f"/api/instances/{instance_id}/chats/15557770000/messages", params={"limit": 1000}
        ).json()
        shown |= {m["messageId"] for m in page["messages"]}
    return sum(1 for _, message_id in acknowledged if message_id in shown)


def held_by(cluster: Cluster, node: Server, ids: list[str]) -> list[str]:
    owners = cluster.lease_owners()
    return [i for i in ids if owners.get(i) == node.env["NODE_ID"]]


def connected_elsewhere(cluster: Cluster, lb: RoundRobin, node: Server, ids: list[str]) -> bool:
    owners = cluster.lease_owners()
    return all(
        owners.get(i) not in (None, node.env["NODE_ID"])
        and lb.get(f"/api/whatsapp/{i}/status").json()["ready"]
        for i in ids
    )


@pytest.mark.drill("kill -9 under load (3 nodes)")
def test_kill_9_of_a_node_under_load_loses_nothing_and_its_instances_move(
    cluster: Cluster, lb: RoundRobin, instances: list[str]
) -> None:
    receiver = Receiver()
    try:
        for instance_id in instances:
            lb.request(
                "PUT",
                f"/api/instances/{instance_id}",
                json={"webhookUrl": receiver.url, "webhookEnabled": True},
            )
        victim = cluster.nodes[1]
        theirs = held_by(cluster, victim, instances)
        with Load(cluster, instances) as load:
            load.wait_for(20)
            killed_at = time.time()
            assert victim.process is not None
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            victim.process = None
            lb.skip = {victim.url}
            wait_until(lambda: connected_elsewhere(cluster, lb, victim, theirs), 60, 0.1)
            load.wait_for(len(load.acknowledged) + 20)
        failover = reconnected_after(cluster, theirs, killed_at)
        lb.skip = set()
        acknowledged = load.acknowledged
        stored = stored_message_ids(cluster)
        lost = [m for _, m in acknowledged if m not in stored]
        shown = in_history(lb, acknowledged)
        expected = expected_deliveries(cluster, instances)
        wait_until(lambda: expected <= delivered(receiver), 60, 0.2)
        missing = expected - delivered(receiver)
        drills.record(
            acknowledged=len(acknowledged),
            lost=len(lost),
            in_history=shown,
            webhooks=len(expected),
            undelivered=len(missing),
            failover=f"{failover:.1f} s (LEASE_TTL {TTL:g} s + 5 s)",
            failed_requests=len(load.failed),
        )
        assert not lost and shown == len(acknowledged) and not missing
        assert not load.failed, load.failed[:5]
        assert one_node_at_a_time(cluster)
    finally:
        for instance_id in instances:
            lb.request("PUT", f"/api/instances/{instance_id}", json={"webhookEnabled": False})
        receiver.close()
        cluster.nodes[1].start(timeout=90)


def reconnected_after(cluster: Cluster, ids: list[str], since: float) -> float:
    """Seconds from `since` until the last of `ids` was connected again (by the time its
    ConnectionOpened event was made)."""
    latest = since
    for instance_id in ids:
        opened = [
            e.timestamp.timestamp()
            for e in cluster.nodes[0].stored_events(instance_id, topic="ConnectionOpened")
            if e.timestamp.timestamp() > since
        ]
        latest = max(latest, min(opened))
    return latest - since


def delivered(receiver: Receiver) -> set[str]:
    return {r.headers["x-webhook-delivery"] for r in list(receiver.received)}


def expected_deliveries(cluster: Cluster, instances: list[str]) -> set[str]:
    """The delivery id of every stored event that a webhook was due for while webhooks were
    on: from each instance's turning on to the last event before turning off (none yet)."""
    from actors.webhooks.payloads import payload
    from domain.webhook import delivery_id

    settings = {"enabled": True, "notifyReceived": True, "notifySent": True}
    expected: set[str] = set()
    for instance_id in instances:
        events = cluster.nodes[0].stored_events(instance_id)
        turned_on = max(
            (e.originator_version for e in events if type(e).__name__ == "Updated"), default=0
        )
        for event in events:
            if event.originator_version > turned_on and payload(event, settings) is not None:
                expected.add(delivery_id(instance_id, event.originator_version))
    return expected


@pytest.mark.drill("SIGSTOP past the lease, then SIGCONT")
def test_a_frozen_node_appends_nothing_once_thawed_and_rejoins(
    cluster: Cluster, lb: RoundRobin, instances: list[str]
) -> None:
    frozen = cluster.nodes[2]
    assert frozen.process is not None
    theirs = held_by(cluster, frozen, instances)
    assert theirs
    frozen.process.send_signal(signal.SIGSTOP)
    lb.skip = {frozen.url}
    try:
        wait_until(lambda: connected_elsewhere(cluster, lb, frozen, theirs), 60, 0.1)
        for instance_id in theirs:  # the new owners record what happens next
            assert (
                lb.post(
                    f"/api/whatsapp/{instance_id}/send",
                    json={"phone": "15557770000", "message": "m"},
                ).status_code
                == 200
            )
    finally:
        frozen.process.send_signal(signal.SIGCONT)
        lb.skip = set()
    # Thawed: it sees it lost its leases, stops those engines and takes its share back.
    wait_until(lambda: "stopping the engines of" in frozen.log_text(), 30, 0.1)
    wait_until(lambda: held_by(cluster, frozen, instances), 60, 0.2)
    members = [n["id"] for n in lb.get("/api/cluster").json()["nodes"]]
    drills.record(
        instances_moved=len(theirs),
        appended_after_thaw=not one_node_at_a_time(cluster),
        stopped_engines="stopping the engines of" in frozen.log_text(),
        rejoined=frozen.env["NODE_ID"] in members,
    )
    assert one_node_at_a_time(cluster)
    assert frozen.env["NODE_ID"] in members


@pytest.mark.drill("rolling restart of 3 nodes under load")
def test_a_rolling_restart_under_load_fails_no_request_that_honours_retry_after(
    cluster: Cluster, lb: RoundRobin, instances: list[str]
) -> None:
    with Load(cluster, instances) as load:
        load.wait_for(10)
        for node in cluster.nodes:
            node.stop()  # SIGINT: the node hands its instances over, then exits
            node.start(timeout=90)
            load.wait_for(len(load.acknowledged) + 10)
    stored = stored_message_ids(cluster)
    lost = [m for _, m in load.acknowledged if m not in stored]
    drills.record(
        acknowledged=len(load.acknowledged),
        failed_requests=len(load.failed),
        lost=len(lost),
        retried_503=load.retried,
    )
    assert not load.failed, load.failed[:5]
    assert not lost
    assert one_node_at_a_time(cluster)
    assert sorted(n["id"] for n in lb.get("/api/cluster").json()["nodes"]) == [
        "node0",
        "node1",
        "node2",
    ]
