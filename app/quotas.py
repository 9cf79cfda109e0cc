"""Per-user quotas set by administrators: how many instances, how many messages a day.

Over a quota is 429 with a clear message; the first refusal of the day per user and
quota is recorded as a QuotaExceeded event (the instance's activity log shows it),
later ones are not, so a client retrying in a loop cannot flood the event store.
Concurrent sends may pass the daily limit by the few that were in flight together.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from app.auth import Principal
from app.errors import ApiError

_recorded: set[tuple[str, str, str]] = set()
_creating: dict[str, asyncio.Lock] = {}


def creating(user_id: str) -> asyncio.Lock:
    """Held while one of the user's instances is counted and created (in the event loop)."""
    lock = _creating.get(user_id)
    if lock is None:
        lock = _creating[user_id] = asyncio.Lock()
    return lock


def limits_of(ctx: Any, user_id: str) -> dict[str, Any]:
    row = ctx.queries.user(user_id)
    return json.loads(row["limits"] or "{}") if row else {}


def instance_limit(ctx: Any, user_id: str) -> int | None:
    """The user's own maxInstances, else the server's MAX_INSTANCES_PER_USER (0: none)."""
    own = limits_of(ctx, user_id).get("maxInstances")
    if own is not None:
        return int(own)
    return ctx.settings.max_instances_per_user or None


async def check_instances(ctx: Any, principal: Principal) -> None:
    limit = instance_limit(ctx, principal.user_id)
    if limit is None:
        return
    count = len(ctx.instances_of(principal.user_id))
    if count >= limit:
        await _refuse(
            ctx,
            principal,
            "maxInstances",
            limit,
            None,
            f"Your account may have at most {limit} instance(s) and has {count}",
        )


async def check_messages(ctx: Any, principal: Principal, instance_id: str) -> None:
    limit = limits_of(ctx, principal.user_id).get("maxMessagesPerDay")
    if limit is None:
        return
    today = datetime.now(UTC).date().isoformat()
    sent = ctx.queries.messages_sent_on(principal.user_id, today)
    if sent >= limit:
        await _refuse(
            ctx,
            principal,
            "maxMessagesPerDay",
            limit,
            instance_id,
            f"Your account may send {limit} message(s) a day and has sent {sent} today "
            "(the count starts again at 00:00 UTC)",
        )


async def _refuse(
    ctx: Any, principal: Principal, quota: str, limit: int, instance_id: str | None, message: str
) -> None:
    key = (principal.user_id, quota, datetime.now(UTC).date().isoformat())
    if key not in _recorded:
        _recorded.add(key)
        await ctx.change_user(
            principal.user_id, lambda u: u.exceed_quota(quota, limit, instance_id)
        )
    raise ApiError(429, "quota_exceeded", message)
