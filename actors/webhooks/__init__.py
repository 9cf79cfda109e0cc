"""Webhook delivery: each instance's events, from the event store to its webhook.

At-least-once, in order per instance, resumed from the store after a restart or a crash,
and one instance's slow or dead receiver never delays another's. The parts:

- `actor.py`: `WebhookActor`, the pykka actor that owns delivery and takes settings
  changes and replays;
- `feed.py`: `StoreFeed`, delivery's own subscription to the event store (never the read
  models'), with a timer as its backstop;
- `service.py`: `WebhookService`, the event loop thread that runs one deliverer per
  instance, and the stores it reads and writes;
- `deliverer.py`: `Deliverer`, one instance's loop: read, filter, POST, retry, record;
- `poster.py`: `WebhookPoster`, which signs and POSTs one body;
- `payloads.py`: what a receiver gets for each event;
- the address policy every POST goes through is `actors/outbound.py`.
"""

from actors.webhooks.actor import WebhookActor, WebhookProxy
from actors.webhooks.service import (
    Cursors,
    ReplayRunning,
    VersionedSettings,
    WebhookDefaults,
    WebhookService,
)

__all__ = [
    "Cursors",
    "ReplayRunning",
    "VersionedSettings",
    "WebhookActor",
    "WebhookDefaults",
    "WebhookProxy",
    "WebhookService",
]
