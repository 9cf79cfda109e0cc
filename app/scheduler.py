"""Periodic jobs on cron schedules (croniter), in the server's event loop.

A job never runs twice at once (its next run is computed after it finishes) and a job
that fails is logged and runs again at its next time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from croniter import croniter

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


class Scheduler:
    def __init__(self) -> None:
        self._jobs: list[tuple[str, str, Job]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, name: str, cron: str, job: Job) -> None:
        self._jobs.append((name, cron, job))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(*job), name=job[0]) for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, name: str, cron: str, job: Job) -> None:
        while True:
            await asyncio.sleep(next_delay(cron, datetime.now(UTC)))
            await run_job(name, job)


def next_delay(cron: str, now: datetime) -> float:
    """Seconds from `now` until the cron expression's next time."""
    following = croniter(cron, now).get_next(datetime)
    return max(0.0, (following - now).total_seconds())


async def run_job(name: str, job: Job) -> None:
    try:
        result = await job()
        log.debug("job %s done: %s", name, result)
    except Exception:
        log.exception("job %s failed; it runs again at its next time", name)
