"""Awaiting pykka actor replies from asyncio without blocking the event loop.

`await future` on a pykka future calls its blocking `get()`, which would stall every
request served by the loop. Actors here create `CallbackFuture`s instead, which
resolve an asyncio future through `loop.call_soon_threadsafe` when the actor replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

T = TypeVar("T")


class ActorTimeout(Exception):
    """An actor did not answer in time."""


class CallbackFuture(pykka.ThreadingFuture[T]):
    """A pykka future that runs callbacks when its value or exception is set."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[CallbackFuture[T]], None]] = []
        self._lock = threading.Lock()
        self._done = False

    def add_done_callback(self, callback: Callable[[CallbackFuture[T]], None]) -> None:
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def set(self, value: T | None = None) -> None:
        super().set(value)
        self._fire()

    def set_exception(self, exc_info: Any = None) -> None:
        super().set_exception(exc_info)
        self._fire()

    def _fire(self) -> None:
        with self._lock:
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


class BridgedActor(pykka.ThreadingActor):
    """A threading actor whose replies can be awaited with `ask`."""

    @staticmethod
    def _create_future() -> CallbackFuture[Any]:
        return CallbackFuture()


async def ask(future: pykka.Future[T], timeout: float) -> T:
    """Await an actor's reply; raise ActorTimeout after `timeout` seconds."""
    if not isinstance(future, CallbackFuture):
        raise TypeError("ask() needs a future from a BridgedActor")
    loop = asyncio.get_running_loop()
    result: asyncio.Future[T] = loop.create_future()

    def settle(done: CallbackFuture[T]) -> None:
        try:
            value, error = done.get(timeout=0), None
        except BaseException as failure:  # re-raised in the awaiting task
            value, error = None, failure
        # Once the loop has closed nobody awaits this answer any more; raising here would
        # fail the actor's reply and kill its thread while it still looks alive.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, result, value, error)

    future.add_done_callback(settle)
    try:
        return await asyncio.wait_for(result, timeout)
    except TimeoutError:
        raise ActorTimeout(f"no answer within {timeout:g} s") from None


def _settle(result: asyncio.Future[T], value: T, error: BaseException | None) -> None:
    if result.done():
        return
    if error is not None:
        result.set_exception(error)
    else:
        result.set_result(value)
