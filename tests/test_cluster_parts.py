"""The parts of several nodes that need no server: settings, rendezvous hashing, signatures."""

from __future__ import annotations

import statistics
from collections import Counter
from uuid import uuid4

import pytest

from app.cluster import rendezvous
from app.cluster.forward import instance_in, instance_prefixes
from app.cluster.signing import MAX_AGE, BadSignature, Signer
from app.config import ConfigError, Settings

MONGO = {"DATABASE_PROVIDER": "mongodb", "DATABASE_URL": "mongodb://db:27017/app"}
SECRET = "s" * 32


def cluster_env(**more: str) -> dict[str, str]:
    return {**MONGO, "NODE_URL": "http://10.0.0.5:3000", "CLUSTER_SECRET": SECRET, **more}


# -- settings ---------------------------------------------------------------------------


def test_without_node_url_the_server_is_one_node() -> None:
    assert Settings.from_env({}).cluster is None
    assert Settings.from_env(MONGO).cluster is None


def test_cluster_settings_and_their_defaults() -> None:
    cluster = Settings.from_env(cluster_env(PORT="3001")).cluster
    assert cluster is not None
    assert cluster.node_url == "http://10.0.0.5:3000"
    assert cluster.node_id.endswith(":3001")  # host name and port
    assert cluster.lease_ttl == 10.0
    assert cluster.fence_margin == 3.0
    assert SECRET not in repr(cluster)
    custom = Settings.from_env(
        cluster_env(NODE_ID="eu-1", LEASE_TTL="1500ms", LEASE_FENCE_MARGIN="0.5s")
    ).cluster
    assert custom is not None
    assert (custom.node_id, custom.lease_ttl, custom.fence_margin) == ("eu-1", 1.5, 0.5)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"NODE_URL": "http://10.0.0.5:3000", "CLUSTER_SECRET": SECRET}, "NODE_URL"),  # SQLite
        (cluster_env(NODE_URL="10.0.0.5:3000"), "NODE_URL"),
        (cluster_env(NODE_URL="ftp://10.0.0.5"), "NODE_URL"),
        (cluster_env(NODE_URL="http://user:pw@10.0.0.5:3000"), "NODE_URL"),
        (cluster_env(NODE_URL="http://10.0.0.5:3000/api"), "NODE_URL"),
        (cluster_env(NODE_URL="http://10.0.0.5:99999"), "NODE_URL"),
        (cluster_env(CLUSTER_SECRET=""), "CLUSTER_SECRET"),
        (cluster_env(CLUSTER_SECRET="short"), "CLUSTER_SECRET"),
        (cluster_env(NODE_ID="has space"), "NODE_ID"),
        (cluster_env(LEASE_TTL="ten"), "LEASE_TTL"),
        (cluster_env(LEASE_TTL="0.5s"), "LEASE_TTL"),
        (cluster_env(LEASE_TTL="10s", LEASE_FENCE_MARGIN="8s"), "LEASE_FENCE_MARGIN"),
        ({"LEASE_TTL": "10s"}, "LEASE_TTL"),  # no NODE_URL: a cluster setting alone
        ({**MONGO, "CLUSTER_SECRET": SECRET}, "CLUSTER_SECRET"),
    ],
)
def test_a_bad_cluster_setting_names_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(environ)
    assert raised.value.variable == variable
    assert SECRET not in str(raised.value)


def test_sqlite_with_node_url_says_why() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"NODE_URL": "http://10.0.0.5:3000", "CLUSTER_SECRET": SECRET})
    assert "DATABASE_PROVIDER=mongodb" in str(raised.value)


# -- rendezvous hashing ---------------------------------------------------------------


def test_instances_spread_evenly_and_a_joining_node_takes_only_its_share() -> None:
    keys = [str(uuid4()) for _ in range(3000)]
    three = ["node0", "node1", "node2"]
    before = {k: rendezvous.owner(k, three) for k in keys}
    shares = [sum(1 for o in before.values() if o == n) for n in three]
    assert min(shares) > 850 and max(shares) < 1150, shares  # about a third each
    after = {k: rendezvous.owner(k, [*three, "node3"]) for k in keys}
    moved = [k for k in keys if after[k] != before[k]]
    assert all(after[k] == "node3" for k in moved)  # nothing moves between old nodes
    assert 600 < len(moved) < 900  # about a quarter


def test_a_leaving_node_gives_its_instances_to_the_others_and_nothing_else_moves() -> None:
    keys = [str(uuid4()) for _ in range(3000)]
    three = ["node0", "node1", "node2"]
    before = {k: rendezvous.owner(k, three) for k in keys}
    after = {k: rendezvous.owner(k, ["node0", "node2"]) for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != "node1")
    gained = [after[k] for k in keys if before[k] == "node1"]
    assert statistics.mode(gained) in ("node0", "node2") and len(set(gained)) == 2


def test_every_node_computes_the_same_owner_whatever_the_order() -> None:
    key = str(uuid4())
    assert rendezvous.owner(key, ["b", "a", "c"]) == rendezvous.owner(key, ["c", "b", "a"])
    assert rendezvous.owner(key, []) is None


# -- signatures ---------------------------------------------------------------------------


def headers_of(signer: Signer, **kwargs: object) -> dict[bytes, bytes]:
    arguments = {"node_id": "node0", "method": "POST", "target": b"/api/x?a=1", "client": "1.2.3.4"}
    arguments.update(kwargs)  # type: ignore[arg-type]
    return dict(signer.forward_headers(**arguments))  # type: ignore[arg-type]


def test_a_forwarded_request_proves_its_node_and_client() -> None:
    signer = Signer(SECRET)
    checked = signer.check_forwarded(headers_of(signer), "POST", b"/api/x?a=1")
    assert (checked.node_id, checked.client) == ("node0", "1.2.3.4")
    assert SECRET.encode() not in b"".join(headers_of(signer).values())


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h.update({b"x-cluster-client": b"9.9.9.9"}),  # another client address
        lambda h: h.update({b"x-cluster-from": b"node1"}),
        lambda h: h.update({b"x-cluster-time": b"1"}),
        lambda h: h.pop(b"x-cluster-signature"),
        lambda h: h.update({b"x-cluster-signature": b"0" * 64}),
    ],
)
def test_a_forged_or_altered_forwarding_is_refused(tamper: object) -> None:
    signer = Signer(SECRET)
    headers = headers_of(signer)
    tamper(headers)  # type: ignore[operator]
    with pytest.raises(BadSignature):
        signer.check_forwarded(headers, "POST", b"/api/x?a=1")


def test_a_signature_is_good_for_its_own_request_and_secret_only() -> None:
    signer = Signer(SECRET)
    headers = headers_of(signer)
    for method, target in (("GET", b"/api/x?a=1"), ("POST", b"/api/x?a=2"), ("POST", b"/api/y")):
        with pytest.raises(BadSignature):
            signer.check_forwarded(headers, method, target)
    with pytest.raises(BadSignature):
        Signer("t" * 32).check_forwarded(headers, "POST", b"/api/x?a=1")


def test_a_captured_forwarding_cannot_be_replayed_later() -> None:
    signer = Signer(SECRET)
    headers = headers_of(signer, now=1_000_000.0)
    signer.check_forwarded(headers, "POST", b"/api/x?a=1", now=1_000_000.0 + MAX_AGE)
    with pytest.raises(BadSignature):
        signer.check_forwarded(headers, "POST", b"/api/x?a=1", now=1_000_000.0 + MAX_AGE + 1)


def test_only_a_node_with_the_secret_can_publish_where_it_is() -> None:
    signer = Signer(SECRET)
    signature = signer.sign_node("node0", "http://10.0.0.5:3000")
    assert signer.node_is_genuine("node0", "http://10.0.0.5:3000", signature)
    assert not signer.node_is_genuine("node0", "http://evil.example:80", signature)
    assert not signer.node_is_genuine("node0", "http://10.0.0.5:3000", "")
    assert not Signer("t" * 32).node_is_genuine("node0", "http://10.0.0.5:3000", signature)


def test_instance_paths_are_found_from_the_route_table() -> None:
    prefixes = instance_prefixes(
        ["/api/instances", "/api/instances/{instanceId}/qr", "/api/whatsapp/{instanceId}/send"]
    )
    instance = str(uuid4())
    assert instance_in(f"/api/instances/{instance}/qr", prefixes) == instance
    assert instance_in(f"/api/whatsapp/{instance.upper()}/send", prefixes) == instance
    assert instance_in("/api/instances", prefixes) is None
    assert instance_in("/api/instances/not-a-uuid/qr", prefixes) is None
    assert instance_in(f"/api/users/{instance}", prefixes) is None


def test_no_node_takes_more_than_its_bounded_share() -> None:
    # Plain rendezvous would give one node of three 16 of 30 instances about once in 20.
    worst = 0
    for _ in range(200):
        keys = [str(uuid4()) for _ in range(30)]
        placed = rendezvous.assign(keys, ["node0", "node1", "node2"])
        assert set(placed) == set(keys)
        worst = max(worst, *Counter(placed.values()).values())
    assert worst <= 13  # ceil(10 * 1.25)


def test_bounded_assignment_is_the_same_everywhere_and_moves_little_when_a_node_joins() -> None:
    keys = [str(uuid4()) for _ in range(300)]
    three = rendezvous.assign(keys, ["node2", "node0", "node1"])
    assert three == rendezvous.assign(list(reversed(keys)), ["node0", "node1", "node2"])
    four = rendezvous.assign(keys, ["node0", "node1", "node2", "node3"])
    moved = [k for k in keys if four[k] != three[k]]
    assert sum(1 for k in moved if four[k] == "node3") >= 0.8 * len(moved)
    assert len(moved) < 0.4 * len(keys)
