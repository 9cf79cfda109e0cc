"""An instance's webhook deliveries, and replaying them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.webhooks import ReplayRunning
from app import query
from app.answers import DeliveryList, DeliveryView, ReplayStarted, answer
from app.context import Context
from app.errors import ApiError, invalid
from app.openapi import choice, doc, whole
from app.schemas import Body, parse
from projections.queries import Window


class Replay(Body):
    """Replay from a position (inclusive) or from a time, optionally up to a position."""

    fromPosition: Annotated[int, Meta(ge=0)] | None = None
    since: Annotated[str, Meta(max_length=40)] | None = None
    toPosition: Annotated[int, Meta(ge=0)] | None = None


@doc(
    "Webhook deliveries",
    "webhooks",
    answer=DeliveryList,
    query={
        "status": choice("failed or delivered", "failed", "delivered"),
        "limit": whole("page size", 1, query.MAX_LIMIT),
        "skip": whole("offset", 0, query.MAX_SKIP),
    },
)
async def deliveries(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    limit, skip = query.paging(request.query_params, 50)
    status = request.query_params.get("status")
    if status is not None and status not in ("failed", "delivered"):
        raise ApiError(400, "invalid_query", "'status' must be failed or delivered")
    page = ctx.queries.deliveries(row["id"], status, Window(limit, skip))
    found = [
        DeliveryView(
            id=r["id"],
            instanceId=r["instance_id"],
            position=r["position"],
            event=r["event"],
            deliveryId=r["delivery_id"],
            status=r["status"],
            attempts=r["attempts"],
            lastStatusCode=r["status_code"],
            lastError=r["error"] or None,
            replay=bool(r["replay"]),
            createdAt=r["created_at"],
        )
        for r in page.rows
    ]
    return answer(
        request,
        DeliveryList(deliveries=found, pagination=query.pagination(page.total, limit, skip)),
    )


@doc(
    "Replay webhook deliveries from a position or a time (one replay at a time per instance, "
    "at most WEBHOOK_REPLAY_LIMIT events)",
    "webhooks",
    answer=ReplayStarted,
    body=Replay,
    ok=202,
    errors=(409,),
)
async def replay(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    body = await parse(request, Replay)
    if (body.fromPosition is None) == (body.since is None):
        raise invalid("Give exactly one of fromPosition or since", "fromPosition")
    since = None
    if body.since is not None:
        try:
            since = datetime.fromisoformat(body.since.replace("Z", "+00:00"))
        except ValueError:
            raise invalid("'since' must be an ISO 8601 time", "since") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    after = max(0, (body.fromPosition or 0) - 1)
    if not row["webhook"].get("enabled") or not row["webhook"].get("url"):
        raise ApiError(409, "webhook_disabled", "Webhooks are not enabled for this instance")
    try:
        count, rest = await ctx.ask(
            ctx.webhooks_proxy.replay(row["id"], after, body.toPosition, since)
        )
    except LookupError as error:
        raise ApiError(409, "webhook_not_running", str(error)) from None
    except ReplayRunning as error:
        raise ApiError(409, "replay_running", str(error)) from None
    # At most WEBHOOK_REPLAY_LIMIT events per replay; `nextPosition` is where the rest starts.
    return answer(request, ReplayStarted(success=True, replaying=count, nextPosition=rest))


routes = [
    Route("/api/instances/{instanceId}/webhooks/deliveries", deliveries, methods=["GET"]),
    Route("/api/instances/{instanceId}/webhooks/replay", replay, methods=["POST"]),
]
