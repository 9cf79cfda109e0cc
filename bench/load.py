"""What loading an aggregate costs after a hundred events and after a million, with the
snapshots the event store takes of every aggregate, in one run (SQLite).

Each kind of aggregate (instance, user, usage ledger, webhook log) is given its events
through the group committer, as the server gives them, then loaded again and again from
the store; the same loads without snapshots are the baseline. Prints the median time of
one load (wall and CPU), the events replayed on top of the snapshot, and the CPU it took
to fill the store (the events and the snapshots).

    .venv/bin/python bench/load.py [--events 1000000] [--loads 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.eventstore import SNAPSHOT_INTERVAL, EventStore, GroupCommitter
from domain.instance import Instance
from domain.usage import UsageLedger
from domain.user import User
from domain.webhook import WebhookLog
from storage.sqlite.events import environment

CHUNK = 1000  # events per commit while filling


def new_instance() -> Instance:
    instance = Instance(
        user_id="u", name="I", description="", engine="sandbox", webhook={}, engine_settings={}
    )
    instance.open_connection("15550000001", None)
    return instance


def new_user() -> User:
    return User(
        email="load@example.com",
        password_hash="x",
        first_name="L",
        last_name="",
        role="user",
        api_key_hash="h",
        api_key_sealed="s",
    )


# What one more event of each kind is: a send, a profile change, usage, a delivery.
KINDS: dict[str, tuple[Callable[[], Any], Callable[[Any, int], None]]] = {
    "instance": (
        new_instance,
        lambda a, n: a.record_sent(
            f"M{n}", "15550000002@s.whatsapp.net", "text", "hi", None, n, None
        ),
    ),
    "user": (new_user, lambda a, n: a.update_profile(f"L{n}", "")),
    "usage ledger": (
        UsageLedger,
        lambda a, n: a.record(
            [{"userId": "u", "instanceId": None, "day": "2026-01-01", "apiCalls": n}]
        ),
    ),
    "webhook log": (
        lambda: WebhookLog("i"),
        lambda a, n: a.delivered("i", n, "message_sent", f"d{n}", 1, 200, False),
    ),
}


def fill(store: EventStore, kind: str, events: int) -> Any:
    """An aggregate of `kind` with `events` events, stored through the group committer."""
    create, more = KINDS[kind]
    aggregate = create()
    committer = GroupCommitter(store)
    try:
        n = len(aggregate.pending_events)
        while n < events:
            for _ in range(min(CHUNK, events - n) - len(aggregate.pending_events)):
                more(aggregate, n)
                n += 1
            committer.commit(aggregate.collect_events())
            n = aggregate.version
        # The snapshots are taken in a thread of their own: wait for the last one due.
        due = aggregate.version // SNAPSHOT_INTERVAL * SNAPSHOT_INTERVAL
        assert store.snapshots is not None
        while True:
            last = list(store.snapshots.get(aggregate.id, desc=True, limit=1))
            if last and last[0].originator_version == due:
                break
            time.sleep(0.05)
    finally:
        committer.close()
    return aggregate


def timed_load(store: EventStore, aggregate_id: Any) -> tuple[float, float]:
    """The wall time and the CPU time of one load (seconds)."""
    started, cpu = time.perf_counter(), time.process_time()
    store.repository.get(aggregate_id)
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="the large count (+49)")
    parser.add_argument("--small", type=int, default=100, help="the small count (+49)")
    parser.add_argument("--loads", type=int, default=50, help="loads timed per figure")
    args = parser.parse_args()

    print("=" * 100)
    print(
        f" aggregate load: median of {args.loads} loads, SQLite, snapshot every {SNAPSHOT_INTERVAL};"
        " the small and the large store loaded in turns"
    )
    print("-" * 100)
    # The counts just short of the next snapshot: a load replays the most events there.
    counts = (args.small + SNAPSHOT_INTERVAL - 1, args.events + SNAPSHOT_INTERVAL - 1)
    for kind in KINDS:
        with tempfile.TemporaryDirectory() as scratch:
            stores, aggregates, fill_cpu = [], [], []
            paths = [str(Path(scratch) / f"es{n}.db") for n in (0, 1)]
            for n, events in enumerate(counts):
                store = EventStore(env=environment(paths[n]))
                cpu = time.process_time()
                aggregates.append(fill(store, kind, events))
                fill_cpu.append(time.process_time() - cpu)
                stores.append(store)
            timings: list[list[tuple[float, float]]] = [[], []]
            for _ in range(args.loads):
                for n in (0, 1):
                    timings[n].append(timed_load(stores[n], aggregates[n].id))
            cpu_each = []
            for n, events in enumerate(counts):
                store, aggregate = stores[n], aggregates[n]
                assert store.snapshots is not None
                last = list(store.snapshots.get(aggregate.id, desc=True, limit=1))
                replayed = aggregate.version - (last[0].originator_version if last else 0)
                wall = statistics.median(t[0] for t in timings[n])
                cpu_each.append(statistics.median(t[1] for t in timings[n]))
                bare = EventStore(env={**environment(paths[n]), "IS_SNAPSHOTTING_ENABLED": "no"})
                without, _ = timed_load(bare, aggregate.id)
                bare.close()
                store.close()
                print(
                    f" {kind:<13} {events:>9,} events: load {wall * 1e3:6.2f} ms,"
                    f" CPU {cpu_each[n] * 1e3:5.2f} ms ({replayed} events on the snapshot);"
                    f" without snapshots {without * 1e3:8.1f} ms (filling: {fill_cpu[n]:.0f} s CPU)"
                )
        print(
            f" {'':<13} CPU per load, {counts[1]:,} / {counts[0]:,} events:"
            f" {cpu_each[1] / cpu_each[0]:.2f}x"
        )
    print("=" * 100)


if __name__ == "__main__":
    main()
