"""Sign-in throttling: growing delays per account, a hard limit per address.

An attempt is reserved (counted as a failure) before the password is checked, so
concurrent guesses cannot all slip past the count while argon2 runs; a success takes
its reservation back and clears the account.

- Per account: the first FREE_FAILURES failures cost nothing; after that each attempt
  must wait 1 s, then 2, 4, ... (at most MAX_DELAY) after the previous failure. A
  flood of wrong passwords slows guessing to a crawl without locking the owner out
  for long: the right password works again once the current delay has passed.
- Per address: ADDRESS_LIMIT failures per WINDOW, then 429 until the oldest expires.

Failures older than WINDOW are forgotten. The 429's `Retry-After` and its message
give the same number of seconds.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass

from app.errors import ApiError

WINDOW = 15 * 60.0
FREE_FAILURES = 5
MAX_DELAY = 300.0
ADDRESS_LIMIT = 20
MAX_TRACKED = 100_000  # accounts or addresses remembered before expired ones are pruned


@dataclass
class _Account:
    failures: int = 0
    last: float = 0.0


@dataclass
class Attempt:
    """A reserved sign-in attempt: report how it went with `succeeded` or `failed`."""

    account: str
    address: str
    at: float


class LoginThrottle:
    def __init__(
        self,
        window: float = WINDOW,
        free_failures: int = FREE_FAILURES,
        max_delay: float = MAX_DELAY,
        address_limit: int = ADDRESS_LIMIT,
    ) -> None:
        self.window = window
        self.free_failures = free_failures
        self.max_delay = max_delay
        self.address_limit = address_limit
        self._accounts: dict[str, _Account] = {}
        self._addresses: dict[str, deque[float]] = {}

    def delay(self, failures: int) -> float:
        """Seconds an account with this many recent failures waits after the last one."""
        if failures < self.free_failures:
            return 0.0
        return min(self.max_delay, 2.0 ** (failures - self.free_failures))

    def begin(self, account: str, address: str) -> Attempt:
        """Reserve an attempt, or refuse it (429) while the account or address must wait."""
        now = time.monotonic()
        failures = self._recent_address(address, now)
        if len(failures) >= self.address_limit:
            _refuse("address", failures[0] + self.window - now)
        state = self._accounts.get(account)
        if state is not None and now - state.last > self.window:
            state = None  # forgotten
        if state is not None:
            wait = state.last + self.delay(state.failures) - now
            if wait > 0:
                _refuse("account", wait)
        # Counted now, as if it failed: a concurrent attempt sees it.
        self._prune(now)
        self._accounts[account] = _Account((state.failures if state else 0) + 1, now)
        self._addresses.setdefault(address, deque()).append(now)
        return Attempt(account, address, now)

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong: the reservation stands as a failure."""

    def succeeded(self, attempt: Attempt) -> None:
        """Signed in: the account starts afresh, and the address is not charged."""
        self._accounts.pop(attempt.account, None)
        failures = self._addresses.get(attempt.address)
        if failures is not None:
            with contextlib.suppress(ValueError):
                failures.remove(attempt.at)
            if not failures:
                del self._addresses[attempt.address]

    def _recent_address(self, address: str, now: float) -> deque[float]:
        failures = self._addresses.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._addresses[address]
        return failures

    def _prune(self, now: float) -> None:
        """Keep the tables from growing with every name and address ever tried."""
        if len(self._accounts) >= MAX_TRACKED:
            for key in [k for k, v in self._accounts.items() if now - v.last > self.window]:
                del self._accounts[key]
        if len(self._addresses) >= MAX_TRACKED:
            for key in list(self._addresses):
                self._recent_address(key, now)


def _refuse(kind: str, wait: float) -> None:
    seconds = max(1, math.ceil(wait))
    raise ApiError(
        429,
        "too_many_attempts",
        f"Too many failed sign-ins for this {kind}; try again in {seconds} "
        + ("second" if seconds == 1 else "seconds"),
        retry_after=seconds,
    )
