"""Runs read-model projections live from the event store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from projections.base import Dispatch, ReadModelProjection
from projections.rows import Rows

log = logging.getLogger(__name__)

BATCH = 1000
#: How often a follower looks whether the writer has stored what it waits for (seconds).
FOLLOW_POLL = (0.002, 0.02)


class LiveProjections:
    """Feeds every stored event to a set of projections sharing one read-model store.

    A reader thread iterates the store's subscription; a writer thread applies what
    has arrived in batches, one transaction per batch with the tracking position of
    its last event, so rows never run ahead of or behind their position.

    On several nodes one node writes (`writing`, moved by the leader lease) and the others
    follow: they wait until the shared read models' tracking position has passed each
    batch, then tell their observers and waiters, exactly as a writer does after its
    commit. Two writers at once (while the lease moves) are still exactly-once: each
    batch's transaction reads and writes the tracking position, so one of them commits
    and the other skips what is done. `marks`, if given, says which batches change what
    nodes keep in caches; the writer then stores their position as the read models'
    `cache_mark`, so that every node can tell (projections/queries/cached.py).
    """

    def __init__(
        self,
        app: Application[Any],
        projections: list[ReadModelProjection],
        name: str,
        marks: Callable[[list[str]], bool] | None = None,
    ) -> None:
        self.app = app
        self.projections = projections
        self.store = projections[0].view
        self.name = name
        self.store.ensure(t for p in projections for t in p.tables)
        self.position = self.store.position(self.name)
        self.error: BaseException | None = None
        self.writing = True
        self.marks = marks
        self._stopping = False
        # Called with the topics of each batch once it is committed, before anyone waiting
        # for its positions is woken (caches of read-model rows forget what changed).
        self.observers: list[Callable[[Iterable[str]], None]] = []
        self._inbox: queue.Queue[Notification | None] = queue.Queue(maxsize=BATCH * 10)
        self._cond = threading.Condition()
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._subscription = app.recorder.subscribe(gt=self.position)
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-read", daemon=True)
        self._writer = threading.Thread(target=self._write, name=f"{self.name}-write", daemon=True)

    def start(self) -> None:
        self._reader.start()
        self._writer.start()

    def stop(self) -> None:
        self._stopping = True
        self._subscription.stop()
        self._reader.join(timeout=5)
        self._inbox.put(None)
        self._writer.join(timeout=5)

    # -- waiting ------------------------------------------------------------------

    def wait(self, position: int, timeout: float = 5.0) -> bool:
        """Block until the read models reflect `position`; False on timeout or failure."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.position >= position or self.error is not None, timeout=timeout
            )
            return self.position >= position

    async def wait_async(self, position: int, timeout: float = 5.0) -> bool:
        """Await until the read models reflect `position`; False on timeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self.position >= position:
                return True
            self._waiters.append((position, loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True

    def _advance(self, position: int) -> None:
        with self._cond:
            self.position = position
            self._cond.notify_all()
            ready = [w for w in self._waiters if w[0] <= position]
            self._waiters = [w for w in self._waiters if w[0] > position]
        # One wake-up per event loop, not one per waiter (each is a write to the loop's pipe).
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, loop, future in ready:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            # A loop closed since it waited (its waiter timed out and it ended) has nobody
            # left to wake; telling it would kill this thread.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, futures)

    # -- threads ------------------------------------------------------------------

    def _read(self) -> None:
        try:
            for notification in self._subscription:
                self._inbox.put(notification)
        except BaseException as error:  # surfaced by health checks
            log.exception("projection subscription failed")
            self.error = error

    def _write(self) -> None:
        mapper = self.app.mapper
        dispatch = Dispatch(self.projections)
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < BATCH:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._inbox.put(None)
                    break
                batch.append(more)
            if not self.writing and not self._follow(batch):
                continue  # the writer stored it; observers and waiters have been told

            def work(rows: Rows, batch: list[Notification] = batch) -> int:
                # After a rebuild swapped read models, the new ones may be ahead of us.
                done = rows.position(self.name)
                fresh = [n for n in batch if n.id > done]
                for notification in fresh:
                    dispatch(mapper.to_domain_event(notification), notification.id, rows)
                dispatch.finish(rows)
                if fresh:
                    rows.track(self.name, fresh[-1].id)
                    if self.marks is not None and self.marks([n.topic for n in fresh]):
                        rows.set_meta(CACHE_MARK, str(fresh[-1].id))
                return done

            try:
                done = self.store.atomically(work)
            except BaseException as error:
                log.exception("projection %s failed at position %s", self.name, batch[0].id)
                with self._cond:
                    self.error = error
                    self._cond.notify_all()
                return
            self._done(batch, done)

    def _done(self, batch: list[Notification], done: int) -> None:
        for observe in self.observers:
            observe(n.topic for n in batch)
        self._advance(max(batch[-1].id, done))

    def _follow(self, batch: list[Notification]) -> bool:
        """Wait (following another node's writer) until the read models have the batch;
        True if this node became the writer meanwhile and should apply it itself."""
        last = batch[-1].id
        pause = FOLLOW_POLL[0]
        while not self._stopping:
            if self.writing:
                return True
            try:
                done = self.store.position(self.name)
            except Exception:  # the database is away: a follower waits for it
                log.warning("cannot read the read models' position; retrying", exc_info=True)
                done = 0
            if done >= last:
                self._done(batch, done)
                return False
            time.sleep(pause)
            pause = min(pause * 2, FOLLOW_POLL[1])
        return False


#: The read models' meta key where the writer stores the position of the last batch that
#: changed cached rows (see `marks`).
CACHE_MARK = "cache_mark"


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
