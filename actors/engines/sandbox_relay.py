"""The sandbox network across nodes, through the event store.

Each node's `SandboxNetwork` holds the sandbox instances that node runs. A message to a
number paired with an instance on another node is stored as a `SandboxRelay` event; every
node follows the store and delivers the relays for numbers online on it, and the receipts
travel back the same way. Which numbers are paired with a sandbox instance anywhere comes
from the store too (`ConnectionOpened` pairs, `LoggedOut` and `InstanceDeleted` unpair), so
a message to a number nobody in the sandbox owns is not relayed at all.

A relay reaches the recipient if it is online somewhere when the relay is read, as a real
network delivers to a phone that is online; one that arrives while the recipient is moving
between nodes is not delivered (the sender gets no receipt), as to a phone that is offline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from eventsourcing.utils import get_topic

from actors.engines.base import EngineEvent
from actors.engines.sandbox_network import RELAYABLE, SandboxNetwork
from domain.instance import Instance
from domain.phone import jid_number
from domain.sandbox import SandboxRelay as RelayEvent

log = logging.getLogger(__name__)

REPORTS: dict[str, type[Any]] = {kind.__name__: kind for kind in RELAYABLE}
RELAYED = get_topic(RelayEvent.Relayed)
CREATED = get_topic(Instance.Created)
OPENED = get_topic(Instance.ConnectionOpened)
UNPAIRED = frozenset({get_topic(Instance.LoggedOut), get_topic(Instance.Deleted)})


class SandboxRelay:
    """Relays between this node's sandbox network and the other nodes' (module docstring).

    `paired`: the sandbox instances paired now (instance id -> number), read before
    `start_at`, the store position the relay follows from."""

    def __init__(
        self,
        store: Any,
        committer: Any,
        network: SandboxNetwork,
        paired: dict[str, str],
        sandbox_instances: set[str],
        start_at: int,
    ) -> None:
        self.store = store
        self.committer = committer
        self.network = network
        self._paired = dict(paired)  # instance id -> phone
        self._numbers = {phone: i for i, phone in paired.items()}  # phone -> instance id
        self._sandbox = set(sandbox_instances)
        self._lock = threading.Lock()
        self._subscription = store.recorder.subscribe(
            gt=start_at, topics=[RELAYED, CREATED, OPENED, *UNPAIRED]
        )
        self._thread = threading.Thread(target=self._follow, name="sandbox-relay", daemon=True)
        self.relayed = 0  # relays this node stored
        self.delivered = 0  # relays this node read for a number online here

    def start(self) -> None:
        self.network.relay = self
        self._thread.start()

    def stop(self) -> None:
        self.network.relay = None
        self._subscription.stop()
        self._thread.join(timeout=5)

    # -- sending (an engine's thread) ------------------------------------------------

    def send(self, phone: str, reports: list[EngineEvent]) -> bool:
        with self._lock:
            if phone not in self._numbers:
                return False
        relay = RelayEvent(
            to=phone, reports=[{"kind": type(r).__name__, **asdict(r)} for r in reports]
        )
        self.committer.submit(relay.collect_events()).add_done_callback(_log_failure)
        self.relayed += 1
        return True

    # -- following the store ------------------------------------------------------------

    def _follow(self) -> None:
        try:
            for notification in self._subscription:
                try:
                    self._take(notification)
                except Exception:
                    log.exception("sandbox relay: could not handle position %s", notification.id)
        except Exception:
            log.exception("sandbox relay: the store subscription failed")

    def _take(self, notification: Any) -> None:
        topic = notification.topic
        event = self.store.mapper.to_domain_event(notification)
        instance_id = str(notification.originator_id)
        if topic == RELAYED:
            if self.network.find(event.to) is not None:
                self.delivered += 1
                self.network.relayed(event.to, [_report(r) for r in event.reports])
            return
        with self._lock:
            if topic == CREATED:
                if event.engine == "sandbox":
                    self._sandbox.add(instance_id)
            elif topic == OPENED:
                if instance_id in self._sandbox and event.phone:
                    self._unpair(instance_id)
                    self._paired[instance_id] = event.phone
                    self._numbers[event.phone] = instance_id
            else:
                self._unpair(instance_id)

    def _unpair(self, instance_id: str) -> None:
        phone = self._paired.pop(instance_id, None)
        if phone is not None and self._numbers.get(phone) == instance_id:
            del self._numbers[phone]


def _report(fields: dict[str, Any]) -> EngineEvent:
    fields = dict(fields)
    kind = REPORTS[fields.pop("kind")]
    # JSON made the tuples (mentions, poll options) lists.
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _log_failure(done: Any) -> None:
    if done.exception() is not None:
        log.warning("sandbox relay could not be stored: %s", done.exception())


def paired_sandbox_instances(
    instance_ids: list[str], load: Callable[[Any], Any]
) -> tuple[dict[str, str], set[str]]:
    """The numbers the given sandbox instances are paired as (from their aggregates)."""
    from uuid import UUID

    paired: dict[str, str] = {}
    for instance_id in instance_ids:
        try:
            instance = load(UUID(instance_id))
        except Exception:  # gone meanwhile
            continue
        if instance.phone and not instance.deleted and instance.status != "logged_out":
            paired[instance_id] = jid_number(instance.phone)
    return paired, set(instance_ids)
