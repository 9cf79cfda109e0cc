"""Memory of idle whatsmeow children: forked from the fork server, against the old way.

The old way starts each child as `python -m actors.engines.whatsmeow_child` (it imports
neonize for itself); the new way forks each from the fork server, which imported
neonize's Python side once (`actors/engines/whatsmeow_forkserver.py`). Both run here, in
the same run, `--children` at a time, each an idle offline client (neonize loaded, its Go
library initialised, its session opened, not connected). Per child, from
/proc/<pid>/smaps_rollup: PSS (what it costs the machine: its private pages plus its share
of pages it shares), private (clean + dirty) and shared (clean + dirty); the fork server's
own PSS is added to the new way's total (it is the price of sharing). Also per child: the
CPU time it used to get there (utime + stime from /proc/<pid>/stat), and the wall time to
start them one after another.

    .venv/bin/python bench/whatsmeow_memory.py [--children 50] [--settle 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.engines import whatsmeow_frames as f
from actors.engines.frames import Channel
from actors.engines.whatsmeow_forkserver import ForkServer

MB = 1024


def rollup(pid: int) -> dict[str, int]:
    """KiB figures from /proc/<pid>/smaps_rollup."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            found[parts[0][:-1]] = int(parts[1])
    return {
        "pss": found["Pss"],
        "private": found["Private_Clean"] + found["Private_Dirty"],
        "shared": found["Shared_Clean"] + found["Shared_Dirty"],
        "rss": found["Rss"],
    }


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) the process has used, in ms (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def old_way(root: Path, count: int) -> list[tuple[int, Any]]:
    children = []
    for n in range(count):
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "actors.engines.whatsmeow_child",
                str(root / f"old-{n}"),
                str(root / "uploads"),
                "1000000",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(root / f"old-{n}.log").open("wb"),
        )
        assert process.stdin is not None and process.stdout is not None
        channel: Channel[f.Report] = Channel(process.stdout, process.stdin, f.Report)
        ready = channel.receive()
        assert isinstance(ready, f.Ready), ready
        children.append((process.pid, (process, channel)))
    return children


def new_way(root: Path, count: int, server: ForkServer) -> list[tuple[int, Any]]:
    children = []
    for n in range(count):
        child = server.spawn(root / f"new-{n}", root / "uploads", 1_000_000, root / f"new-{n}.log")
        ready = child.channel.receive()
        assert isinstance(ready, f.Ready), ready
        children.append((child.pid, child))
    return children


def summary(label: str, figures: list[dict[str, int]], cpu: list[float], extra_pss: int = 0) -> str:
    def mb(values: list[int]) -> str:
        return f"{statistics.mean(values) / MB:6.1f}"

    pss = [r["pss"] for r in figures]
    total = (sum(pss) + extra_pss) / MB
    return (
        f" {label:<28} PSS {mb(pss)}  private {mb([r['private'] for r in figures])}  "
        f"shared {mb([r['shared'] for r in figures])}  RSS {mb([r['rss'] for r in figures])}"
        f"   total PSS {total:7.1f} MB ({total / len(figures):5.1f} per child)"
        f"   CPU to start {statistics.mean(cpu):5.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=50, help="children of each kind")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds to let children settle before measuring"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        print(f"whatsmeow children, {options.children} of each kind, idle and offline (MB)")

        started = time.perf_counter()
        old = old_way(root, options.children)
        old_seconds = time.perf_counter() - started
        time.sleep(options.settle)
        old_figures = [rollup(pid) for pid, _ in old]
        old_cpu = [cpu_ms(pid) for pid, _ in old]
        for _, (_process, channel) in old:
            channel.send(f.Stop())
        for _, (process, _) in old:
            process.wait(30)

        server = ForkServer()
        try:
            started = time.perf_counter()
            new = new_way(root, options.children, server)
            new_seconds = time.perf_counter() - started
            time.sleep(options.settle)
            new_figures = [rollup(pid) for pid, _ in new]
            new_cpu = [cpu_ms(pid) for pid, _ in new]
            assert server.pid is not None
            forkserver = rollup(server.pid)
            for _, child in new:
                child.channel.send(f.Stop())
            for _, child in new:
                child.wait(30)
        finally:
            server.close()

        print(summary("old: python -m (each)", old_figures, old_cpu))
        print(summary("new: forked from the server", new_figures, new_cpu, forkserver["pss"]))
        print(
            f" fork server itself            PSS {forkserver['pss'] / MB:6.1f}"
            f"  private {forkserver['private'] / MB:6.1f}"
        )
        ratio = statistics.mean(r["pss"] for r in new_figures) / statistics.mean(
            r["pss"] for r in old_figures
        )
        print(f" PSS per child, new / old: {ratio:.2f}")
        print(
            f" start-up: old {old_seconds / options.children * 1000:.0f} ms per child, "
            f"new {new_seconds / options.children * 1000:.0f} ms per child (sequential)"
        )


if __name__ == "__main__":
    main()
