"""Sustained load drill (loopback only, bounded): 200 sandbox instances, mixed traffic.

Sends between instances (so receipts flow), inbound messages from outside numbers and
webhook deliveries to a local receiver run together for a fixed time. At the end the
drill checks that acknowledged sends == MessageSent events == chat-history rows, that
every webhook event the store holds arrived (by X-Webhook-Delivery id: each expected id
received, and no id that was not expected), and compares memory after warm-up with
memory at the end of the load and once delivery has caught up. A send answered
`503 webhook_backlog` (the server pushing back while delivery is behind) is retried after
its Retry-After, as a client should. It prints a one-screen summary.

    .venv/bin/python bench/soak.py [--instances 200] [--seconds 60] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.webhooks.payloads import payload
from bench.figures import percentiles
from domain.instance import Instance
from domain.webhook import delivery_id
from tests.server import Api, Server, running_server

DRAIN_SECONDS = 120  # how long delivery may take to catch up once the load stops
SETTINGS = {"notifyReceived": True, "notifySent": True, "notifyDelivery": True, "notifyRead": True}


def receive(port_out: Connection) -> None:
    """The webhook receiver (in a process of its own, so that it shares no interpreter
    lock with the load generator): records each X-Webhook-Delivery id it acknowledges.
    GET /ids answers them, one per line, with the number of POSTs first."""
    ids: set[str] = set()
    posts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal posts
        await request.read()
        posts += 1
        ids.add(request.headers.get("X-Webhook-Delivery", ""))
        return web.Response(status=200)

    async def listing(request: web.Request) -> web.Response:
        return web.Response(text="\n".join([str(posts), *ids]))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_get("/ids", listing)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    asyncio.run(main())


class Receiver:
    def __init__(self) -> None:
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=receive, args=(theirs,), daemon=True
        )
        self.process.start()
        port = ours.recv()
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hook"

    def ids(self) -> tuple[int, set[str]]:
        async def fetch() -> str:
            async with aiohttp.ClientSession() as session, session.get(f"{self.base}/ids") as r:
                return await r.text()

        posts, *ids = asyncio.run(fetch()).split("\n")
        return int(posts), set(ids)

    def close(self) -> None:
        self.process.terminate()
        self.process.join(timeout=5)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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
    connector = aiohttp.TCPConnector(limit=clients)
    headers = {"Authorization": token}
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as http:

        async def client(n: int) -> None:
            rng = random.Random(n)
            while time.monotonic() < deadline:
                instance, _phone = rng.choice(instances)
                started = time.perf_counter()
                if rng.random() < 0.8:
                    kind, path = "send", f"/api/whatsapp/{instance}/send"
                    body = {"phone": rng.choice(phones), "message": "soak"}
                else:
                    kind, path = "inbound", f"/api/sandbox/instances/{instance}/inbound"
                    body = {"from": f"1999{rng.randrange(10**7):07d}", "message": "in"}
                async with http.post(path, json=body) as answer:
                    answered = await answer.json()
                    status, retry_after = answer.status, answer.headers.get("Retry-After")
                latencies.append((time.perf_counter() - started) * 1000)
                if status == 200:
                    counts[kind] += 1
                    if kind == "send":
                        acked.add(answered["id"])
                elif status == 503 and answered.get("code") == "webhook_backlog":
                    counts["refused"] += 1
                    wait = float(retry_after or 1)
                    await asyncio.sleep(max(0.0, min(wait, deadline - time.monotonic())))
                else:
                    counts["errors"] += 1

        await asyncio.gather(*(client(n) for n in range(clients)))


def expected_deliveries(server: Server) -> tuple[set[str], int, int]:
    """The delivery ids of every stored event that a webhook is due for, the number of
    MessageSent events, and the number of chat-history rows sent by the instances."""
    from app.eventstore import open_store
    from app.storage import open_storage

    storage = open_storage(server.settings())
    store = open_store(storage, create=False)
    expected: set[str] = set()
    sent = 0
    try:
        start = 1
        while True:
            page = store.recorder.select_notifications(start=start, limit=5000)
            for notification in page:
                if not notification.topic.startswith("domain.instance:Instance."):
                    continue
                event = store.mapper.to_domain_event(notification)
                sent += isinstance(event, Instance.MessageSent)
                if payload(event, SETTINGS) is not None:
                    expected.add(delivery_id(str(event.originator_id), event.originator_version))
            if len(page) < 5000:
                break
            start = page[-1].id + 1
    finally:
        store.close()
        storage.close()
    from tests.places import Storage

    history = len(Storage("sqlite", server.root).rows("messages", from_me=1))
    return expected, sent, history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200, help="sandbox instances")
    parser.add_argument("--seconds", type=float, default=60, help="length of the load")
    parser.add_argument("--warmup", type=float, default=10, help="load before memory is read")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
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
                maxRetries=10,
                retryInterval=200,
                **SETTINGS,
            )
            phone = f"1777{n:07d}"
            api.pair(created["id"], phone)
            instances.append((created["id"], phone))
        token = "Bearer " + api.http.headers["Authorization"].split(" ", 1)[1]
        assert server.process is not None
        pid = server.process.pid

        latencies: list[float] = []
        counts = {"send": 0, "inbound": 0, "refused": 0, "errors": 0}
        acked: set[str] = set()
        print(f"warming up for {args.warmup:g} s ...", flush=True)
        # Warm-up sends are acknowledged sends too: they count in the reconciliation.
        warm_counts = dict(counts)
        asyncio.run(
            drive(server.url, token, instances, args.warmup, args.clients, [], warm_counts, acked)
        )
        rss_warm = rss_kb(pid)
        print(f"load for {args.seconds:g} s with {args.clients} clients ...", flush=True)
        started = time.monotonic()
        asyncio.run(
            drive(
                server.url, token, instances, args.seconds, args.clients, latencies, counts, acked
            )
        )
        elapsed = time.monotonic() - started
        rss_end = rss_kb(pid)

        print("reading what the server stored ...", flush=True)
        expected, stored_sent, history_rows = expected_deliveries(server)
        print(f"waiting up to {DRAIN_SECONDS} s for {len(expected):,} deliveries ...", flush=True)
        drain_started = time.monotonic()
        while True:
            posts, received = receiver.ids()
            missing = expected - received
            waited = time.monotonic() - drain_started
            if not missing or waited > DRAIN_SECONDS:
                break
            print(f"  {waited:5.0f} s: {len(expected & received):,} delivered", flush=True)
            time.sleep(5)
        drained = time.monotonic() - drain_started
        rss_drained = rss_kb(pid)
        unexpected = received - expected

    receiver.close()
    p50, p99 = percentiles(latencies)
    lost = len(acked) != stored_sent or stored_sent != history_rows or bool(missing)
    growth = (rss_end - rss_warm) / max(rss_warm, 1)
    growth_drained = (rss_drained - rss_warm) / max(rss_warm, 1)
    bound = 0.25
    within = growth <= bound and growth_drained <= bound
    cores = os.cpu_count()
    print()
    print("=" * 70)
    print(
        f" soak drill: {args.instances} instances, {args.clients} clients, {elapsed:.0f} s "
        f"({cores}-core machine)"
    )
    print("-" * 70)
    print(f" requests          {len(latencies):>10,}   ({len(latencies) / elapsed:,.0f}/s)")
    print(
        f" sends acked       {counts['send']:>10,}   inbound {counts['inbound']:,}   "
        f"refused 503 {counts['refused']:,}   errors {counts['errors']:,}"
    )
    print(f" acked in all      {len(acked):>10,}   (with warm-up)")
    print(f" latency           p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    print(f" MessageSent       {stored_sent:>10,}   chat rows (fromMe) {history_rows:,}")
    print(
        f" webhook events    {len(expected):>10,}   delivered ids {len(expected & received):,}   "
        f"missing {len(missing):,}   unexpected {len(unexpected):,}   (posts {posts:,})"
    )
    print(f" caught up         {drained:>8.0f} s after the load (bound {DRAIN_SECONDS} s)")
    print(
        f" memory (RSS)      warm {rss_warm / 1024:.0f} MB   end {rss_end / 1024:.0f} MB "
        f"({growth:+.0%})   caught up {rss_drained / 1024:.0f} MB ({growth_drained:+.0%})   "
        f"bound {bound:.0%}"
    )
    print("-" * 70)
    print(f" acknowledged == stored == history: {len(acked) == stored_sent == history_rows}")
    print(f" every webhook event delivered:     {not missing and not unexpected}")
    print(f" memory within bound:               {within}")
    print(f" lost = {0 if not lost else 'SOME'}")
    print("=" * 70)
    return 1 if lost or unexpected or not within else 0


if __name__ == "__main__":
    sys.exit(main())
