from __future__ import annotations

import pytest
from freezegun import freeze_time

from app.errors import ApiError
from app.throttle import LoginThrottle
from tests.server import Server


def test_an_account_is_throttled_after_repeated_failures_and_freed_by_time() -> None:
    throttle = LoginThrottle(window=60, account_limit=3, address_limit=100)
    with freeze_time("2026-01-01T00:00:00Z") as clock:
        for _ in range(3):
            throttle.check("a@x", "1.1.1.1")
            throttle.failed("a@x", "1.1.1.1")
        with pytest.raises(ApiError) as refused:
            throttle.check("a@x", "2.2.2.2")  # another address does not help
        assert refused.value.status == 429 and "account" in refused.value.message
        throttle.check("b@x", "1.1.1.1")  # other accounts are not affected
        clock.tick(61)
        throttle.check("a@x", "1.1.1.1")


def test_an_address_is_throttled_across_accounts_and_success_clears_the_account() -> None:
    throttle = LoginThrottle(window=60, account_limit=3, address_limit=4)
    for n in range(4):
        throttle.failed(f"user{n}@x", "9.9.9.9")
    with pytest.raises(ApiError) as refused:
        throttle.check("new@x", "9.9.9.9")
    assert "address" in refused.value.message
    throttle.failed("c@x", "8.8.8.8")
    throttle.failed("c@x", "8.8.8.8")
    throttle.succeeded("c@x")
    throttle.failed("c@x", "8.8.8.8")
    throttle.check("c@x", "8.8.8.8")


def test_the_server_answers_429_after_five_wrong_passwords(fresh_server: Server) -> None:
    client = fresh_server.client()
    body = {"email": "admin@example.com", "password": "wrong-password"}
    statuses = [client.post("/api/auth/login", json=body).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    refused = client.post("/api/auth/login", json={**body, "password": "admin-password-for-tests"})
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_attempts"
    assert "Retry-After" in refused.headers
