"""The webhook actor: owns webhook delivery (its service and its feed) and takes requests."""

from __future__ import annotations

from datetime import datetime

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.bridge import BridgedActor
from actors.webhooks.feed import StoreFeed
from actors.webhooks.service import VersionedSettings, WebhookService


class WebhookActor(BridgedActor):
    """Starts the webhook service and its feed from the event store, and stops them."""

    def __init__(self, service: WebhookService, instance_ids: list[str]) -> None:
        """`instance_ids`: the instances to start delivering for at once (the live ones);
        any other instance gets a deliverer when the feed sees an event of it."""
        super().__init__()
        self.service = service
        self.feed = StoreFeed(service.store.recorder, service.notice)
        self._instance_ids = instance_ids

    def on_start(self) -> None:
        self.service.start()
        self.feed.start()
        for instance_id in self._instance_ids:
            self.service.loop.call_soon_threadsafe(self.service.watch, instance_id)

    def on_stop(self) -> None:
        self.feed.stop()
        self.service.stop()

    def refresh(self, instance_id: str, versioned: VersionedSettings) -> None:
        """An instance's webhook settings changed: use them from the next attempt on."""
        self.service.call(self.service.refresh(instance_id, versioned)).result(timeout=10)

    def watch(self, instance_id: str) -> None:
        """Deliver an instance's events from here (this node took it over)."""
        self.service.loop.call_soon_threadsafe(self.service.watch, instance_id)

    def unwatch(self, instance_id: str) -> None:
        """Stop delivering an instance's events here (another node owns it now)."""
        self.service.call(self.service.unwatch(instance_id)).result(timeout=10)

    def replay(
        self,
        instance_id: str,
        after: int,
        until: int | None,
        since: datetime | None,
        only: frozenset[int] | None = None,
    ) -> tuple[int, int | None]:
        """Re-send an instance's events in a range (one replay at a time, bounded), only
        those at the positions `only` if given; return how many will be sent and where the
        rest of the range starts (None: no rest)."""
        return self.service.call(
            self.service.replay(instance_id, after, until, since, only)
        ).result(timeout=30)


class WebhookProxy(ActorMemberMixin, pykka.ActorProxy[WebhookActor]):
    """The webhook actor as callers hold it (typed as in pykka's examples/proxy_typing.py)."""

    refresh = proxy_method(WebhookActor.refresh)
    watch = proxy_method(WebhookActor.watch)
    unwatch = proxy_method(WebhookActor.unwatch)
    replay = proxy_method(WebhookActor.replay)
