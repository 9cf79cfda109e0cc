"""Sustained load drill (loopback only, bounded): 200 sandbox instances, mixed traffic.

Sends between instances (so receipts flow), inbound messages from outside numbers and
webhook deliveries to a local receiver run together for a fixed time. At the end the
drill checks that acknowledged sends == MessageSent events == chat-history rows, that
every webhook event arrived at least once, and compares memory after warm-up with
memory at the end. It prints a one-screen summary.

    .venv/bin/python bench/soak.py [--instances 200] [--seconds 60] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from tests.server import Api, running_server, wait_until


class Receiver:
    """Counts webhook deliveries by X-Webhook-Delivery id."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.posts = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    receiver.posts += 1
                    receiver.ids.add(self.headers.get("x-webhook-delivery", ""))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


async def drive(
    url: str,
    token: str,
    instances: list[tuple[str, str]],
    seconds: float,
    clients: int,
    latencies: list[float],
    counts: dict[str, int],
    acked: set[str],
) -> None:
    deadline = time.monotonic() + seconds
    phones = [phone for _, phone in instances]

    async def client(n: int) -> None:
        rng = random.Random(n)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": token}, timeout=30
        ) as http:
            while time.monotonic() < deadline:
                instance, _phone = rng.choice(instances)
                started = time.perf_counter()
                if rng.random() < 0.8:
                    answer = await http.post(
                        f"/api/whatsapp/{instance}/send",
                        json={"phone": rng.choice(phones), "message": "soak"},
                    )
                    kind = "send"
                else:
                    answer = await http.post(
                        f"/api/sandbox/instances/{instance}/inbound",
                        json={"from": f"1999{rng.randrange(10**7):07d}", "message": "in"},
                    )
                    kind = "inbound"
                latencies.append((time.perf_counter() - started) * 1000)
                if answer.status_code == 200:
                    counts[kind] += 1
                    if kind == "send":
                        acked.add(answer.json()["id"])
                else:
                    counts["errors"] += 1

    await asyncio.gather(*(client(n) for n in range(clients)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()

    receiver = Receiver()
    with tempfile.TemporaryDirectory() as scratch, running_server(Path(scratch)) as server:
        api = Api.login(server)
        print(f"creating and pairing {args.instances} instances ...", flush=True)
        instances: list[tuple[str, str]] = []
        for n in range(args.instances):
            created = api.create_instance(
                f"soak-{n}",
                webhookUrl=receiver.url,
                webhookEnabled=True,
                notifyDelivery=True,
                notifyRead=True,
                maxRetries=10,
                retryInterval=200,
            )
            phone = f"1777{n:07d}"
            api.pair(created["id"], phone)
            instances.append((created["id"], phone))
        token = api.http.headers["Authorization"].split(" ", 1)[1]
        assert server.process is not None
        pid = server.process.pid

        latencies: list[float] = []
        counts = {"send": 0, "inbound": 0, "errors": 0}
        acked: set[str] = set()
        print(f"warming up for {args.warmup:g} s ...", flush=True)
        # Warm-up sends are acknowledged sends too: they count in the reconciliation.
        asyncio.run(
            drive(
                server.url,
                f"Bearer {token}",
                instances,
                args.warmup,
                args.clients,
                [],
                dict(counts),
                acked,
            )
        )
        rss_warm = rss_kb(pid)
        print(f"load for {args.seconds:g} s with {args.clients} clients ...", flush=True)
        started = time.monotonic()
        asyncio.run(
            drive(
                server.url,
                f"Bearer {token}",
                instances,
                args.seconds,
                args.clients,
                latencies,
                counts,
                acked,
            )
        )
        elapsed = time.monotonic() - started
        rss_end = rss_kb(pid)

        db_path = Path(scratch) / "data" / "whatsapp-api.db"
        head = (
            sqlite3.connect(db_path).execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
        )

        def settled() -> bool:
            from storage.sqlite.read_models import ReadModelStore

            read = ReadModelStore(Path(scratch) / "data" / "whatsapp-api-read.db")
            row = read.db.execute(
                "SELECT position FROM tracking WHERE name='read-models'"
            ).fetchone()
            return bool(row and row[0] >= head)

        wait_until(settled, timeout=120)
        store = sqlite3.connect(db_path)
        stored_sent = store.execute(
            "SELECT COUNT(*) FROM stored_events WHERE topic LIKE '%MessageSent'"
        ).fetchone()[0]
        webhook_events = store.execute(
            "SELECT COUNT(*) FROM stored_events WHERE topic LIKE 'domain.instance:%' AND "
            "(topic LIKE '%MessageSent' OR topic LIKE '%MessageReceived' OR topic LIKE '%MessageStatusChanged' "
            "OR topic LIKE '%QrReceived' OR topic LIKE '%ConnectionOpened' OR topic LIKE '%ConnectionClosed')"
        ).fetchone()[0]
        from storage.sqlite.read_models import ReadModelStore

        read = ReadModelStore(Path(scratch) / "data" / "whatsapp-api-read.db")
        history_rows = read.db.execute(
            "SELECT COUNT(*) FROM messages WHERE from_me = 1"
        ).fetchone()[0]
        # Deliveries may still be in flight: give them a bounded while.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: len(receiver.ids) >= webhook_events, timeout=120, interval=0.5)
        missing = webhook_events - len(receiver.ids)

    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    lost = (len(acked) != stored_sent) or (stored_sent != history_rows) or missing > 0
    growth = (rss_end - rss_warm) / max(rss_warm, 1)
    bound = 0.25
    print()
    print("=" * 64)
    print(
        f" soak drill: {args.instances} instances, {args.clients} clients, {elapsed:.0f} s ({os.cpu_count()}-core machine)"
    )
    print("-" * 64)
    print(f" requests          {len(latencies):>10,}   ({len(latencies) / elapsed:,.0f}/s)")
    print(
        f" sends acked       {counts['send']:>10,}   inbound {counts['inbound']:,}   errors {counts['errors']:,}"
    )
    print(f" acked in all      {len(acked):>10,}   (with warm-up)")
    print(f" latency           p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    print(f" MessageSent       {stored_sent:>10,}   chat rows (fromMe) {history_rows:,}")
    print(
        f" webhook events    {webhook_events:>10,}   delivered ids {len(receiver.ids):,} (posts {receiver.posts:,})"
    )
    print(
        f" memory (RSS)      warm {rss_warm / 1024:.0f} MB   end {rss_end / 1024:.0f} MB   "
        f"growth {growth:+.0%} (bound {bound:.0%})"
    )
    print("-" * 64)
    print(f" acknowledged == stored == history: {len(acked) == stored_sent == history_rows}")
    print(f" every webhook event delivered:     {missing <= 0}")
    print(f" memory within bound:               {growth <= bound}")
    print(f" lost = {0 if not lost else 'SOME'}")
    print("=" * 64)
    return 1 if lost or growth > bound else 0


if __name__ == "__main__":
    sys.exit(main())
