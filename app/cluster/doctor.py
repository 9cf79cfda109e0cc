"""What `whatsapp-api doctor` checks on a node of several: the database's clock, the other
nodes and the shared volume. Each finding is (level, check, message, fix)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from app.cluster.signing import Signer
from app.config import Settings
from app.eventstore import open_store
from app.storage import open_storage
from storage.provider import StoreUnavailable

#: How far apart two clocks may be: leases are judged by the clocks of the nodes.
CLOCK_TOLERANCE = 1.0
MARKER = ".cluster-node-"

Finding = tuple[str, str, str, str]


def mark_volume(settings: Settings) -> None:
    """Leave this node's mark in the directories every node must share (doctor looks for
    every live node's mark: a node whose volume is not shared has none of the others')."""
    assert settings.cluster is not None
    for directory in (settings.uploads_dir, settings.instances_dir):
        (directory / f"{MARKER}{settings.cluster.node_id}").write_text(settings.cluster.node_url)


def diagnose_cluster(settings: Settings) -> Iterator[Finding]:
    config = settings.cluster
    assert config is not None
    storage = open_storage(settings, timeout=5)
    try:
        try:
            store = open_store(storage, create=False)
        except StoreUnavailable as error:
            yield ("fail", "cluster", str(error), "check DATABASE_URL and that MongoDB runs")
            return
        try:
            cluster = storage.cluster(store.recorder)
            before = time.time()
            server = cluster.server_time()
            after = time.time()
            nodes = cluster.nodes()
        finally:
            store.close()
    except Exception as error:
        yield ("fail", "cluster", f"cannot read the cluster's records: {error}", "")
        return
    finally:
        storage.close()
    skew = server - (before + after) / 2
    if abs(skew) > CLOCK_TOLERANCE:
        yield (
            "fail",
            "cluster clock",
            f"this machine's clock is {skew:+.1f} s off the database server's",
            "run NTP (chrony, systemd-timesyncd) on every node and the database server",
        )
    else:
        yield ("ok", "cluster clock", f"within {abs(skew):.2f} s of the database server's", "")
    now = time.time()
    signer = Signer(config.secret)
    others = [n for n in nodes if n.node_id != config.node_id and n.live(now)]
    mine = next((n for n in nodes if n.node_id == config.node_id and n.live(now)), None)
    if mine is not None and mine.url != config.node_url:
        yield (
            "fail",
            "cluster node id",
            f"another live node uses NODE_ID {config.node_id} (at {mine.url})",
            "give every node a NODE_ID of its own",
        )
    yield (
        "ok",
        "cluster",
        f"node {config.node_id} ({config.node_url}); {len(others)} other live node(s)"
        + (": " + ", ".join(sorted(n.node_id for n in others)) if others else ""),
        "",
    )
    for node in others:
        yield from _other(node, signer, now, settings)


def _other(node: object, signer: Signer, now: float, settings: Settings) -> Iterator[Finding]:
    from storage.cluster import NodeRecord

    assert isinstance(node, NodeRecord)
    check = f"node {node.node_id}"
    if not signer.node_is_genuine(node.node_id, node.url, node.signature):
        yield (
            "fail",
            check,
            "its record is not signed with this node's CLUSTER_SECRET",
            "set the same CLUSTER_SECRET on every node",
        )
        return
    # A node writes its heartbeat with its own clock; one from the future is a clock ahead.
    if node.heartbeat - now > CLOCK_TOLERANCE:
        yield (
            "fail",
            check,
            f"its clock is at least {node.heartbeat - now:.1f} s ahead of this one",
            "run NTP on every node",
        )
    try:
        answer = httpx.get(node.url + "/health", timeout=3)
        reached = f"answers at {node.url} ({answer.status_code})"
        level = "ok" if answer.status_code == 200 else "warn"
    except httpx.HTTPError as error:
        reached = f"cannot be reached at {node.url}: {error}"
        level = "fail"
    yield (
        level,
        check,
        reached,
        "" if level == "ok" else "check NODE_URL on that node and the network between nodes",
    )
    for name, directory in (
        ("UPLOADS_DIR", settings.uploads_dir),
        ("INSTANCES_DIR", settings.instances_dir),
    ):
        if not (Path(directory) / f"{MARKER}{node.node_id}").exists():
            yield (
                "fail",
                check,
                f"{name} is not shared with it ({directory} has no mark of it)",
                "put UPLOADS_DIR and INSTANCES_DIR on one volume every node mounts "
                "(see the README: Running several nodes)",
            )
