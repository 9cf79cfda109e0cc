"""One instance's webhook delivery loop (a task in the webhook service's event loop).

It reads the instance's events from the store after its position, one small page at a
time, and POSTs those its settings want, one at a time, in order, with retries. Each
outcome is a WebhookDelivered or WebhookFailed event of the instance's WebhookLog; the
log's position (and a cursor, for events sent nowhere) is where delivery resumes after a
restart or a crash: at-least-once, with the same X-Webhook-Delivery id on every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from actors.webhooks.payloads import payload
from domain.instance import Instance
from domain.webhook import WebhookLog, delivery_id

if TYPE_CHECKING:
    from actors.webhooks.service import WebhookService

log = logging.getLogger(__name__)

#: Events read from the store per page. Only this many decoded events per instance are
#: ever in memory; the store holds the rest of a backlog.
READ_PAGE = 50


@dataclass
class Replay:
    """A range of an instance's events to send again: after `position` up to `until`
    (inclusive), those stored at or after `since` (and, given `only`, at those positions);
    `left` is how many may still go."""

    position: int
    until: int
    since: datetime | None
    left: int
    only: frozenset[int] | None = None

    def skips(self, position: int, event: Any) -> bool:
        """Whether the event at `position` is in the range but not to be sent again."""
        if self.only is not None and position not in self.only:
            return True
        return self.since is not None and event.timestamp < self.since


def delivers(settings: dict[str, Any]) -> bool:
    """Whether these webhook settings deliver anything at all."""
    return bool(settings.get("enabled") and settings.get("url"))


class Deliverer:
    """The delivery loop of one instance."""

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
        # The backlog: events the feed noticed after `position` (noticed up to `noticed`).
        self.pending = 0
        self.noticed = 0
        self.failing = False  # waiting to retry a receiver that failed
        self.replay: Replay | None = None  # at most one at a time, sent by this loop

    # -- told by the service (in the loop) -----------------------------------------------

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

    def notice(self, positions: list[int]) -> None:
        """New events of this instance were stored at these positions."""
        for position in positions:
            if position > self.position:
                self.pending += 1
                self.noticed = max(self.noticed, position)
        self.wake.set()

    def _passed(self, position: int) -> None:
        self.position = position
        self.service.passed += 1
        if position <= self.noticed and self.pending > 0:
            self.pending -= 1

    def _caught_up(self) -> None:
        self.pending = 0
        self.noticed = max(self.noticed, self.position)

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        service = self.service
        self.broken = None
        versioned = await service.run_blocking(service.load_settings, self.instance_id)
        if versioned is None:
            return  # not an instance (any more)
        self._adopt(*versioned)
        self.log = await service.run_blocking(service.load_log, self.instance_id)
        self.position = max(self.log.position, service.cursors.get(self.instance_id))
        self._caught_up()
        saved = self.position
        deleted = skipped = False
        while not deleted:
            if self.broken is not None:
                raise self.broken  # the service restarts us from what is stored
            if not self.wanted():
                # Webhooks off: nothing that happens now is ever sent. Skip what is stored
                # (once per start, one query), then sleep: the feed does not wake an idle
                # deliverer, and `refresh` moves it past what happened meanwhile, durably,
                # before it turns delivery on.
                if not skipped:
                    saved = await self.skip_to_head()
                    skipped = True
                self.replay = None  # nothing is sent with webhooks off, replays neither
                service.idle.add(self.instance_id)
                try:
                    await self.wake.wait()
                finally:
                    service.idle.discard(self.instance_id)
                self.wake.clear()
                saved = max(saved, self.position)
                continue
            self.wake.clear()  # before reading: a notice from now on is read next time
            page = await service.run_blocking(
                service.read, self.instance_id, self.position, READ_PAGE
            )
            if not page and self.replay is not None:
                await self._replay_page()
                continue
            if not page:
                self._caught_up()
                if self.position > saved:
                    await service.run_blocking(service.cursors.set, self.instance_id, self.position)
                    saved = self.position
                await self.wake.wait()
                continue
            for notification, event in page:
                if self.broken is not None:
                    raise self.broken
                if isinstance(event, Instance.Deleted):
                    deleted = True
                body = self.body_for(event)
                if body is not None:
                    await self.deliver(notification.id, event, body, replay=False)
                    saved = max(saved, notification.id)
                self._passed(notification.id)
            if self.replay is not None:
                # One page of each in turn: a replay is paced like delivery (one POST at a
                # time per instance) and neither starves the other.
                await self._replay_page()
        self.replay = None
        self._caught_up()
        await service.run_blocking(service.cursors.set, self.instance_id, self.position)

    async def _replay_page(self) -> None:
        replay = self.replay
        assert replay is not None
        page = await self.service.run_blocking(
            self.service.read, self.instance_id, replay.position, READ_PAGE
        )
        for notification, event in page:
            if notification.id > replay.until or replay.left <= 0:
                break
            replay.position = notification.id
            if replay.skips(notification.id, event):
                continue
            body = self.body_for(event)
            if body is not None:
                replay.left -= 1
                await self.deliver(notification.id, event, body, replay=True)
        else:
            if len(page) == READ_PAGE:
                return  # more of the range to read
        self.replay = None

    def wanted(self) -> bool:
        return delivers(self.settings)

    async def skip_to_head(self) -> int:
        """Move past every stored event, durably (they are never to be sent); the position."""
        service = self.service
        head = await service.run_blocking(service.head)
        if head > self.position:
            self.position = head
            await service.run_blocking(service.cursors.set, self.instance_id, head)
        self._caught_up()
        return self.position

    def body_for(self, event: Any) -> dict[str, Any] | None:
        return payload(event, self.settings) if self.wanted() else None

    async def deliver(self, position: int, event: Any, body: dict[str, Any], replay: bool) -> bool:
        """POST one event until it succeeds or retries run out; record the outcome."""
        service = self.service
        raw = msgspec.json.encode(body)  # compact UTF-8, the bytes that are signed and sent
        delivery = delivery_id(self.instance_id, event.originator_version)
        attempts = 0
        try:
            while True:
                settings = self.settings
                if not delivers(settings):
                    # Turned off (or the instance disabled) since this event was picked: as
                    # for any event that happens while webhooks are off, it is not sent.
                    return False
                attempts += 1
                status, error, final = await service.poster.post(
                    settings["url"], raw, body["event"], delivery, settings.get("secret"), replay
                )
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
                self.failing = True
                self.changed.clear()
                with contextlib.suppress(TimeoutError):  # a settings change retries at once
                    await asyncio.wait_for(self.changed.wait(), interval / 1000)
        finally:
            self.failing = False

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
        if outcome == "delivered":
            assert status is not None  # a delivery is an answer with a status
            self.log.delivered(
                self.instance_id, position, event_type, delivery, attempts, status, replay
            )
        else:
            self.log.failed(
                self.instance_id,
                position,
                event_type,
                delivery,
                attempts,
                status,
                error[:500],
                replay,
            )
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
