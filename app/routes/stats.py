"""Usage statistics: the caller's, one instance's, and the whole system's (admin)."""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import query
from app.context import Context
from app.openapi import doc
from projections.queries import zero_usage

FIELDS = {
    "messagesSent": "messages_sent",
    "messagesReceived": "messages_received",
    "mediaSent": "media_sent",
    "mediaReceived": "media_received",
    "totalMediaSize": "total_media_size",
    "apiCalls": "api_calls",
    "webhookSent": "webhook_sent",
}


def _shown(sums: dict[str, int]) -> dict[str, int]:
    return {name: sums[column] for name, column in FIELDS.items()}


def _since(start: date | None) -> str | None:
    return start.isoformat() if start else None


@doc("My usage", "statistics", query={"period": "week, month, year or all"})
async def user_stats(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    _, start = query.period(request.query_params, ("week", "month", "year", "all"), "month")
    since = _since(start)
    user = principal.user_id
    total: dict[str, int] = _shown(ctx.queries.usage_of_user(user, since))
    total["apiCalls"] += ctx.usage.pending(user, since=since)  # counted, not yet stored
    instances = ctx.instances_of(user)
    total["instanceCount"] = len(instances)
    per_instance = ctx.queries.usage_by_instance(user, since)
    zero = zero_usage()
    shown = []
    for i in instances:
        usage = _shown(per_instance.get(i["id"], zero))
        usage["apiCalls"] += ctx.usage.pending(user, i["id"], since)
        shown.append({"instanceId": i["id"], "name": i["name"], **usage})
    return JSONResponse({"total": total, "instances": shown})


@doc("An instance's usage by day", "statistics", query={"period": "today, week, month or all"})
async def instance_stats(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    _, start = query.period(request.query_params, ("today", "week", "month", "all"), "today")
    since = _since(start)
    usage: dict[str, Any] = _shown(ctx.queries.usage_of_instance(row["id"], since))
    usage["apiCalls"] += ctx.usage.pending(instance_id=row["id"], since=since)
    usage["dailyStats"] = [
        {
            "date": f"{day['day']}T00:00:00.000Z",
            "messagesSent": day["messages_sent"],
            "messagesReceived": day["messages_received"],
            "mediaSent": day["media_sent"],
            "mediaReceived": day["media_received"],
        }
        for day in ctx.queries.daily_usage(row["id"], since)
    ]
    return JSONResponse({"usage": usage})


@doc("System statistics", "statistics", admin=True)
async def system_stats(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    instances = ctx.queries.instance_counts()
    users = ctx.queries.user_counts()
    usage = _shown(ctx.queries.usage_of_system())
    usage["apiCalls"] += ctx.usage.pending()
    return JSONResponse(
        {
            "instances": {"total": instances.total, "active": instances.active},
            "users": {"total": users.total, "active": users.active},
            "usage": usage,
        }
    )


routes = [
    Route("/api/stats/user", user_stats, methods=["GET"]),
    Route("/api/stats/instances/{instanceId}", instance_stats, methods=["GET"]),
    Route("/api/stats/system", system_stats, methods=["GET"]),
]
