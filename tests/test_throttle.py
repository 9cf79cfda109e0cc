"""The sign-in throttle on its own, with a frozen clock (the server's cases are in
test_security_auth.py)."""

from __future__ import annotations

import pytest
from freezegun import freeze_time

from app.errors import ApiError
from app.throttle import LoginThrottle


def refused(throttle: LoginThrottle, account: str, address: str) -> ApiError:
    with pytest.raises(ApiError) as error:
        throttle.begin(account, address)
    assert error.value.status == 429 and error.value.code == "too_many_attempts"
    # The header and the message give the same number of seconds.
    assert f"in {error.value.retry_after} second" in error.value.message
    return error.value


def fail(throttle: LoginThrottle, account: str, address: str) -> None:
    throttle.failed(throttle.begin(account, address))


def test_failures_past_the_free_ones_wait_longer_and_longer_up_to_a_cap() -> None:
    throttle = LoginThrottle(window=3600, free_failures=3, max_delay=8, address_limit=1000)
    with freeze_time("2026-01-01T00:00:00Z") as clock:
        for _ in range(3):
            fail(throttle, "a@x", "1.1.1.1")
        waits = []
        for _ in range(6):
            error = refused(throttle, "a@x", "2.2.2.2")  # another address does not help
            assert "account" in error.message
            waits.append(error.retry_after)
            clock.tick(error.retry_after)
            fail(throttle, "a@x", "1.1.1.1")
        assert waits == [1, 2, 4, 8, 8, 8]
        fail(throttle, "b@x", "1.1.1.1")  # other accounts are not affected


def test_the_right_password_works_once_the_delay_has_passed_and_clears_the_account() -> None:
    throttle = LoginThrottle(window=3600, free_failures=2, max_delay=300, address_limit=1000)
    with freeze_time("2026-01-01T00:00:00Z") as clock:
        for _ in range(2):
            fail(throttle, "admin@x", "6.6.6.6")
        wait = refused(throttle, "admin@x", "7.7.7.7").retry_after  # the owner, even
        clock.tick(wait)
        throttle.succeeded(throttle.begin("admin@x", "7.7.7.7"))
        fail(throttle, "admin@x", "7.7.7.7")  # starts afresh: free again
        fail(throttle, "admin@x", "7.7.7.7")


def test_attempts_are_counted_before_the_password_is_checked() -> None:
    """Concurrent sign-ins each reserve their attempt: no more than the free failures slip
    through while the passwords of the first ones are still being checked."""
    throttle = LoginThrottle(window=3600, free_failures=5, max_delay=300, address_limit=1000)
    with freeze_time("2026-01-01T00:00:00Z"):
        started = []
        outcomes = []
        for _ in range(20):
            try:
                started.append(throttle.begin("c@x", "3.3.3.3"))
                outcomes.append("checked")
            except ApiError:
                outcomes.append("refused")
        assert outcomes == ["checked"] * 5 + ["refused"] * 15
        for attempt in started:
            throttle.failed(attempt)


def test_an_address_is_limited_across_accounts_and_successes_do_not_count() -> None:
    throttle = LoginThrottle(window=60, free_failures=5, max_delay=300, address_limit=4)
    with freeze_time("2026-01-01T00:00:00Z") as clock:
        throttle.succeeded(throttle.begin("ok@x", "9.9.9.9"))
        for n in range(4):
            fail(throttle, f"user{n}@x", "9.9.9.9")
        error = refused(throttle, "new@x", "9.9.9.9")
        assert "address" in error.message and error.retry_after == 60
        throttle.begin("new@x", "8.8.8.8")  # another address is fine
        clock.tick(61)
        throttle.begin("new@x", "9.9.9.9")  # and failures are forgotten after the window


def test_an_accounts_failures_are_forgotten_after_the_window() -> None:
    throttle = LoginThrottle(window=60, free_failures=1, max_delay=300, address_limit=1000)
    with freeze_time("2026-01-01T00:00:00Z") as clock:
        for _ in range(3):
            fail(throttle, "d@x", "4.4.4.4")
            clock.tick(refused(throttle, "d@x", "4.4.4.4").retry_after)
        clock.tick(61)
        fail(throttle, "d@x", "4.4.4.4")
        refused(throttle, "d@x", "4.4.4.4")
        assert refused(throttle, "d@x", "4.4.4.4").retry_after == 1  # back to the first delay
