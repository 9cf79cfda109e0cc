"""Several nodes on one MongoDB: throughput by node count, the cost of forwarding, failover.

    .venv/bin/python bench/cluster.py [--seconds 10] [--clients 16] [--kills 5]
                                      [--parts throughput,forwarding,failover]

Everything runs on this machine over loopback: SecantusDB (the MongoDB wire-protocol server
the tests use, started with a 5 s transaction lifetime), one to three `whatsapp-api serve`
nodes sharing one database and one instances/uploads directory, and an aiohttp load
generator that sends round-robin to the nodes, as a load balancer would. It prints:

1. sends per second and server CPU per send (from /proc: every node's, and the database's
   apart) with one, two and three nodes, the one-node run being the baseline;
2. the CPU a forwarded request costs the node that forwards it (its CPU per request when
   it forwards, less its CPU per request while the same requests go straight to the
   owner: it follows every stored event either way), against the CPU the owner spends
   on a request it is sent directly (sends, and status reads);
3. failover: five times, kill -9 the node holding the most instances and time until every
   instance it held is connected on another node (by its ConnectionOpened event), p50 and
   worst, against the target LEASE_TTL + 5 s.

The numbers are this machine's: the nodes, the database and the load generator share its
cores, so a node added cannot add a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import cpu_seconds, percentiles
from tests import mongo
from tests.cluster import Cluster, RoundRobin
from tests.server import Server, wait_until

LEASE_TTL = 5.0
INSTANCES = 12


async def drive(
    urls: list[str], paths: list[str], token: str, seconds: float, clients: int, method: str
) -> tuple[int, int]:
    """Requests for `seconds` by `clients` concurrent clients, each to the next URL in turn;
    (answered 200, other answers). A 503 is retried after its Retry-After (it counts once)."""
    body = msgspec.json.encode({"phone": "15551230000", "message": "bench"})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ok = failed = 0
    connector = aiohttp.TCPConnector(limit=clients * len(urls))
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        deadline = time.monotonic() + seconds

        async def client(n: int) -> None:
            nonlocal ok, failed
            i = n
            while time.monotonic() < deadline:
                url = urls[i % len(urls)] + paths[(i // len(urls)) % len(paths)]
                async with http.request(
                    method, url, data=body if method == "POST" else None
                ) as answer:
                    await answer.read()
                    if answer.status == 200:
                        ok += 1
                    elif answer.status == 503:
                        await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
                    else:
                        failed += 1
                i += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
    return ok, failed


def start(root: Path, url: str, size: int) -> tuple[Cluster, RoundRobin, list[str]]:
    cluster = Cluster(root, url, size, lease_ttl=f"{LEASE_TTL:g}s", LOG_LEVEL="warn")
    cluster.start()
    lb = RoundRobin.signed_in(cluster, patience=60)
    ids = [lb.create_paired(f"bench {i}", f"1555300{i:04d}") for i in range(INSTANCES)]
    return cluster, lb, ids


def token_of(lb: RoundRobin) -> str:
    return lb.headers["Authorization"].split(" ", 1)[1]


def node_pids(cluster: Cluster) -> list[int]:
    return [n.process.pid for n in cluster.running() if n.process is not None]


def throughput(
    url: str, db_pid: int, root: Path, size: int, seconds: float, clients: int
) -> dict[str, float]:
    cluster, lb, ids = start(root, url, size)
    try:
        paths = [f"/api/whatsapp/{i}/send" for i in ids]
        pids = node_pids(cluster)
        asyncio.run(drive([n.url for n in cluster.nodes], paths, token_of(lb), 2, clients, "POST"))
        before = sum(cpu_seconds(p) for p in pids), cpu_seconds(db_pid)
        started = time.monotonic()
        ok, failed = asyncio.run(
            drive([n.url for n in cluster.nodes], paths, token_of(lb), seconds, clients, "POST")
        )
        elapsed = time.monotonic() - started
        nodes_cpu = sum(cpu_seconds(p) for p in pids) - before[0]
        db_cpu = cpu_seconds(db_pid) - before[1]
        return {
            "rate": ok / elapsed,
            "ok": ok,
            "failed": failed,
            "node_ms": nodes_cpu / max(ok, 1) * 1000,
            "db_ms": db_cpu / max(ok, 1) * 1000,
        }
    finally:
        lb.close()
        cluster.stop()
        cluster.drop()


def forwarding(url: str, root: Path, seconds: float, clients: int) -> dict[str, float]:
    """Two nodes; requests for node0's instances sent to node0 (local) and to node1
    (forwarded), with both nodes' CPU measured in each run. A node spends CPU on every
    stored event whether or not it forwards (it follows the read models and the webhook
    feed), so the cost of forwarding is node1's CPU per request when it forwards less its
    CPU per request when the same requests go straight to node0; a local request costs
    node0's CPU per request when it is reached directly."""
    cluster, lb, ids = start(root, url, 2)
    try:
        owners = cluster.lease_owners()
        owner, entry = cluster.nodes
        theirs = [i for i in ids if owners.get(i) == owner.env["NODE_ID"]]
        assert owner.process is not None and entry.process is not None
        pids = (owner.process.pid, entry.process.pid)
        figures: dict[str, float] = {}
        for label, method, paths in (
            ("send", "POST", [f"/api/whatsapp/{i}/send" for i in theirs]),
            ("status", "GET", [f"/api/whatsapp/{i}/status" for i in theirs]),
        ):
            for where, node in (("local", owner), ("forwarded", entry)):
                before = [cpu_seconds(p) for p in pids]
                ok, _ = asyncio.run(
                    drive([node.url], paths, token_of(lb), seconds, clients, method)
                )
                spent = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
                figures[f"{label}_{where}_owner_ms"] = spent[0] / max(ok, 1) * 1000
                figures[f"{label}_{where}_entry_ms"] = spent[1] / max(ok, 1) * 1000
        return figures
    finally:
        lb.close()
        cluster.stop()
        cluster.drop()


def failovers(url: str, root: Path, kills: int) -> list[float]:
    cluster, lb, ids = start(root, url, 3)
    try:
        return [one_failover(cluster, lb, ids) for _ in range(kills)]
    finally:
        lb.close()
        cluster.stop()
        cluster.drop()


def one_failover(cluster: Cluster, lb: RoundRobin, ids: list[str]) -> float:
    """Kill -9 the node holding the most instances; seconds until every one of them is
    connected on another node; then start it again and wait until it has its share."""
    owners = cluster.lease_owners()
    victim_id = Counter(owners[i] for i in ids if owners.get(i)).most_common(1)[0][0]
    victim: Server = next(n for n in cluster.nodes if n.env["NODE_ID"] == victim_id)
    theirs = [i for i in ids if owners.get(i) == victim_id]
    assert victim.process is not None
    killed = time.time()
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    victim.process = None
    lb.skip = {victim.url}

    def moved() -> bool:
        now = cluster.lease_owners()
        return all(now.get(i) not in (None, victim_id) for i in theirs)

    def reconnected(instance_id: str) -> list[float]:
        events = cluster.nodes[0].stored_events(instance_id, topic="ConnectionOpened")
        return [e.timestamp.timestamp() for e in events if e.timestamp.timestamp() > killed]

    wait_until(moved, 120, 0.2)
    latest = max(
        min(wait_until(lambda i=instance_id: reconnected(i), 60, 0.2)) for instance_id in theirs
    )
    victim.start(timeout=120)
    lb.skip = set()
    wait_until(lambda: victim_id in set(cluster.lease_owners().values()), 120, 0.2)
    return latest - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent load clients")
    parser.add_argument("--kills", type=int, default=5, help="kill -9 rounds for failover")
    parser.add_argument(
        "--parts",
        default="throughput,forwarding,failover",
        help="which measurements to make (comma-separated; default all)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print(
        f"cluster benchmark: {os.cpu_count()} cores, {INSTANCES} sandbox instances, "
        f"{args.clients} clients, LEASE_TTL {LEASE_TTL:g} s, SecantusDB"
    )
    with tempfile.TemporaryDirectory() as scratch, mongo.secantus() as url:
        if "throughput" in parts:
            print_throughput(url, Path(scratch), args.seconds, args.clients)
        if "forwarding" in parts:
            print_forwarding(url, Path(scratch), args.seconds, args.clients)
        if "failover" in parts:
            print_failover(url, Path(scratch), args.kills)


def print_throughput(url: str, scratch: Path, seconds: float, clients: int) -> None:
    db_pid = _secantus_pid(url)
    runs = {}
    for size in (1, 2, 3):
        runs[size] = throughput(url, db_pid, scratch / f"t{size}", size, seconds, clients)
    base = runs[1]["rate"]
    print("\nthroughput (sends acknowledged, round robin over the nodes)")
    for size, run in runs.items():
        print(
            f"  {size} node(s)  {run['rate']:7.1f} sends/s  ({run['rate'] / base:.2f}x one node)"
            f"   node CPU {run['node_ms']:.2f} ms/send   database CPU {run['db_ms']:.2f} ms/send"
            f"   failed {int(run['failed'])}"
        )


def print_forwarding(url: str, scratch: Path, seconds: float, clients: int) -> None:
    f = forwarding(url, scratch / "f", seconds, clients)
    print("\nforwarding (two nodes; CPU per request of the owner and of the other node)")
    for label in ("send", "status"):
        local = f[f"{label}_local_owner_ms"]
        idle = f[f"{label}_local_entry_ms"]
        entry = f[f"{label}_forwarded_entry_ms"]
        cost = entry - idle
        print(
            f"  {label:6}  local: owner {local:.2f} ms, other node meanwhile {idle:.2f} ms"
            f"   forwarded: other node {entry:.2f} ms, owner "
            f"{f[f'{label}_forwarded_owner_ms']:.2f} ms"
            f"   forwarding costs {cost:.2f} ms = {cost / local:.0%} of local (target <= 30%)"
        )


def print_failover(url: str, scratch: Path, kills: int) -> None:
    times = failovers(url, scratch / "k", kills)
    p50, _ = percentiles(times)
    worst = max(times)
    print(f"\nfailover over {len(times)} kill -9 (until every instance is connected elsewhere)")
    print(
        "  "
        + "  ".join(f"{t:.1f}s" for t in times)
        + f"   p50 {p50:.1f} s   worst {worst:.1f} s   target <= {LEASE_TTL + 5:g} s: "
        + ("met" if worst <= LEASE_TTL + 5 else "NOT met")
    )


def _secantus_pid(url: str) -> int:
    """The SecantusDB child process listening on the URL's port (for its CPU time)."""
    port = url.rsplit(":", 1)[1].strip("/")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                b"--port" in command
                and port.encode() in command
                and b"secantus" in b" ".join(command)
            ):
                return int(entry.name)
    return 0


if __name__ == "__main__":
    main()
