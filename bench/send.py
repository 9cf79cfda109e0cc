"""Send path benchmark: the full send (HTTP, auth, actor, engine, durable event) against a bare
starlette endpoint that parses JSON and appends one row to SQLite (WAL, synchronous=FULL).

    .venv/bin/python bench/send.py [--instances 8] [--seconds 10] [--clients 32] [--flush-ms 0]

Both run as real uvicorn processes on 127.0.0.1, driven by the same 32-client aiohttp load,
and the CPU time each server and the load generator used per request is printed beside
the rates (from /proc). The load generator shares the machine's cores, so it is kept
cheaper than either server: what is measured is the servers.
A second, shorter full run measures the live projection lag: from an event's position
first appearing in the event store to the read models' tracking position reaching it
(both polled every millisecond or so from this process, which is why it is not done
while the rates are measured).

The bare endpoint pays one flush (fsync) per request, the full path one per group commit.
Where flushes are nearly free (this project's VM: about 0.1 ms) the bare endpoint is pure
CPU; `--flush-ms N` shows a disk whose flushes cost N ms more, as most real ones do.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import cpu_seconds, percentiles
from tests.server import Api, free_port, running_server, wait_until

BARE_APP = """
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
"""


@dataclass
class Run:
    ok: int
    errors: int
    latencies: list[float]  # ms
    server_cpu: float  # CPU seconds the server used during the window (0 if not asked)
    client_cpu: float  # and this process, the load generator


async def drive(
    url: str,
    paths: list[str],
    headers: dict[str, str],
    seconds: float,
    clients: int,
    server_pid: int = 0,
    method: str = "POST",
) -> Run:
    """Send for `seconds` with `clients` concurrent clients (one keep-alive connection each);
    with `method="GET"`, get the paths instead (no body)."""
    # aiohttp, not httpx: httpx spent 1.5-2 ms of CPU per request here, more than the full
    # server, so on 2 shared cores it was the load generator that set both rates.
    body = msgspec.json.encode({"phone": "15551230000", "message": "bench"})
    headers = {**headers, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    run = Run(0, 0, [], 0.0, 0.0)
    async with aiohttp.ClientSession(
        url, connector=connector, headers=headers, timeout=timeout
    ) as http:
        server, own = cpu_seconds(server_pid), time.process_time()
        deadline = time.monotonic() + seconds

        async def client(n: int) -> None:
            i = n
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with http.request(
                    method, paths[i % len(paths)], data=body if method == "POST" else None
                ) as answer:
                    await answer.read()
                run.latencies.append((time.perf_counter() - started) * 1000)
                if answer.status == 200:
                    run.ok += 1
                else:
                    run.errors += 1
                i += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
        run.server_cpu = cpu_seconds(server_pid) - server
        run.client_cpu = time.process_time() - own
    return run


class LagSampler:
    """Polls the event store's head and the read models' position; records stored -> visible."""

    def __init__(self, data: Path) -> None:
        from storage.sqlite.read_models import ReadModelStore

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
            (head,) = self._store.execute(
                "SELECT COALESCE(MAX(rowid), 0) FROM stored_events"
            ).fetchone()
            if head > seen:
                pending.append((head, now))
                seen = head
            position = self._read.position("read-models")
            while pending and pending[0][0] <= position:
                self.lags.append((now - pending.popleft()[1]) * 1000)


def codec_us(count: int = 20_000) -> tuple[float, float]:
    """CPU microseconds to encode one `MessageSent` event for the store, and to decode it,
    with the server's own mapper and transcoder (this process, one thread)."""
    from app.eventstore import EventStore
    from domain.instance import Instance
    from storage.sqlite.events import environment as sqlite_env

    instance = Instance(
        user_id="u", name="n", description="", engine="sandbox", webhook={}, engine_settings={}
    )
    instance.open_connection("15551239999", "Bench")
    instance.collect_events()
    instance.record_sent(
        "3EB0C767D26A1D5E", "15551230000@s.whatsapp.net", "text", "bench", None, 1700000000, None
    )
    (event,) = instance.collect_events()
    with tempfile.TemporaryDirectory() as scratch:
        store = EventStore(env=sqlite_env(str(Path(scratch) / "codec.db")))
        try:
            mapper = store.mapper
            started = time.process_time()
            for _ in range(count):
                stored = mapper.to_stored_event(event)
            encode = time.process_time() - started
            started = time.process_time()
            for _ in range(count):
                mapper.to_domain_event(stored)
            decode = time.process_time() - started
        finally:
            store.close()
    return encode / count * 1e6, decode / count * 1e6


def summary(name: str, run: Run, seconds: float) -> tuple[float, float, float]:
    p50, p99 = percentiles(run.latencies)
    rate = run.ok / seconds
    print(
        f" {name:<26} {rate:>9,.0f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   errors {run.errors}"
    )
    per = 1000 / max(run.ok, 1)
    print(
        f" {'':<26} CPU per request: server {run.server_cpu * per:.2f} ms, "
        f"load generator {run.client_cpu * per:.2f} ms"
    )
    return rate, p50, p99


FLUSH_PROBE = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (x)")
started = time.perf_counter()
for n in range(100):
    db.execute("INSERT INTO t VALUES (?)", (n,))
print((time.perf_counter() - started) * 10)
"""


def commit_ms(root: Path) -> float:
    """What one committed SQLite insert (WAL, synchronous=FULL) takes here, in a child
    process, so with the flush delay if one is preloaded."""
    probe = subprocess.run(
        [sys.executable, "-c", FLUSH_PROBE, str(root / "probe.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(probe.stdout)


def slow_flushes(root: Path, ms: float) -> None:
    """Make every fsync of the servers started from now on `ms` slower (see slow_flush.c)."""
    library = root / "slow_flush.so"
    source = Path(__file__).with_name("slow_flush.c")
    if shutil.which("cc") is None or not sys.platform.startswith("linux"):
        raise SystemExit("--flush-ms needs Linux and a C compiler (cc) to build bench/slow_flush.c")
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"], check=True
    )
    os.environ["LD_PRELOAD"] = str(library)
    os.environ["FLUSH_DELAY_US"] = str(int(ms * 1000))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--instances", type=int, default=8, help="sandbox instances to send from (default 8)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10, help="length of each measured run (default 10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2, help="unmeasured seconds before each run (default 2)"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument(
        "--flush-ms",
        type=float,
        default=0,
        help="make each fsync of both servers this much slower, as on a disk that "
        "honours flushes (Linux with a C compiler; default: the disk as it is)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        if args.flush_ms > 0:
            slow_flushes(root, args.flush_ms)
        commit = commit_ms(root)
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
            full = asyncio.run(
                drive(server.url, paths, headers, args.seconds, args.clients, server.process.pid)
            )
            with LagSampler(root / "full" / "data") as sampler:
                asyncio.run(
                    drive(server.url, paths, headers, max(args.seconds / 2, 1), args.clients)
                )
            # The HTTP loop alone: an authenticated GET of an instance's status goes through
            # uvicorn, the middleware, routing, auth, an actor ask and the access log line,
            # and stores nothing.
            status_paths = [f"/api/whatsapp/{i}/status" for i in ids]
            loop = asyncio.run(
                drive(
                    server.url,
                    status_paths,
                    headers,
                    max(args.seconds / 2, 1),
                    args.clients,
                    server.process.pid,
                    method="GET",
                )
            )
        # The bare endpoint.
        port = free_port()
        app_file = root / "bare_app.py"
        app_file.write_text(f"DB = {str(root / 'bare.db')!r}\n" + BARE_APP)
        bare_process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=root,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _up(url), timeout=20)
            asyncio.run(drive(url, ["/send"], {}, args.warmup, args.clients))
            bare = asyncio.run(
                drive(url, ["/send"], {}, args.seconds, args.clients, bare_process.pid)
            )
        finally:
            bare_process.terminate()
            bare_process.wait(timeout=10)

    print()
    print("=" * 78)
    print(
        f" send benchmark: {args.clients} clients, {args.seconds:g} s each, {args.instances} instances, {os.cpu_count()}-core machine"
    )
    flushes = (
        f"each fsync {args.flush_ms:g} ms slower (--flush-ms)"
        if args.flush_ms > 0
        else "as the disk does them"
    )
    print(
        f" flushes: {flushes}; one committed SQLite insert (synchronous=FULL) takes {commit:.2f} ms"
    )
    print("-" * 78)
    full_rate, _, full_p99 = summary("full send path", full, args.seconds)
    bare_rate, _, _ = summary("bare JSON + SQLite append", bare, args.seconds)
    summary("HTTP loop (GET status)", loop, max(args.seconds / 2, 1))
    encode, decode = codec_us()
    print(
        f" {'event encode / decode':<26} {encode:.1f} / {decode:.1f} us of CPU per MessageSent "
        "(the server's mapper, in this process)"
    )
    print("-" * 78)
    ratio = full_rate / max(bare_rate, 1e-9)
    print(
        f" ratio full/bare: {ratio:.2f}x (target >= 1.0x)   full p99 {full_p99:.1f} ms (target <= 50 ms)"
    )
    print(f" targets {'met' if ratio >= 1.0 and full_p99 <= 50 else 'NOT met'}")
    lag_p50, lag_p99 = percentiles(sampler.lags)
    print(
        f" live projection lag (stored -> read model): p50 {lag_p50:.1f} ms   "
        f"p99 {lag_p99:.1f} ms   ({len(sampler.lags):,} samples)"
    )
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
