"""Per-user quotas set by administrators: how many instances, how many messages a day.

Over a quota is 429 with a clear message; the first refusal of the day per user and
quota is recorded as a QuotaExceeded event (the instance's activity log shows it),
later ones are not, so a client retrying in a loop cannot flood the event store.
Concurrent sends may pass the daily limit by the few that were in flight together.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from app.auth import Principal
from app.errors import ApiError

_recorded: set[tuple[str, str, str]] = set()


def limits_of(ctx: Any, user_id: str) -> dict[str, Any]:
    row = ctx.queries.user(user_id)
    return json.loads(row["limits"] or "{}") if row else {}


async def check_instances(ctx: Any, principal: Principal) -> None:
    limit = limits_of(ctx, principal.user_id).get("maxInstances")
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
