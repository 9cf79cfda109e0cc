"""The webhook actor: delivers each instance's events from the event store to its webhook.

One asyncio task per instance reads that instance's events after its cursor, in store
order, and POSTs them one at a time with retries; a slow or dead receiver holds up
only its own instance. Outcomes are stored as WebhookDelivered / WebhookFailed
events, whose positions (with a cursor for events the settings filter out) are where
delivery resumes after a restart or a crash: at-least-once, in order, with the same
X-Webhook-Delivery id on every attempt and replay of an event.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import aiohttp
import msgspec
import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.bridge import BridgedActor
from actors.outbound import OutboundHTTP, refused
from actors.webhook_payloads import payload
from domain.instance import Instance
from domain.webhook import WebhookLog, delivery_id

log = logging.getLogger(__name__)

RESPONSE_LIMIT = 64 * 1024
READ_PAGE = 200
INSTANCE_TOPIC_PREFIX = "domain.instance:Instance."


VersionedSettings = tuple[int, dict[str, Any]]  # an instance's version, its webhook settings then


def delivers(settings: dict[str, Any]) -> bool:
    """Whether these webhook settings deliver anything at all."""
    return bool(settings.get("enabled") and settings.get("url"))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's where it is installed (as under uvicorn): less CPU per POST than asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Attempt(NamedTuple):
    """What one POST of a webhook came to."""

    status: int | None  # the receiver's HTTP status, None if there was no answer
    error: str = ""  # why it failed, for a person
    final: bool = False  # retrying cannot help (the address is not allowed)


class WebhookPoster:
    """Signs and POSTs one webhook body; never raises for the receiver's faults.
    Connections go only where the address policy allows (actors.outbound)."""

    def __init__(self, outbound: OutboundHTTP, timeout: float) -> None:
        self.timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self.session = outbound.session(connector={"limit": 256, "limit_per_host": 32})

    async def post(
        self, url: str, body: bytes, event: str, delivery: str, secret: str | None, replay: bool
    ) -> Attempt:
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Event": event,
            "X-Webhook-Delivery": delivery,
            "User-Agent": "whatsapp-api-webhooks",
        }
        if secret:
            headers["X-Webhook-Signature"] = sign(secret, body)
        if replay:
            headers["X-Webhook-Replay"] = "true"
        try:
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self._client_timeout
            ) as response:
                await response.content.read(RESPONSE_LIMIT)  # never more than this
                status = response.status
                return Attempt(status, "" if status < 300 else f"HTTP {status}")
        except TimeoutError:
            return Attempt(None, f"timed out after {self.timeout:g} s")
        except aiohttp.ClientError as error:
            refusal = refused(error)
            if refusal is not None:
                return Attempt(None, str(refusal), final=True)
            return Attempt(None, f"{type(error).__name__}: {error}")

    async def close(self) -> None:
        await self.session.close()


class Cursors(Protocol):
    """How far each instance's delivery got past events it had nothing to send for.

    Kept in the configured storage, beside the event store (app/ hands one down)."""

    def get(self, instance_id: str) -> int:
        """The stored position, 0 if none."""

    def set(self, instance_id: str, position: int) -> None:
        """Store `position` unless a higher one is stored already."""

    def close(self) -> None:
        """Release the connection."""


@dataclass(frozen=True)
class WebhookDefaults:
    max_retries: int
    retry_interval_ms: int
    allow_private: bool
    timeout: float = 10.0


class _Deliverer:
    """The delivery loop of one instance (runs in the webhook actor's event loop)."""

    def __init__(self, service: WebhookService, instance_id: str, settings: dict[str, Any]) -> None:
        self.service = service
        self.instance_id = instance_id
        self.settings = settings
        self.settings_version = -1  # the instance version `settings` are from
        self.wake = asyncio.Event()
        self.changed = asyncio.Event()
        self.log: WebhookLog | None = None
        self.position = 0
        self.task: asyncio.Task[None] | None = None
        self.broken: BaseException | None = None  # an outcome that could not be stored

    def update(self, version: int, settings: dict[str, Any]) -> None:
        if self._adopt(version, settings):
            self.changed.set()
            self.wake.set()

    def _adopt(self, version: int, settings: dict[str, Any]) -> bool:
        """Take these settings unless ours are from a newer version (a late answer)."""
        if version < self.settings_version:
            return False
        self.settings_version, self.settings = version, settings
        return True

    async def run(self) -> None:
        service = self.service
        self.broken = None
        versioned = await service.run_blocking(service.load_settings, self.instance_id)
        if versioned is None:
            return  # not an instance (any more)
        self._adopt(*versioned)
        self.log = await service.run_blocking(service.load_log, self.instance_id)
        self.position = max(self.log.position, service.cursors.get(self.instance_id))
        saved = self.position
        deleted = skipped = False
        while not deleted:
            if self.broken is not None:
                raise self.broken  # _guard restarts from what is stored
            if not self.wanted():
                # Webhooks off: nothing that happens now is ever sent. Skip what is stored
                # (once per start, one query), then sleep: the feed does not wake an idle
                # deliverer, and `refresh` moves it past what happened meanwhile, durably,
                # before it turns delivery on.
                if not skipped:
                    saved = await self.skip_to_head()
                    skipped = True
                service.idle.add(self.instance_id)
                try:
                    await self.wake.wait()
                finally:
                    service.idle.discard(self.instance_id)
                self.wake.clear()
                saved = max(saved, self.position)
                continue
            page = await service.run_blocking(
                service.read, self.instance_id, self.position, READ_PAGE
            )
            if not page:
                if self.position > saved:
                    await service.run_blocking(service.cursors.set, self.instance_id, self.position)
                    saved = self.position
                await self.wake.wait()
                self.wake.clear()
                continue
            for notification, event in page:
                if self.broken is not None:
                    raise self.broken  # _guard restarts from what is stored
                if isinstance(event, Instance.Deleted):
                    deleted = True
                body = self.body_for(event)
                if body is not None:
                    await self.deliver(notification.id, event, body, replay=False)
                    saved = max(saved, notification.id)
                self.position = notification.id
        await service.run_blocking(service.cursors.set, self.instance_id, self.position)

    def wanted(self) -> bool:
        return delivers(self.settings)

    async def skip_to_head(self) -> int:
        """Move past every stored event, durably (they are never to be sent); the position."""
        service = self.service
        head = await service.run_blocking(service.head)
        if head > self.position:
            self.position = head
            await service.run_blocking(service.cursors.set, self.instance_id, head)
        return self.position

    def body_for(self, event: Any) -> dict[str, Any] | None:
        return payload(event, self.settings) if self.wanted() else None

    async def deliver(self, position: int, event: Any, body: dict[str, Any], replay: bool) -> bool:
        """POST one event until it succeeds or retries run out; record the outcome."""
        service = self.service
        raw = msgspec.json.encode(body)  # compact UTF-8, the bytes that are signed and sent
        delivery = delivery_id(self.instance_id, event.originator_version)
        attempts = 0
        while True:
            settings = self.settings
            url = settings.get("url")
            attempts += 1
            if url:
                assert service.poster is not None
                status, error, final = await service.poster.post(
                    url, raw, body["event"], delivery, settings.get("secret"), replay
                )
            else:
                status, error, final = None, "webhook URL removed", False
            if status is not None and 200 <= status < 300:
                await self.record(
                    "delivered", position, body["event"], delivery, attempts, status, "", replay
                )
                return True
            retries = settings.get("maxRetries")
            retries = service.defaults.max_retries if retries is None else retries
            if attempts > retries or final:
                log.warning(
                    "webhook for instance %s gave up on %s after %d attempt(s): %s",
                    self.instance_id,
                    body["event"],
                    attempts,
                    error or f"HTTP {status}",
                )
                await self.record(
                    "failed",
                    position,
                    body["event"],
                    delivery,
                    attempts,
                    status,
                    error or f"HTTP {status}",
                    replay,
                )
                return False
            interval = settings.get("retryInterval")
            interval = service.defaults.retry_interval_ms if interval is None else interval
            self.changed.clear()
            with contextlib.suppress(TimeoutError):  # a settings change retries at once
                await asyncio.wait_for(self.changed.wait(), interval / 1000)

    async def record(
        self,
        outcome: str,
        position: int,
        event_type: str,
        delivery: str,
        attempts: int,
        status: int | None,
        error: str,
        replay: bool,
    ) -> None:
        assert self.log is not None
        common = dict(
            instance_id=self.instance_id,
            position=position,
            event_type=event_type,
            delivery_id=delivery,
            attempts=attempts,
            replay=replay,
        )
        if outcome == "delivered":
            self.log.delivered(status_code=status, **common)
        else:
            self.log.failed(status_code=status, error=error[:500], **common)
        if self.broken is not None:
            raise self.broken
        # Queued, not awaited: the next delivery goes out while this outcome is stored.
        # Outcomes of one log are stored in order; if one fails, the deliverer restarts
        # from what is stored (so some events go out again: at-least-once, same ids).
        commit = self.service.committer.submit(self.log.collect_events())
        loop = asyncio.get_running_loop()

        def stored(done: Any) -> None:  # in the committer's thread: wake the loop only on failure
            if done.exception() is not None:
                loop.call_soon_threadsafe(self._failed, done.exception())

        commit.add_done_callback(stored)

    def _failed(self, error: BaseException) -> None:
        if self.broken is None:
            assert self.log is not None
            self.broken = error
            self.service.committer.reset(self.log.id)
            self.wake.set()


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
        self.deliverers: dict[str, _Deliverer] = {}
        self.idle: set[str] = set()  # instances whose deliverer sleeps with webhooks off
        self._noticed: collections.deque[str] = collections.deque()
        self._draining = False
        self._background: set[asyncio.Task[None]] = set()
        self.loop = new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-io")
        self.outbound = outbound or OutboundHTTP(defaults.allow_private)
        self.poster: WebhookPoster | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="webhooks", daemon=True)

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
        self.poster = WebhookPoster(self.outbound, self.defaults.timeout)

    async def _close(self) -> None:
        tasks = [d.task for d in self.deliverers.values() if d.task is not None]
        tasks += list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.poster is not None:
            await self.poster.close()

    def notice(self, instance_id: str) -> None:
        """(Any thread.) An instance has a new stored event: wake its deliverer, unless it is
        idle (webhooks off). Notices are drained in batches: one loop wake-up for many."""
        if instance_id in self.idle:
            return
        self._noticed.append(instance_id)
        if not self._draining:
            self._draining = True
            self.loop.call_soon_threadsafe(self._drain_notices)

    def _drain_notices(self) -> None:
        self._draining = False  # before draining: a notice appended meanwhile is drained too
        noticed = self._noticed
        while noticed:
            self.watch(noticed.popleft())

    def watch(self, instance_id: str) -> None:
        """Start delivering an instance's events, or wake its deliverer if it runs."""
        deliverer = self.deliverers.get(instance_id)
        if deliverer is not None and deliverer.task is not None and not deliverer.task.done():
            deliverer.wake.set()
            return
        # Registered before any await, so two quick notifications start one deliverer.
        deliverer = _Deliverer(self, instance_id, {})
        self.deliverers[instance_id] = deliverer
        deliverer.task = asyncio.create_task(self._guard(deliverer), name=f"webhooks-{instance_id}")

    async def _guard(self, deliverer: _Deliverer) -> None:
        """Run a deliverer; if it fails, log and start it again from its stored position."""
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
        self, instance_id: str, after: int, until: int | None, since: datetime | None
    ) -> int:
        """Re-send an instance's events in a range (marked as replays); return how many."""
        deliverer = self.deliverers.get(instance_id)
        if deliverer is None or deliverer.log is None:
            raise LookupError("webhook delivery is not running for this instance")
        chosen: list[tuple[int, Any, dict[str, Any]]] = []
        position = after
        while True:
            page = await self.run_blocking(self.read, instance_id, position, READ_PAGE)
            for notification, event in page:
                if until is not None and notification.id > until:
                    break
                position = notification.id
                if since is not None and event.timestamp < since:
                    continue
                body = deliverer.body_for(event)
                if body is not None:
                    chosen.append((notification.id, event, body))
            else:
                if len(page) == READ_PAGE:
                    continue
            break

        async def resend() -> None:
            for notification_id, event, body in chosen:
                await deliverer.deliver(notification_id, event, body, replay=True)

        task = asyncio.create_task(resend(), name=f"replay-{instance_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return len(chosen)

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


class WebhookActor(BridgedActor):
    """Owns the webhook service: starts it, feeds it new events, stops it."""

    def __init__(self, service: WebhookService, instance_ids: list[str], feed: Any = None) -> None:
        """`feed`, if given, has listen(f)/unlisten(f) and calls f with every stored event's
        notification (the live projections do: one subscription serves both); without
        it the actor polls a subscription of its own."""
        super().__init__()
        self.service = service
        self._instance_ids = instance_ids
        self._feed_source = feed
        self._subscription: Any = None
        self._feeder: threading.Thread | None = None

    def on_start(self) -> None:
        self.service.start()
        if self._feed_source is not None:
            self._feed_source.listen(self._notice)
        else:
            recorder = self.service.store.recorder
            self._subscription = recorder.subscribe(gt=recorder.max_notification_id() or 0)
        for instance_id in self._instance_ids:
            self.service.loop.call_soon_threadsafe(self.service.watch, instance_id)
        if self._subscription is not None:
            self._feeder = threading.Thread(target=self._feed, name="webhook-feed", daemon=True)
            self._feeder.start()

    def on_stop(self) -> None:
        if self._feed_source is not None:
            self._feed_source.unlisten(self._notice)
        if self._subscription is not None:
            self._subscription.stop()
        if self._feeder is not None:
            self._feeder.join(timeout=5)
        self.service.stop()

    def _notice(self, notification: Any) -> None:
        """Wake the deliverer of the instance a new event belongs to (any thread)."""
        if notification.topic.startswith(INSTANCE_TOPIC_PREFIX):
            self.service.notice(str(notification.originator_id))

    def _feed(self) -> None:
        """Wake the deliverer of every instance that has a new event."""
        try:
            for notification in self._subscription:
                self._notice(notification)
        except Exception:
            log.exception("the webhook feed stopped")

    def refresh(self, instance_id: str, versioned: VersionedSettings) -> None:
        """An instance's webhook settings changed: use them from the next attempt on."""
        self.service.call(self.service.refresh(instance_id, versioned)).result(timeout=10)

    def replay(
        self, instance_id: str, after: int, until: int | None, since: datetime | None
    ) -> int:
        """Re-send an instance's events in a range; return how many will be sent."""
        return self.service.call(self.service.replay(instance_id, after, until, since)).result(
            timeout=30
        )


class WebhookProxy(ActorMemberMixin, pykka.ActorProxy[WebhookActor]):
    """The webhook actor as callers hold it (typed as in pykka's examples/proxy_typing.py)."""

    refresh = proxy_method(WebhookActor.refresh)
    replay = proxy_method(WebhookActor.replay)
