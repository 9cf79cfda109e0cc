"""Sign-in throttling: too many failures for one account or from one address is 429.

Failures are counted in memory over a sliding window; a success clears the account's
count. Limits: ACCOUNT_LIMIT failures per account, ADDRESS_LIMIT per address, per WINDOW.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque

from app.errors import ApiError

WINDOW = 15 * 60.0
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20


class LoginThrottle:
    def __init__(
        self,
        window: float = WINDOW,
        account_limit: int = ACCOUNT_LIMIT,
        address_limit: int = ADDRESS_LIMIT,
    ) -> None:
        self.window = window
        self.limits = {"account": account_limit, "address": address_limit}
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def check(self, account: str, address: str) -> None:
        """Refuse (429) a sign-in for an account or from an address that failed too often."""
        now = time.monotonic()
        for kind, key in (("account", account), ("address", address)):
            failures = self._recent((kind, key), now)
            if len(failures) >= self.limits[kind]:
                wait = int(failures[0] + self.window - now) + 1
                raise ApiError(
                    429,
                    "too_many_attempts",
                    f"Too many failed sign-ins for this {kind}; try again in {wait} seconds",
                )

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        for key in (("account", account), ("address", address)):
            self._recent(key, now).append(now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(("account", account), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            # Keep the table from growing with every address ever seen.
            self._failures.pop(key, None)
            failures = self._failures[key]
        return failures
