"""An instance's webhook deliveries, and replaying them."""

from __future__ import annotations

import asyncio
from typing import Annotated

from msgspec import Meta, structs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.webhooks import ReplayRunning
from app import query
from app.answers import (
    DeliveryList,
    DeliveryView,
    OutcomeList,
    OutcomeView,
    ReplayStarted,
    WebhookTested,
    answer,
)
from app.context import Context
from app.errors import ApiError, invalid
from app.openapi import choice, doc, whole
from app.schemas import Body, parse
from domain import timestamps
from projections.queries import Window


class Replay(Body):
    """Replay from a position (inclusive) or from a time, optionally up to a position;
    with `failedOnly`, only the deliveries in that range that failed and stay failed
    (from the first of them when neither `fromPosition` nor `since` is given)."""

    fromPosition: Annotated[int, Meta(ge=0, le=query.MAX_POSITION)] | None = None
    since: Annotated[str, Meta(max_length=40)] | None = None
    toPosition: Annotated[int, Meta(ge=0, le=query.MAX_POSITION)] | None = None
    failedOnly: bool = False


# The query of both delivery listings: a status filter and a page.
DELIVERY_QUERY = {
    "status": choice("failed or delivered", "failed", "delivered"),
    "limit": whole("page size", 1, query.MAX_LIMIT),
    "skip": whole("offset", 0, query.MAX_SKIP),
}


def _delivery_query(request: Request) -> tuple[str | None, Window]:
    limit, skip = query.paging(request.query_params, 50)
    status = request.query_params.get("status")
    if status is not None and status not in ("failed", "delivered"):
        raise ApiError(400, "invalid_query", "'status' must be failed or delivered")
    return status, Window(limit, skip)


@doc(
    "Webhook deliveries",
    "webhooks",
    answer=DeliveryList,
    query=DELIVERY_QUERY,
)
async def deliveries(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    status, window = _delivery_query(request)
    page = ctx.queries.deliveries(row["id"], status, window)
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
        DeliveryList(
            deliveries=found, pagination=query.pagination(page.total, window.limit, window.skip)
        ),
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
    only: frozenset[int] | None = None
    if body.failedOnly:
        only = _unresolved(ctx, row["id"])
        if body.fromPosition is None and body.since is None:
            body = structs.replace(body, fromPosition=min(only, default=0))
        if not only:
            return answer(request, ReplayStarted(success=True, replaying=0, nextPosition=None))
    if (body.fromPosition is None) == (body.since is None):
        raise invalid("Give exactly one of fromPosition or since", "fromPosition")
    since = None
    if body.since is not None:
        try:
            since = timestamps.parse(body.since)
        except timestamps.InvalidTime as error:
            raise invalid(f"'since' {error}", "since") from None
    after = max(0, (body.fromPosition or 0) - 1)
    if not row["webhook"].get("enabled") or not row["webhook"].get("url"):
        raise ApiError(409, "webhook_disabled", "Webhooks are not enabled for this instance")
    try:
        count, rest = await ctx.ask(
            ctx.webhooks_proxy.replay(row["id"], after, body.toPosition, since, only)
        )
    except LookupError as error:
        raise ApiError(409, "webhook_not_running", str(error)) from None
    except ReplayRunning as error:
        raise ApiError(409, "replay_running", str(error)) from None
    # At most WEBHOOK_REPLAY_LIMIT events per replay; `nextPosition` is where the rest starts.
    return answer(request, ReplayStarted(success=True, replaying=count, nextPosition=rest))


def _unresolved(ctx: Context, instance_id: str) -> frozenset[int]:
    """Positions of the instance's deliveries that failed and stay failed (as many as one
    replay may send)."""
    limit = ctx.settings.webhook_replay_limit
    page = ctx.queries.webhook_outcomes(instance_id, "failed", Window(limit))
    return frozenset(r["position"] for r in page.rows)


@doc(
    "Webhook deliveries, one per event sent (its attempts and replays together) with how it "
    "ended last: `failed` ones are unresolved",
    "webhooks",
    answer=OutcomeList,
    query=DELIVERY_QUERY,
)
async def outcomes(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    status, window = _delivery_query(request)
    page = ctx.queries.webhook_outcomes(row["id"], status, window)
    unresolved = ctx.queries.unresolved_webhooks([row["id"]]).get(row["id"], 0)
    found = [
        OutcomeView(
            deliveryId=r["delivery_id"],
            position=r["position"],
            event=r["event"],
            status=r["status"],
            attempts=r["attempts"],
            failures=r["failures"],
            recovered=bool(r["recovered"]),
            replay=bool(r["replay"]),
            lastStatusCode=r["status_code"],
            lastError=r["error"] or None,
            firstAt=r["first_at"],
            lastAt=r["created_at"],
        )
        for r in page.rows
    ]
    return answer(
        request,
        OutcomeList(
            outcomes=found,
            unresolved=unresolved,
            pagination=query.pagination(page.total, window.limit, window.skip),
        ),
    )


@doc(
    "Send a test event to the webhook URL now (signed like deliveries, not recorded): what "
    "the receiver answered",
    "webhooks",
    answer=WebhookTested,
    errors=(409,),
)
async def send_test(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    service = ctx.webhook_service
    if service is None:
        raise ApiError(503, "webhook_not_running", "Webhook delivery is not running")
    try:
        attempt = await asyncio.wait_for(
            asyncio.wrap_future(service.call(service.send_test(row["id"]))),
            service.defaults.timeout + 5,
        )
    except LookupError as error:
        raise ApiError(409, "no_webhook_url", str(error)) from None
    delivered = attempt.status is not None and 200 <= attempt.status < 300
    return answer(
        request,
        WebhookTested(delivered=delivered, statusCode=attempt.status, error=attempt.error or None),
    )


routes = [
    Route("/api/instances/{instanceId}/webhooks/deliveries", deliveries, methods=["GET"]),
    Route("/api/instances/{instanceId}/webhooks/replay", replay, methods=["POST"]),
    Route("/api/instances/{instanceId}/webhooks/outcomes", outcomes, methods=["GET"]),
    Route("/api/instances/{instanceId}/webhooks/test", send_test, methods=["POST"]),
]
