"""Webhook delivery's own feed from the event store (a real store on each provider):
every instance event noticed once, in order, also when its subscription stops."""

from __future__ import annotations

from actors.webhooks.feed import StoreFeed
from app.eventstore import EventStore
from domain.user import User
from tests.server import wait_until
from tests.test_eventstore import connected_instance, send, store  # noqa: F401 (fixture: a real store on each provider)


class Noticed(list[tuple[str, int]]):
    def __call__(self, instance_id: str, position: int) -> None:
        self.append((instance_id, position))

    def positions(self) -> list[int]:
        return [position for _, position in self]


def test_the_feed_notices_each_instance_event_once_and_in_order(store: EventStore) -> None:  # noqa: F811 (the fixture)
    noticed = Noticed()
    feed = StoreFeed(store.recorder, noticed, interval=0.05)
    before = connected_instance("Before")
    store.save(before)  # stored before the feed starts: not noticed
    feed.start()
    try:
        shop = connected_instance()
        store.save(shop)
        store.save(User("ann@example.com", "hash", "Ann", "A", "user", "key", "sealed"))
        send(shop, 1)
        store.save(shop)

        wait_until(lambda: len(noticed) == 4)
        stored = store.recorder.select_originator_notifications(shop.id, gt=0, limit=100)
        assert noticed == [(str(shop.id), n.id) for n in stored]  # not the user's, nor Before's
        assert feed.backstops == 0
    finally:
        feed.stop()


def test_the_backstop_reads_what_a_stopped_subscription_missed(store: EventStore) -> None:  # noqa: F811 (the fixture)
    noticed = Noticed()
    feed = StoreFeed(store.recorder, noticed, interval=0.05)
    feed.start()
    try:
        shop = connected_instance()
        store.save(shop)
        wait_until(lambda: len(noticed) == 3)
        # The subscription ends (a dropped change stream, a failed read): nobody iterates it.
        feed._subscription.stop()
        for n in range(3):
            send(shop, n)
            store.save(shop)

        wait_until(lambda: len(noticed) == 6)
        assert feed.backstops >= 1
        # A new subscription carries on from where the backstop read to.
        send(shop, 9)
        store.save(shop)
        wait_until(lambda: len(noticed) == 7)
        assert noticed.positions() == sorted(set(noticed.positions()))  # once each, in order
    finally:
        feed.stop()
