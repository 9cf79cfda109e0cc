"""The fleet: every instance of the caller (or, for an administrator, of everyone) with what
an operator scans a fleet for, as one answer or as a live stream; and the engines this
server runs."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app import views
from app.answers import ENCODER, Engines, Fleet, FleetInstance, answer
from app.auth import Principal
from app.context import Context
from app.errors import ApiError
from app.openapi import choice, doc

KEEPALIVE = 15.0
MIN_INTERVAL = 0.5  # seconds between two answers of a stream, however busy the fleet


def fleet(ctx: Context, principal: Principal, everyone: bool) -> Fleet:
    """`{instances, counts}`: each instance as the list shows it, plus `owner` (the owner's
    e-mail), `messagesSentToday`, `messagesReceivedToday` and `failedWebhooks` (deliveries
    that failed and stay failed); `counts` is how many instances are in each status."""
    owners = ctx.queries.users() if everyone else [ctx.queries.user(principal.user_id) or {}]
    today = datetime.now(UTC).date().isoformat()
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    usage: dict[str, dict[str, int]] = {}
    for owner in owners:
        if not owner:
            continue
        mine = ctx.instances_of(owner["id"])
        if mine:
            rows += [(row, owner) for row in mine]
            usage.update(ctx.queries.usage_by_instance(owner["id"], today))
    failed = ctx.queries.unresolved_webhooks([row["id"] for row, _ in rows])
    instances = []
    for row, owner in rows:
        used = usage.get(row["id"], {})
        view = views.instance(row, detailed=False)
        instances.append(
            FleetInstance(
                **{name: getattr(view, name) for name in view.__struct_fields__},
                owner=owner["email"],
                messagesSentToday=used.get("messages_sent", 0),
                messagesReceivedToday=used.get("messages_received", 0),
                failedWebhooks=failed.get(row["id"], 0),
            )
        )
    return Fleet(instances=instances, counts=dict(Counter(i.status for i in instances)))


@doc(
    "My instances as a fleet, with today's messages and unresolved webhook failures "
    "(JSON, or live with Accept: text/event-stream); all=true: everyone's (administrators)",
    "instances",
    answer=Fleet,
    media={"text/event-stream": "string"},
    query={"all": choice("true for every user's instances (administrators only)", "true", "false")},
)
async def get_fleet(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    everyone = request.query_params.get("all", "false").lower()
    if everyone not in ("true", "false"):
        raise ApiError(400, "invalid_query", "'all' must be true or false")
    everyone_wanted = everyone == "true"
    if everyone_wanted and not principal.admin:
        raise ApiError(403, "forbidden", "Every user's instances are for administrators")
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _stream(request, ctx, everyone_wanted),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    return answer(request, await asyncio.to_thread(fleet, ctx, principal, everyone_wanted))


async def _stream(request: Request, ctx: Context, everyone: bool) -> AsyncIterator[str]:
    """`event: fleet` with the whole answer whenever it changes (at most every
    MIN_INTERVAL); `event: signed_out` and the end when the caller may no longer watch
    (signed out, deactivated, no longer an administrator)."""
    yield "retry: 2000\n\n"
    last = None
    while not await request.is_disconnected():
        seen = ctx.projections.position
        try:
            principal = ctx.auth.authenticate(request)
            if everyone and not principal.admin:
                raise ApiError(403, "forbidden", "Every user's instances are for administrators")
        except ApiError as error:
            yield f"event: signed_out\ndata: {json.dumps({'error': error.message})}\n\n"
            return
        now = ENCODER.encode(await asyncio.to_thread(fleet, ctx, principal, everyone)).decode()
        if now != last:
            yield f"event: fleet\ndata: {now}\n\n"
            last = now
        await asyncio.sleep(MIN_INTERVAL)
        # Wake when anything new is stored (the read models see every event).
        if not await ctx.projections.wait_async(seen + 1, timeout=KEEPALIVE):
            yield ": keep-alive\n\n"


@doc(
    "The engines this server runs, and the one an instance gets when none is named",
    "instances",
    answer=Engines,
)
async def engines(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.principal(request)
    default = ctx.settings.default_engine
    available = sorted(ctx.engines)
    return answer(
        request,
        Engines(
            engines=available,
            default=default if default in ctx.engines else next(iter(available), None),
        ),
    )


routes = [
    Route("/api/fleet", get_fleet, methods=["GET"]),
    Route("/api/engines", engines, methods=["GET"]),
]
