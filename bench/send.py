"""Send path benchmark: the full send (HTTP, auth, actor, engine, durable event) against a bare
starlette endpoint that parses JSON and appends one row to SQLite (WAL, synchronous=FULL).

    .venv/bin/python bench/send.py [--instances 8] [--seconds 10] [--clients 32]

Both run as real uvicorn processes on 127.0.0.1, driven by the same 32-client load, and
the CPU time each server and the load generator used per request is printed beside the
rates (from /proc): on a small machine the load generator's share decides much of both.
A second, shorter full run measures the live projection lag: from an event's position
first appearing in the event store to the read models' tracking position reaching it
(both polled every millisecond or so from this process, which is why it is not done
while the rates are measured).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.server import Api, free_port, running_server, wait_until

BARE_APP = '''
import sqlite3, msgspec
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

db = sqlite3.connect(DB, check_same_thread=False, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS sends (id INTEGER PRIMARY KEY, phone TEXT, message TEXT)")

async def send(request):
    body = msgspec.json.decode(await request.body())
    with db:
        cursor = db.execute("INSERT INTO sends (phone, message) VALUES (?, ?)", (body["phone"], body["message"]))
    return JSONResponse({"id": cursor.lastrowid})

app = Starlette(routes=[Route("/send", send, methods=["POST"])])
'''


async def drive(url: str, paths: list[str], headers: dict[str, str], seconds: float,
                clients: int) -> tuple[int, int, list[float]]:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            i = n
            while time.monotonic() < deadline:
                started = time.perf_counter()
                answer = await http.post(paths[i % len(paths)], json={"phone": "15551230000", "message": "bench"})
                latencies.append((time.perf_counter() - started) * 1000)
                counts["ok" if answer.status_code == 200 else "errors"] += 1
                i += 1

    await asyncio.gather(*(client(n) for n in range(clients)))
    return counts["ok"], counts["errors"], latencies


class LagSampler:
    """Polls the event store's head and the read models' position; records stored -> visible."""

    def __init__(self, data: Path) -> None:
        from projections.store import ReadModelStore

        self._store = sqlite3.connect(data / "whatsapp-api.db", check_same_thread=False)
        self._read = ReadModelStore(data / "whatsapp-api-read.db")
        self.lags: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        pending: collections.deque[tuple[int, float]] = collections.deque()
        seen = 0
        while not self._stop.wait(0.001):
            now = time.perf_counter()
            (head,) = self._store.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()
            if head > seen:
                pending.append((head, now))
                seen = head
            position = self._read.position("read-models")
            while pending and pending[0][0] <= position:
                self.lags.append((now - pending.popleft()[1]) * 1000)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux); 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(url: str, paths: list[str], headers: dict[str, str], seconds: float, clients: int,
             pid: int) -> tuple[tuple[int, int, list[float]], float, float]:
    """One measured run, with the CPU seconds the server and this process used during it."""
    server, own = cpu_seconds(pid), time.process_time()
    result = asyncio.run(drive(url, paths, headers, seconds, clients))
    return result, cpu_seconds(pid) - server, time.process_time() - own


def summary(name: str, result: tuple[int, int, list[float]], seconds: float, server_cpu: float,
            client_cpu: float) -> tuple[float, float, float]:
    ok, errors, latencies = result
    ordered = sorted(latencies) or [0.0]
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rate = ok / seconds
    print(f" {name:<26} {rate:>9,.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   errors {errors}")
    per = 1000 / max(ok, 1)
    print(f" {'':<26} CPU per request: server {server_cpu * per:.2f} ms, load generator {client_cpu * per:.2f} ms")
    return rate, p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        # The full path.
        (root / "full").mkdir()
        with running_server(root / "full") as server:
            api = Api.login(server)
            peer = api.create_instance("peer")["id"]
            api.pair(peer, "15551230000")
            ids = []
            for n in range(args.instances):
                created = api.create_instance(f"bench-{n}")["id"]
                api.pair(created, f"1555124{n:04d}")
                ids.append(created)
            paths = [f"/api/whatsapp/{i}/send" for i in ids]
            headers = {"Authorization": api.http.headers["Authorization"]}
            asyncio.run(drive(server.url, paths, headers, args.warmup, args.clients))
            assert server.process is not None
            full = measured(server.url, paths, headers, args.seconds, args.clients, server.process.pid)
            with LagSampler(root / "full" / "data") as sampler:
                asyncio.run(drive(server.url, paths, headers, max(args.seconds / 2, 1), args.clients))
        # The bare endpoint.
        port = free_port()
        app_file = root / "bare_app.py"
        app_file.write_text(f"DB = {str(root / 'bare.db')!r}\n" + BARE_APP)
        bare_process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"], cwd=root,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _up(url), timeout=20)
            asyncio.run(drive(url, ["/send"], {}, args.warmup, args.clients))
            bare = measured(url, ["/send"], {}, args.seconds, args.clients, bare_process.pid)
        finally:
            bare_process.terminate()
            bare_process.wait(timeout=10)

    print()
    print("=" * 78)
    print(f" send benchmark: {args.clients} clients, {args.seconds:g} s each, {args.instances} instances, 2-core machine")
    print("-" * 78)
    full_rate, _, full_p99 = summary("full send path", full[0], args.seconds, *full[1:])
    bare_rate, _, _ = summary("bare JSON + SQLite append", bare[0], args.seconds, *bare[1:])
    print("-" * 78)
    ratio = full_rate / max(bare_rate, 1e-9)
    print(f" ratio full/bare: {ratio:.2f}x (target >= 1.0x)   full p99 {full_p99:.1f} ms (target <= 50 ms)")
    print(f" targets {'met' if ratio >= 1.0 and full_p99 <= 50 else 'NOT met'}")
    lags = sorted(sampler.lags) or [0.0]
    print(f" live projection lag (stored -> read model): p50 {lags[len(lags) // 2]:.1f} ms   "
          f"p99 {lags[min(len(lags) - 1, int(len(lags) * 0.99))]:.1f} ms   ({len(lags):,} samples)")
    print("=" * 78)
    return 0


def _up(url: str) -> bool:
    try:
        httpx.post(url + "/send", json={"phone": "x", "message": "warm"}, timeout=1)
        return True
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    sys.exit(main())
