"""The webhook service: an event loop thread that runs one Deliverer per instance.

Notices of new events (from the feed, in its thread) are gathered per instance and
handed to the loop in batches: one loop wake-up for many events, and memory that grows
with the number of instances, not of events. Blocking store reads run in a small pool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

import msgspec

from actors.outbound import OutboundHTTP
from actors.webhooks.deliverer import READ_PAGE, Deliverer, Replay, delivers
from actors.webhooks.poster import Attempt, WebhookPoster
from domain.webhook import WebhookLog

log = logging.getLogger(__name__)

VersionedSettings = tuple[int, dict[str, Any]]  # an instance's version, its webhook settings then


class Cursors(Protocol):
    """How far each instance's delivery got past events it had nothing to send for.

    Kept in the configured storage, beside the event store (app/ hands one down)."""

    def get(self, instance_id: str) -> int:
        """The stored position, 0 if none."""

    def set(self, instance_id: str, position: int) -> None:
        """Store `position` unless a higher one is stored already."""

    def close(self) -> None:
        """Release the connection."""


TEST_EVENT = "webhook_test"  # what "send a test event" sends; never a domain event


class ReplayRunning(Exception):
    """A replay of this instance's webhooks is still being sent."""


@dataclass(frozen=True)
class WebhookDefaults:
    max_retries: int
    retry_interval_ms: int
    allow_private: bool
    timeout: float = 10.0
    replay_limit: int = 1000  # events one replay sends at most
    backlog_limit: int = 10_000  # events waiting before sends are refused (see `pressure`)


#: How much of one instance's backlog counts toward the limit: one slow receiver must not
#: stop every other instance's sends.
BACKLOG_PER_INSTANCE = 1000
BACKLOG_TICK = 0.25  # seconds between counts of the backlog


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's where it is installed (as under uvicorn): less CPU per POST than asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class WebhookService:
    """What the webhook actor runs in its event loop thread."""

    def __init__(
        self,
        store: Any,
        committer: Any,
        load_settings: Callable[[str], VersionedSettings | None],
        cursors: Cursors,
        defaults: WebhookDefaults,
        outbound: OutboundHTTP | None = None,
    ) -> None:
        self.store = store
        self.committer = committer
        self.load_settings = load_settings
        self.cursors = cursors
        self.defaults = defaults
        self.outbound = outbound or OutboundHTTP(defaults.allow_private)
        self.deliverers: dict[str, Deliverer] = {}
        self.idle: set[str] = set()  # instances whose deliverer sleeps with webhooks off
        self._noticed: dict[str, list[int]] = {}  # positions per instance, not yet handed over
        self._notice_lock = threading.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.loop = new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-io")
        self._poster: WebhookPoster | None = None
        # Several nodes: only the instances this node owns are delivered here (None: all).
        self.owns: Callable[[str], bool] | None = None
        self.backlog = 0  # events waiting, as counted at the last tick (see `pressure`)
        self.passed = 0  # events delivered, given up on or filtered out, ever
        self._rate = 0.0  # of `passed`, per second, smoothed
        self._thread = threading.Thread(target=self.loop.run_forever, name="webhooks", daemon=True)

    @property
    def poster(self) -> WebhookPoster:
        assert self._poster is not None, "the service is not started"
        return self._poster

    # -- lifecycle (any thread) -----------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self.call(self._open()).result(timeout=10)

    def stop(self) -> None:
        try:
            self.call(self._close()).result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.executor.shutdown(wait=False, cancel_futures=True)

    def call(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    # -- in the loop --------------------------------------------------------------------

    async def _open(self) -> None:
        self._poster = WebhookPoster(self.outbound, self.defaults.timeout)
        self._keep(asyncio.create_task(self._count_backlog(), name="webhook-backlog"))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _count_backlog(self) -> None:
        """Count, every tick, the events waiting for delivery that the server itself is
        behind on: an instance whose receiver failed and waits for a retry is held up by
        its receiver, not by us, and counts nothing; any other counts up to a cap."""
        passed = self.passed
        while True:
            await asyncio.sleep(BACKLOG_TICK)
            self.backlog = sum(
                min(d.pending, BACKLOG_PER_INSTANCE)
                for d in list(self.deliverers.values())
                if not d.failing
            )
            rate = (self.passed - passed) / BACKLOG_TICK
            self._rate = 0.8 * self._rate + 0.2 * rate
            passed = self.passed

    def pressure(self, instance_id: str) -> int | None:
        """(Any thread.) Seconds a new send of this instance should wait, if the backlog is
        over its limit and the instance has webhooks on; None to go ahead."""
        excess = self.backlog - self.defaults.backlog_limit
        if excess <= 0 or instance_id in self.idle or instance_id not in self.deliverers:
            return None
        return max(1, min(30, round(excess / max(self._rate, 100.0)) + 1))

    async def _close(self) -> None:
        tasks = [d.task for d in self.deliverers.values() if d.task is not None]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._poster is not None:
            await self._poster.close()

    def notice(self, instance_id: str, position: int) -> None:
        """(Any thread.) An instance event was stored at `position`: wake its deliverer,
        unless it is idle (webhooks off). Handed to the loop in batches."""
        if instance_id in self.idle or (self.owns is not None and not self.owns(instance_id)):
            return
        with self._notice_lock:
            positions = self._noticed.get(instance_id)
            if positions is not None:
                positions.append(position)
                return
            self._noticed[instance_id] = [position]
            first = len(self._noticed) == 1
        if first:  # one wake-up for everything noticed until it runs
            self.loop.call_soon_threadsafe(self._drain_notices)

    def _drain_notices(self) -> None:
        with self._notice_lock:
            noticed, self._noticed = self._noticed, {}
        for instance_id, positions in noticed.items():
            self.watch(instance_id).notice(positions)

    def watch(self, instance_id: str) -> Deliverer:
        """Start delivering an instance's events, or wake its deliverer if it runs."""
        deliverer = self.deliverers.get(instance_id)
        if deliverer is not None and deliverer.task is not None and not deliverer.task.done():
            deliverer.wake.set()
            return deliverer
        # Registered before any await, so two quick notices start one deliverer.
        deliverer = Deliverer(self, instance_id, {})
        self.deliverers[instance_id] = deliverer
        deliverer.task = asyncio.create_task(self._guard(deliverer), name=f"webhooks-{instance_id}")
        return deliverer

    async def unwatch(self, instance_id: str) -> None:
        """Stop delivering an instance's events here (another node owns it now); its
        new owner resumes from the stored position."""
        deliverer = self.deliverers.pop(instance_id, None)
        self.idle.discard(instance_id)
        if deliverer is not None and deliverer.task is not None:
            deliverer.task.cancel()
            await asyncio.gather(deliverer.task, return_exceptions=True)

    async def _guard(self, deliverer: Deliverer) -> None:
        """Run a deliverer; if it fails, log and start it again from its stored position."""
        try:
            while True:
                try:
                    await deliverer.run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception(
                        "webhook delivery for %s failed; resuming in 1 s", deliverer.instance_id
                    )
                    await asyncio.sleep(1)
        finally:
            if self.deliverers.get(deliverer.instance_id) is deliverer:
                del self.deliverers[deliverer.instance_id]  # ended (deleted) or cancelled

    async def refresh(self, instance_id: str, versioned: VersionedSettings) -> None:
        """New webhook settings, as the change that made them returned them."""
        deliverer = self.deliverers.get(instance_id)
        if deliverer is not None:
            version, settings = versioned
            if instance_id in self.idle and delivers(settings):
                # Turned on: what happened while it was off is never sent. Skip it (and store
                # that) before the request that turned it on is answered.
                await deliverer.skip_to_head()
            deliverer.update(version, settings)

    async def replay(
        self,
        instance_id: str,
        after: int,
        until: int | None,
        since: datetime | None,
        only: frozenset[int] | None = None,
    ) -> tuple[int, int | None]:
        """Re-send an instance's events in a range (marked as replays), at most
        `replay_limit` of them, by its deliverer between its own deliveries; given `only`,
        just the events at those positions. Return how many, and the position to replay
        from for the rest (None if there is no rest)."""
        deliverer = self.deliverers.get(instance_id)
        if deliverer is None or deliverer.log is None:
            raise LookupError("webhook delivery is not running for this instance")
        if deliverer.replay is not None:
            raise ReplayRunning("A replay of this instance's webhooks is still being sent")
        limit = self.defaults.replay_limit
        wanted = Replay(after, until or 0, since, limit, only)
        count, position, rest = 0, after, None
        while rest is None:
            page = await self.run_blocking(self.read, instance_id, position, READ_PAGE)
            for notification, event in page:
                if until is not None and notification.id > until:
                    break
                if wanted.skips(notification.id, event):
                    position = notification.id
                    continue
                if deliverer.body_for(event) is not None:
                    if count == limit:
                        rest = notification.id
                        break
                    count += 1
                position = notification.id
            else:
                if len(page) == READ_PAGE:
                    continue
            break
        if count:
            deliverer.replay = Replay(after, position, since, count, only)
            deliverer.wake.set()
        return count, rest

    async def send_test(self, instance_id: str) -> Attempt:
        """POST a `webhook_test` body to the instance's webhook URL now, signed and checked
        against the address policy as deliveries are, but outside delivery order and not
        recorded: what the receiver answered. LookupError when there is no URL to try."""
        loaded = await self.run_blocking(self.load_settings, instance_id)
        url = loaded[1].get("url") if loaded is not None else None
        if loaded is None or not url:
            raise LookupError("This instance has no webhook URL to test")
        body = {
            "event": TEST_EVENT,
            "data": {"instanceId": instance_id, "message": "A test event: nothing happened"},
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds")[:23] + "Z",
        }
        return await self.poster.post(
            url, msgspec.json.encode(body), TEST_EVENT, str(uuid4()), loaded[1].get("secret"), False
        )

    # -- blocking helpers (in the executor) -----------------------------------------------

    async def run_blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(self.executor, function, *args)

    def head(self) -> int:
        return self.store.recorder.max_notification_id() or 0

    def read(self, instance_id: str, after: int, limit: int) -> list[tuple[Any, Any]]:
        notifications = self.store.recorder.select_originator_notifications(
            UUID(instance_id), gt=after, limit=limit
        )
        return [(n, self.store.mapper.to_domain_event(n)) for n in notifications]

    def load_log(self, instance_id: str) -> WebhookLog:
        from eventsourcing.application import AggregateNotFoundError

        try:
            return self.store.repository.get(WebhookLog.create_id(instance_id))
        except AggregateNotFoundError:
            return WebhookLog(instance_id)
