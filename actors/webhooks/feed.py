"""Which instances have new events: webhook delivery's own feed from the event store.

The feed follows a subscription of its own to the store, never the read models' (a
failing or slow projection must not delay a webhook), and only for instance events.
A timer is its backstop: when the store has moved on and the subscription has not for
a whole tick (stalled, or its thread died), the timer reads the store itself and starts
a new subscription from there, so a broken subscription delays delivery by a tick at most.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import Notification

from domain import events
from domain.instance import Instance

log = logging.getLogger(__name__)

BACKSTOP_INTERVAL = 1.0  # seconds between the timer's looks at the store
BACKSTOP_PAGE = 500

#: Every instance event wakes its deliverer (even those it sends nothing for: it must
#: move past them, and an `Instance.Deleted` ends it).
INSTANCE_TOPICS = tuple(sorted(events.topics_of(Instance)))

Notice = Callable[[str, int], None]  # (instance id, position) of a newly stored event


class StoreFeed:
    """Calls `notice(instance_id, position)` once for every instance event stored after
    `start()`, in position order, from a subscription thread or the backstop timer."""

    def __init__(self, recorder: Any, notice: Notice, interval: float = BACKSTOP_INTERVAL):
        self.recorder = recorder
        self.notice = notice
        self.interval = interval
        self.position = 0  # the last position noticed
        self.backstops = 0  # how often the timer had to read the store itself
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._subscription: Any = None
        self._reader: threading.Thread | None = None
        self._timer = threading.Thread(target=self._watch, name="webhook-backstop", daemon=True)

    def start(self) -> None:
        self.position = self.recorder.max_notification_id() or 0
        self._subscribe()
        self._timer.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._subscription is not None:
            self._subscription.stop()
        for thread in (self._reader, self._timer):
            if thread is not None and thread.is_alive():
                thread.join(timeout=5)

    # -- the subscription ---------------------------------------------------------------

    def _subscribe(self) -> None:
        subscription = self.recorder.subscribe(gt=self.position, topics=INSTANCE_TOPICS)
        self._subscription = subscription
        self._reader = threading.Thread(
            target=self._read, args=(subscription,), name="webhook-feed", daemon=True
        )
        self._reader.start()

    def _read(self, subscription: Any) -> None:
        try:
            for notification in subscription:
                self._take(notification)
        except Exception:
            log.exception("the webhook feed's subscription failed; the backstop takes over")

    def _take(self, notification: Notification) -> None:
        with self._lock:  # the reader and the timer may both offer one position
            if notification.id <= self.position:
                return
            self.position = notification.id
            self.notice(str(notification.originator_id), notification.id)

    # -- the backstop -------------------------------------------------------------------

    def _watch(self) -> None:
        suspect: int | None = None  # an event that was stored but not noticed at the last tick
        while not self._stopping.wait(self.interval):
            try:
                if suspect is not None and self.position < suspect:
                    self._catch_up()  # unnoticed for a whole tick: the subscription is stuck
                    suspect = None
                else:
                    suspect = self._first_unnoticed()
            except Exception:
                log.exception("the webhook feed's backstop failed; trying again")

    def _first_unnoticed(self) -> int | None:
        page = self.recorder.select_notifications(
            start=self.position, limit=1, topics=INSTANCE_TOPICS, inclusive_of_start=False
        )
        return page[0].id if page else None

    def _catch_up(self) -> None:
        """Read what the subscription has not delivered, then subscribe again from there."""
        self.backstops += 1
        log.warning(
            "the webhook feed's subscription missed an event for %g s; reading the store "
            "after position %d",
            self.interval,
            self.position,
        )
        old = self._subscription
        while not self._stopping.is_set():
            page = self.recorder.select_notifications(
                start=self.position,
                limit=BACKSTOP_PAGE,
                topics=INSTANCE_TOPICS,
                inclusive_of_start=False,
            )
            for notification in page:
                self._take(notification)
            if len(page) < BACKSTOP_PAGE:
                break
        if old is not None:
            old.stop()
        if not self._stopping.is_set():
            self._subscribe()
