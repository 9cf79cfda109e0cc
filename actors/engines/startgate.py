"""Calm start-up: at most ENGINE_START_CONCURRENCY engine starts at a time.

A server with a thousand stored sessions would otherwise start a thousand whatsmeow
children at once (each a process that loads a Go runtime and dials WhatsApp). Starts
wait in a queue, the most recently active instance first, and each takes its turn
after a small random delay; a start holds its place until the engine says it has
settled (connected, showing a QR code, or failed) or `timeout` passes. At server
start-up the gate is held while every instance's actor queues its start, so that the
first start served is the most recently active one too, not whichever actor loaded first.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticket:
    """One engine start waiting for, or holding, a place."""

    def __init__(self, priority: float, start: Callable[[Ticket], None]) -> None:
        self.priority = priority
        self.start = start
        self._settled = threading.Event()

    def settle(self) -> None:
        """The start is over (or no longer wanted): its place goes to the next one."""
        self._settled.set()

    @property
    def settled(self) -> bool:
        return self._settled.is_set()

    def wait(self, timeout: float) -> bool:
        return self._settled.wait(timeout)


class StartGate:
    """A priority queue of engine starts served by `concurrency` threads."""

    def __init__(self, concurrency: int, jitter: float = 0.25, timeout: float = 60.0) -> None:
        self.concurrency = max(1, concurrency)
        self.jitter = jitter
        self.timeout = timeout
        self._heap: list[tuple[float, int, Ticket]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._held = False

    def hold(self) -> None:
        """Queue starts without serving them until `release`."""
        with self._cond:
            self._held = True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def submit(self, priority: float, start: Callable[[Ticket], None]) -> Ticket:
        """Queue `start` (called with its ticket from a gate thread); a higher priority
        (the time of the instance's last activity) goes first."""
        ticket = Ticket(priority, start)
        with self._cond:
            if self._closed:
                ticket.settle()
                return ticket
            heapq.heappush(self._heap, (-priority, next(self._order), ticket))
            if len(self._threads) < self.concurrency:
                thread = threading.Thread(
                    target=self._serve, name=f"engine-start-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify()
        return ticket

    @property
    def starting(self) -> int:
        """Starts queued or in progress."""
        with self._cond:
            queued = sum(1 for _, _, ticket in self._heap if not ticket.settled)
            return queued + self._running

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for _, _, ticket in self._heap:
                ticket.settle()
            self._heap.clear()
            self._cond.notify_all()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while (not self._heap or self._held) and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                _, _, ticket = heapq.heappop(self._heap)
                if ticket.settled:
                    continue  # cancelled while it waited
                self._running += 1
            try:
                if self.jitter:
                    ticket.wait(random.uniform(0, self.jitter))
                if not ticket.settled:
                    ticket.start(ticket)
                if not ticket.wait(self.timeout):
                    log.info(
                        "an engine start took over %g s; letting the next one go", self.timeout
                    )
            except Exception:
                log.exception("an engine start failed")
                ticket.settle()
            finally:
                with self._cond:
                    self._running -= 1
