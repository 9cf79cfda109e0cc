"""This node's part of the cluster, built from the settings and wired to the server."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from app.cluster.doctor import mark_volume
from app.cluster.node import ClusterNode, NodeHooks
from app.cluster.signing import Signer
from app.config import Settings
from storage.provider import StorageProvider

log = logging.getLogger(__name__)


def join(settings: Settings, storage: StorageProvider, store: Any) -> ClusterNode:
    """Join the cluster of the event store `store` (registers this node, installs the fence
    and takes the leader lease if it is free)."""
    config = settings.cluster
    assert config is not None
    node = ClusterNode(
        config,
        storage.cluster(store.recorder),
        Signer(config.secret),
        NodeHooks(
            instances=lambda: (),
            start=lambda instance_id: None,
            stop=lambda instance_id, drain: None,
            leader=lambda on: None,
        ),
    )
    node.join()
    mark_volume(settings)
    return node


def wait_for_leader(node: ClusterNode, done: Any, timeout: float = 300.0) -> bool:
    """Wait until `done()` (what the leader does at start), taking the leader lease
    meanwhile if its holder is gone; True if this node took it (it does the work)."""
    deadline = time.monotonic() + timeout
    while not done():
        node.look_and_lead()
        if node.leader:
            return True
        if time.monotonic() > deadline:
            raise RuntimeError(f"no leader made the read models ready within {timeout:.0f} s")
        time.sleep(0.25)
    return False


def wire(
    node: ClusterNode,
    *,
    instances: Any,
    supervisor: Any,
    registry: dict[UUID, Any],
    webhooks: Any,
    projections: Any,
) -> None:
    """Let the node start and stop instances, their webhooks and the projection writer."""

    def start(instance_id: str) -> None:
        supervisor.proxy().start_instance(UUID(instance_id)).get(timeout=30)
        webhooks.proxy().watch(instance_id).get(timeout=10)

    def stop(instance_id: str, drain: bool) -> None:
        key = UUID(instance_id)
        ref = registry.get(key)
        if drain and ref is not None and ref.is_alive():
            try:  # its last events are stored under its lease
                ref.proxy().position().get(timeout=30)
            except Exception as error:
                log.warning("instance %s: last commits not confirmed: %s", instance_id, error)
        supervisor.proxy().stop_instance(key).get(timeout=30)
        webhooks.proxy().unwatch(instance_id).get(timeout=15)

    def lead(on: bool) -> None:
        projections.writing = on

    def live() -> Iterable[str]:
        return instances()

    node.hooks.instances = live
    node.hooks.start = start
    node.hooks.stop = stop
    node.hooks.leader = lead
