"""Live audit streams (server-sent events): one feed for every stream, fanned out in memory.

Each stored event reaches the streams once: while a stream is open, `EventStreams`
follows one subscription to the store for all of them, waits until the read models
include each batch, decodes each event that some stream wants once, and appends its
text to those streams' buffers. A stream reads the store only to catch up:
when it opens (from `after` / `Last-Event-ID`) and when it fell so far behind that its
buffer overflowed; a slow client therefore costs its own store reads, never memory
without bound, and never a store read per event for everyone.

Access is checked again every time a stream wakes (each batch, each keep-alive, the
token's expiry, and every batch with a user event in it), from the in-memory state the
API authenticates against: a deactivated or demoted administrator, an expired or revoked
token, a rotated API key or a deleted instance ends the stream at once. Streams are
capped per user and per server (429).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import anyio
from eventsourcing.persistence import Notification
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app import history
from app.errors import ApiError

log = logging.getLogger(__name__)

KEEPALIVE = 15.0
PAGE = 500
BUFFER = 2000  # events a stream holds for a slow client before it goes back to the store
USER_TOPICS = "domain.user:"

# Raises ApiError when the caller may no longer watch; else the seconds until its
# credentials expire (None: they do not).
Check = Callable[[], float | None]


class Stream:
    """One open stream: what it watches, and what the feed has handed it so far."""

    def __init__(
        self,
        user_id: str,
        originator: UUID | None,
        topics: frozenset[str],
        after: int,
        check: Check,
    ) -> None:
        self.user_id = user_id
        self.originator = originator
        self.topics = topics
        self.after = after
        self.check = check
        self.buffer: list[tuple[int, str]] = []
        self.behind = True  # the store holds events the buffer does not: read them first
        self.wake = asyncio.Event()

    def offer(self, position: int, text: str) -> None:
        if len(self.buffer) >= BUFFER:
            # Everything offered is stored already: forget it and read it back later.
            self.buffer.clear()
            self.behind = True
        else:
            self.buffer.append((position, text))
        self.wake.set()


class EventStreams:
    """Every open audit stream of the server, fed from one subscription."""

    def __init__(self, store: Any, projections: Any, per_user: int, total: int) -> None:
        self.store = store
        self.projections = projections
        self.per_user = per_user
        self.total = total
        self.streams: set[Stream] = set()
        self._everything: set[Stream] = set()  # streams of every instance (administrators)
        self._by_originator: dict[UUID | str, set[Stream]] = {}  # a notification may say either
        self._users: collections.Counter[str] = collections.Counter()
        self._pending: collections.deque[Notification] = collections.deque()
        self._scheduled = False
        self._drainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: Any = None
        # For /metrics: store reads and decoded events, however many streams are open.
        self.store_reads = 0
        self.decoded = 0

    # -- opening and closing (the event loop) ------------------------------------------

    def open(
        self, user_id: str, originator: UUID | None, topics: list[str], after: int, check: Check
    ) -> Stream:
        """Register a stream, or refuse it (429) over the per-user or per-server cap."""
        if self._users[user_id] >= self.per_user:
            raise ApiError(
                429,
                "too_many_streams",
                f"You have {self._users[user_id]} event streams open, the most allowed; "
                "close one first",
                retry_after=5,
            )
        if len(self.streams) >= self.total:
            raise ApiError(
                429,
                "too_many_streams",
                "The server has as many event streams open as it allows; try again later",
                retry_after=5,
            )
        stream = Stream(user_id, originator, frozenset(topics), after, check)
        if not self.streams:
            self._follow()
        self.streams.add(stream)
        self._users[user_id] += 1
        if originator is None:
            self._everything.add(stream)
        else:
            self._by_originator.setdefault(originator, set()).add(stream)
        return stream

    def close(self, stream: Stream) -> None:
        if stream not in self.streams:
            return
        self.streams.discard(stream)
        self._users[stream.user_id] -= 1
        if self._users[stream.user_id] <= 0:
            del self._users[stream.user_id]
        if stream.originator is None:
            self._everything.discard(stream)
        else:
            watchers = self._by_originator.get(stream.originator)
            if watchers is not None:
                watchers.discard(stream)
                if not watchers:
                    del self._by_originator[stream.originator]
        if not self.streams and self._subscription is not None:
            self._subscription.stop()  # its reader thread ends with it
            self._subscription = None

    # -- the feed ----------------------------------------------------------------------

    def _follow(self) -> None:
        """Subscribe to the store for the streams (from where the read models are: each
        stream reads what came before from the store itself, and positions it has sent
        already are not sent again)."""
        self._loop = asyncio.get_running_loop()
        subscription = self.store.recorder.subscribe(gt=self.projections.position)
        self._subscription = subscription

        def read() -> None:
            try:
                for notification in subscription:
                    self._notice(notification)
            except Exception:
                if subscription is not self._subscription:
                    return  # stopped: no stream is open any more
                log.exception("event streams: the store subscription failed")
                if self._loop is not None:  # the streams catch up from the store
                    self._loop.call_soon_threadsafe(self._fall_back)

        threading.Thread(target=read, name="event-streams", daemon=True).start()

    def _fall_back(self) -> None:
        for stream in self.streams:
            stream.behind = True
            stream.wake.set()
        if self.streams and self._subscription is not None:
            self._subscription = None
            self._follow()

    def _notice(self, notification: Notification) -> None:
        """(The subscription's thread.) A new stored event; drained in batches."""
        self._pending.append(notification)
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._start_draining)

    def _start_draining(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        pending = self._pending
        while True:
            self._scheduled = False  # before draining: a notice appended meanwhile is drained too
            if not pending:
                return
            batch = [pending.popleft() for _ in range(len(pending))]
            # Access checks read the in-memory user state, which follows the read models:
            # fan out once they include this batch, so a check sees what it changed.
            await self.projections.wait_async(batch[-1].id, timeout=5.0)
            try:
                self._fan_out(batch)
            except Exception:
                log.exception("event streams: a batch could not be fanned out")
                for stream in self.streams:  # they read it back from the store
                    stream.behind = True
                    stream.wake.set()

    def _fan_out(self, batch: list[Notification]) -> None:
        users_changed = False
        for notification in batch:
            if notification.topic.startswith(USER_TOPICS):
                users_changed = True
            watchers = self._by_originator.get(notification.originator_id)
            if not (watchers or self._everything):
                continue
            text: str | None = None
            for stream in (*self._everything, *(watchers or ())):
                if stream.topics and notification.topic not in stream.topics:
                    continue
                if text is None:
                    text = frame(history.describe(self.store, notification))
                    self.decoded += 1
                stream.offer(notification.id, text)
        if users_changed:  # a role, a password, a key or an account changed: check again
            for stream in self.streams:
                stream.wake.set()

    # -- one stream's answer -------------------------------------------------------------

    async def events(self, stream: Stream) -> AsyncIterator[str]:
        """What the client reads: the stored events after `after`, then live ones, until
        the client leaves or may no longer watch."""
        yield "retry: 2000\n\n"
        last = stream.after
        while True:
            stream.wake.clear()
            try:
                expires_in = stream.check()
            except ApiError as error:
                yield f"event: end\ndata: {history.to_json({'code': error.code, 'error': error.message})}\n\n"
                return
            if stream.behind:
                stream.behind = False
                page = await asyncio.to_thread(
                    history.read, self.store, stream.originator, last, PAGE, list(stream.topics)
                )
                self.store_reads += 1
                for event in page:
                    yield frame(event)
                    last = event["position"]
                if len(page) == PAGE:
                    stream.behind = True  # more to read (after checking access again)
                continue
            if stream.buffer:
                ready, stream.buffer = stream.buffer, []
                for position, text in ready:
                    if position > last:  # what the store read sent already is not sent again
                        yield text
                        last = position
                continue
            timeout = KEEPALIVE if expires_in is None else max(0.0, min(KEEPALIVE, expires_in))
            try:
                await asyncio.wait_for(stream.wake.wait(), timeout)
            except TimeoutError:
                yield ": keep-alive\n\n"


def frame(event: dict[str, Any]) -> str:
    """One server-sent event: `id:` is the position, so a client resumes with Last-Event-ID."""
    return f"id: {event['position']}\nevent: {event['type']}\ndata: {history.to_json(event)}\n\n"


class EventStreamResponse(StreamingResponse):
    """A stream that ends as soon as the client leaves, even while it has nothing to send
    (so the stream's place under the caps is given back at once), and then closes."""

    def __init__(self, streams: EventStreams, stream: Stream) -> None:
        super().__init__(
            streams.events(stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._streams = streams
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def respond() -> None:
                    with contextlib.suppress(OSError):
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(respond)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            self._streams.close(self._stream)
            iterator: Any = self.body_iterator
            with contextlib.suppress(Exception):
                await iterator.aclose()


def seconds_until(expires: float | None) -> float | None:
    return None if expires is None else expires - time.time()
