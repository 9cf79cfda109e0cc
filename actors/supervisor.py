"""Starts, stops and restarts instance actors."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.bridge import BridgedActor

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0

CrashReport = Callable[[UUID, BaseException], None]
Spawn = Callable[[UUID, CrashReport], pykka.ActorRef[Any]]


class Supervisor(BridgedActor):
    """Keeps one running actor per live instance.

    `registry` maps instance ids to actor refs; the HTTP layer reads it directly
    (dict reads are atomic) so that a request does not queue behind the supervisor.
    A crashed actor is restarted after a capped, jittered backoff that grows with
    the number of crashes in a row and resets after a minute without one.
    """

    def __init__(self, spawn: Spawn, registry: dict[UUID, pykka.ActorRef[Any]]) -> None:
        super().__init__()
        self._spawn = spawn
        self.registry = registry
        self._crashes: dict[UUID, tuple[int, float]] = {}

    def start_instance(self, instance_id: UUID) -> None:
        """Start the actor of an instance unless it runs already."""
        ref = self.registry.get(instance_id)
        if ref is not None and ref.is_alive():
            return
        self.registry[instance_id] = self._spawn(instance_id, self._report_crash)

    def start_all(self, instance_ids: list[UUID]) -> None:
        """Start every given instance (at server start)."""
        for instance_id in instance_ids:
            try:
                self.start_instance(instance_id)
            except Exception:
                log.exception("instance %s did not start", instance_id)

    def forget(self, instance_id: UUID) -> None:
        """The instance was deleted: drop it from the registry."""
        self.registry.pop(instance_id, None)

    def stop_instance(self, instance_id: UUID) -> None:
        """Stop an instance's actor and keep it stopped (another node runs it now)."""
        ref = self.registry.pop(instance_id, None)
        self._crashes.pop(instance_id, None)
        if ref is not None and ref.is_alive():
            try:
                ref.stop(block=True, timeout=10)
            except Exception:
                log.exception("instance %s did not stop", instance_id)

    def crashed(self, instance_id: UUID) -> None:
        """An actor died: restart it after a backoff."""
        if instance_id not in self.registry:
            return
        count, last = self._crashes.get(instance_id, (0, 0.0))
        now = time.monotonic()
        count = 1 if now - last > 60 else count + 1
        self._crashes[instance_id] = (count, now)
        delay = min(MAX_BACKOFF, 0.1 * 2 ** (count - 1)) * random.uniform(0.5, 1.0)
        log.warning(
            "restarting instance %s in %.1f s (crash %d in a row)", instance_id, delay, count
        )
        me = self.actor_ref
        timer = threading.Timer(delay, lambda: me.tell(_Restart(instance_id)))
        timer.daemon = True
        timer.start()

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Crash):
            self.crashed(message.instance_id)
        elif isinstance(message, _Restart) and message.instance_id in self.registry:
            try:
                self.registry[message.instance_id] = self._spawn(
                    message.instance_id, self._report_crash
                )
            except Exception:
                # Still registered, so crashed() schedules another attempt with more backoff.
                log.exception("instance %s did not restart", message.instance_id)
                self.crashed(message.instance_id)

    def stop_all(self) -> None:
        """Stop every instance actor (at shutdown), all at once: each waits for its engine
        to close its connection cleanly, which takes a moment."""
        refs = list(self.registry.values())
        self.registry.clear()
        stopping = []
        for ref in refs:
            try:
                stopping.append(ref.stop(block=False))
            except Exception:
                log.exception("an instance actor did not stop")
        for future in stopping:
            try:
                future.get(timeout=30)
            except Exception:
                log.exception("an instance actor did not stop")

    def _report_crash(self, instance_id: UUID, error: BaseException) -> None:
        self.actor_ref.tell(_Crash(instance_id))


class SupervisorProxy(ActorMemberMixin, pykka.ActorProxy[Supervisor]):
    """The supervisor as callers hold it (typed as in pykka's examples/proxy_typing.py)."""

    start_instance = proxy_method(Supervisor.start_instance)
    start_all = proxy_method(Supervisor.start_all)
    forget = proxy_method(Supervisor.forget)
    stop_instance = proxy_method(Supervisor.stop_instance)
    stop_all = proxy_method(Supervisor.stop_all)


@dataclass(frozen=True)
class _Crash:
    instance_id: UUID


@dataclass(frozen=True)
class _Restart:
    instance_id: UUID
