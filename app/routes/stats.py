"""Usage statistics: the caller's, one instance's, and the whole system's (admin)."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import query
from app.answers import (
    Counts,
    DailyUsage,
    InstanceStats,
    InstanceUsage,
    InstanceUsageTotal,
    SystemStats,
    Usage,
    UserStats,
    UserTotals,
    answer,
)
from app.context import Context
from app.openapi import choice, doc
from projections.queries import zero_usage

USER_PERIODS = ("week", "month", "year", "all")
INSTANCE_PERIODS = ("today", "week", "month", "all")
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
    """Usage sums by column, as the answer's field names."""
    return {name: sums[column] for name, column in FIELDS.items()}


def _since(start: date | None) -> str | None:
    return start.isoformat() if start else None


@doc(
    "My usage",
    "statistics",
    answer=UserStats,
    query={"period": choice("week (from Monday), month, year or all", *USER_PERIODS)},
)
async def user_stats(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    _, start = query.period(request.query_params, USER_PERIODS, "month")
    since = _since(start)
    user = principal.user_id
    instances = ctx.instances_of(user)
    sums = _shown(ctx.queries.usage_of_user(user, since))
    sums["apiCalls"] += ctx.usage.pending(user, since=since)  # counted, not yet stored
    total = UserTotals(**sums, instanceCount=len(instances))
    per_instance = ctx.queries.usage_by_instance(user, since)
    zero = zero_usage()
    rows = []
    for i in instances:
        usage = _shown(per_instance.get(i["id"], zero))
        usage["apiCalls"] += ctx.usage.pending(user, i["id"], since)
        rows.append(InstanceUsageTotal(instanceId=i["id"], name=i["name"], **usage))
    return answer(request, UserStats(total=total, instances=rows))


@doc(
    "An instance's usage by day",
    "statistics",
    answer=InstanceStats,
    query={"period": choice("today, week (from Monday), month or all", *INSTANCE_PERIODS)},
)
async def instance_stats(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    _, start = query.period(request.query_params, INSTANCE_PERIODS, "today")
    since = _since(start)
    days = [
        DailyUsage(
            date=f"{day['day']}T00:00:00.000Z",
            messagesSent=day["messages_sent"],
            messagesReceived=day["messages_received"],
            mediaSent=day["media_sent"],
            mediaReceived=day["media_received"],
        )
        for day in ctx.queries.daily_usage(row["id"], since)
    ]
    sums = _shown(ctx.queries.usage_of_instance(row["id"], since))
    sums["apiCalls"] += ctx.usage.pending(instance_id=row["id"], since=since)
    usage = InstanceUsage(**sums, dailyStats=days)
    return answer(request, InstanceStats(usage=usage))


@doc("System statistics", "statistics", answer=SystemStats, admin=True)
async def system_stats(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    instances = ctx.queries.instance_counts()
    users = ctx.queries.user_counts()
    usage = _shown(ctx.queries.usage_of_system())
    usage["apiCalls"] += ctx.usage.pending()
    stats = SystemStats(
        instances=Counts(total=instances.total, active=instances.active),
        users=Counts(total=users.total, active=users.active),
        usage=Usage(**usage),
    )
    return answer(request, stats)


routes = [
    Route("/api/stats/user", user_stats, methods=["GET"]),
    Route("/api/stats/instances/{instanceId}", instance_stats, methods=["GET"]),
    Route("/api/stats/system", system_stats, methods=["GET"]),
]
