"""Rebuild benchmark: rebuild-projections against the raw rate of reading and decoding events.

Fills a fresh store with realistic events (many instances, mixed types), then times, in
the same run, reading and decoding every event without projecting, and a full rebuild
of all read models. Target: rebuild >= 30% of the raw rate.

    .venv/bin/python bench/rebuild.py [--events 1000000] [--instances 500]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.eventstore import EventStore
from domain.instance import Instance
from domain.user import User
from domain.webhook import WebhookLog
from projections.rebuild import rebuild
from storage.sqlite.events import environment as sqlite_env
from storage.sqlite.read_models import ReadModelStore

PAGE = 5000


def fill(store: EventStore, total: int, instances: int) -> int:
    rng = random.Random(7)
    users = [
        User(
            email=f"u{n}@example.com",
            password_hash="x",
            first_name="",
            last_name="",
            role="user",
            api_key_hash=f"h{n}",
            api_key_sealed="s",
        )
        for n in range(10)
    ]
    store.save(*users)
    fleet = []
    for n in range(instances):
        instance = Instance(
            user_id=str(users[n % 10].id),
            name=f"i{n}",
            description="",
            engine="sandbox",
            webhook={"url": "http://127.0.0.1:9/h", "enabled": True},
            engine_settings={},
        )
        instance.request_connection("start")
        instance.receive_qr("sandbox@x")
        instance.open_connection(f"1555{n:07d}", f"I{n}")
        fleet.append(instance)
    # Messages each instance sent whose receipts are still to come: (id, peer, next status).
    # Receipts go to these, in order (delivered, then read), as WhatsApp sends them.
    awaiting: dict[str, collections.deque[tuple[str, str, str]]] = {
        str(i.id): collections.deque() for i in fleet
    }
    logs = {str(i.id): WebhookLog(str(i.id)) for i in fleet[:50]}
    store.save(*fleet, *logs.values())
    written = len(users) + len(fleet) * 4 + len(logs)
    kinds = collections.Counter[str]()
    started = time.perf_counter()
    while written < total:
        batch = 0
        for instance in rng.sample(fleet, min(len(fleet), 100)):
            for _ in range(10):
                roll = rng.random()
                peer = f"1666{rng.randrange(10**7):07d}@s.whatsapp.net"
                pending = awaiting[str(instance.id)]
                if 0.6 <= roll < 0.95 and not pending:
                    roll = 0.0  # nothing awaits a receipt: a send instead
                if roll < 0.35:
                    media = (
                        {
                            "path": "/u/x.jpg",
                            "filename": "x.jpg",
                            "mimetype": "image/jpeg",
                            "size": 5000,
                        }
                        if rng.random() < 0.1
                        else None
                    )
                    instance.record_sent(
                        f"M{written + batch}",
                        peer,
                        "image" if media else "text",
                        "hello there",
                        media,
                        1700000000,
                        None,
                    )
                    pending.append((f"M{written + batch}", peer, "delivered"))
                    kinds["sent"] += 1
                elif roll < 0.6:
                    instance.record_received(
                        f"R{written + batch}", peer, "Zed", "text", "hi!", None, 1700000000
                    )
                elif roll < 0.95:
                    # The oldest message awaiting a receipt, most of the time; now and then
                    # a later one (receipts of several chats interleave).
                    k = 0 if rng.random() < 0.8 else rng.randrange(len(pending))
                    message_id, to, status = pending[k]
                    instance.record_status(message_id, status, to, True)
                    kinds["status"] += 1
                    if status == "delivered":
                        pending[k] = (message_id, to, "read")
                    else:
                        del pending[k]
                elif roll < 0.98:
                    instance.close_connection("connection_lost", True)
                    instance.open_connection(None, None)
                    batch += 1
                else:
                    instance.update({"name": f"renamed {batch}"})
                batch += 1
        for log in logs.values():
            log.delivered(
                instance_id=log.instance_id,
                position=written,
                event_type="message_sent",
                delivery_id="d",
                attempts=1,
                status_code=200,
                replay=False,
            )
            batch += 1
        store.save(*fleet, *logs.values())
        written += batch
        rate = written / max(time.perf_counter() - started, 1e-9)
        print(f"\r filling: {written:,} events ({rate:,.0f}/s)", end="", flush=True)
    print()
    print(
        f" {kinds['sent']:,} messages sent, {kinds['status']:,} receipts, each for a message its "
        "instance sent earlier (delivered, then read)"
    )
    return written


def read_all(store: EventStore) -> tuple[int, float]:
    started = time.perf_counter()
    cpu = time.process_time()
    position, count = 0, 0
    while True:
        page = store.recorder.select_notifications(
            start=position, limit=PAGE, inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            store.mapper.to_domain_event(notification)
        count += len(page)
        position = page[-1].id
    CPU["raw"] = time.process_time() - cpu
    return count, time.perf_counter() - started


CPU: dict[str, float] = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--instances", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = EventStore(env=sqlite_env(str(Path(scratch) / "es.db")))
        total = fill(store, args.events, args.instances)
        raw_count, raw_seconds = read_all(store)
        live = ReadModelStore(Path(scratch) / "read.db")
        last = [time.perf_counter()]

        def progress(position: int, head: int) -> None:
            if time.perf_counter() - last[0] > 1:
                last[0] = time.perf_counter()
                print(f"\r rebuilding: {position:,}/{head:,}", end="", flush=True)

        cpu = time.process_time()
        result = rebuild(store, live, (), progress)
        CPU["rebuild"] = time.process_time() - cpu
        print()
        store.close()
    raw_rate = raw_count / raw_seconds
    rebuild_rate = result.events / result.seconds
    ratio = rebuild_rate / raw_rate
    print("=" * 70)
    print(
        f" rebuild benchmark: {total:,} events, {args.instances} instances, {os.cpu_count()}-core machine"
    )
    print("-" * 70)
    print(f" read + decode (no projecting)  {raw_rate:>10,.0f} events/s  ({raw_seconds:.1f} s)")
    print(
        f" rebuild-projections (all)      {rebuild_rate:>10,.0f} events/s  ({result.seconds:.1f} s)"
    )
    print(f" ratio {ratio:.0%} (target >= 30%): {'met' if ratio >= 0.3 else 'NOT met'}")
    # On a shared machine the two wall-clock rates can meet different loads: CPU time
    # (this process's, both single-threaded) says how much of the gap is the machine.
    print(
        f" CPU time: read + decode {CPU['raw']:.1f} s, rebuild {CPU['rebuild']:.1f} s, "
        f"ratio {CPU['raw'] / CPU['rebuild'] * result.events / raw_count:.0%}"
    )
    print("=" * 70)
    return 0


if __name__ == "__main__":
    sys.exit(main())
