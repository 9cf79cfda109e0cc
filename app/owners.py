"""A user's instances follow the user: a deactivated user's instances are stopped (status
`disabled`, their engines disconnected, their webhooks off) and a reactivated user's
start again.

The user's `active` flag is the truth; `reconcile` brings any instance that is out of step
back in line (at start-up, and with every socket check), so a crash between deactivating
a user and stopping their instances, or an instance that was restarting at that moment,
is put right.
"""

from __future__ import annotations

import logging
from typing import Any

from app.errors import ApiError

log = logging.getLogger(__name__)

REASON = "user_deactivated"


async def follow(ctx: Any, user_id: str, active: bool) -> None:
    """Start (active) or stop every instance of a user, and their webhooks with them."""
    for row in ctx.instances_of(user_id):
        await _apply(ctx, row["id"], active)


async def reconcile(ctx: Any) -> int:
    """Put every instance in step with its owner; return how many were changed."""
    changed = 0
    for user in ctx.queries.users():
        active = bool(user["active"])
        for row in ctx.instances_of(user["id"]):
            if (row["status"] == "disabled") == active:
                changed += await _apply(ctx, row["id"], active)
    if changed:
        log.warning("put %d instance(s) in step with their owner's account", changed)
    return changed


async def _apply(ctx: Any, instance_id: str, active: bool) -> int:
    try:
        proxy = ctx.proxy(instance_id)
    except ApiError:  # not running (its engine is unavailable here): it sends nothing
        return 0
    try:
        versioned = await ctx.command(proxy.enable() if active else proxy.disable(REASON))
        await ctx.refresh_webhooks(instance_id, versioned)
    except Exception as error:  # the next reconcile tries again
        log.warning(
            "instance %s could not be %s: %s",
            instance_id,
            "started" if active else "stopped",
            error,
        )
        return 0
    return 1
