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
from projections.usage import NO_INSTANCE

FIELDS = {
    "messagesSent": "messages_sent", "messagesReceived": "messages_received",
    "mediaSent": "media_sent", "mediaReceived": "media_received",
    "totalMediaSize": "total_media_size", "apiCalls": "api_calls", "webhookSent": "webhook_sent",
}
SUMS = ", ".join(f"COALESCE(SUM({column}), 0) AS {name}" for name, column in FIELDS.items())


def _since(start: date | None) -> tuple[str, list[Any]]:
    return ("AND day >= ?", [start.isoformat()]) if start else ("", [])


@doc("My usage", "statistics", query={"period": "week, month, year or all"})
async def user_stats(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    _, start = query.period(request.query_params, ("week", "month", "year", "all"), "month")
    since, params = _since(start)
    db = ctx.read_models.db
    total = next(db.query(f"SELECT {SUMS} FROM usage WHERE user_id = ? {since}",
                          [principal.user_id, *params]))
    instances = ctx.instances_of(principal.user_id)
    total["instanceCount"] = len(instances)
    per_instance = {
        row["instance_id"]: row
        for row in db.query(
            f"SELECT instance_id, {SUMS} FROM usage WHERE user_id = ? AND instance_id != ? "
            f"{since} GROUP BY instance_id", [principal.user_id, NO_INSTANCE, *params],
        )
    }
    zero = dict.fromkeys(FIELDS, 0)
    return JSONResponse({
        "total": total,
        "instances": [
            {"instanceId": i["id"], "name": i["name"],
             **{k: v for k, v in per_instance.get(i["id"], zero).items() if k in FIELDS}}
            for i in instances
        ],
    })


@doc("An instance's usage by day", "statistics", query={"period": "today, week, month or all"})
async def instance_stats(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    _, start = query.period(request.query_params, ("today", "week", "month", "all"), "today")
    since, params = _since(start)
    db = ctx.read_models.db
    usage = next(db.query(f"SELECT {SUMS} FROM usage WHERE instance_id = ? {since}",
                          [row["id"], *params]))
    usage["dailyStats"] = [
        {
            "date": f"{day}T00:00:00.000Z", "messagesSent": sent, "messagesReceived": received,
            "mediaSent": media_sent, "mediaReceived": media_received,
        }
        for day, sent, received, media_sent, media_received in db.execute(
            "SELECT day, SUM(messages_sent), SUM(messages_received), SUM(media_sent), "
            f"SUM(media_received) FROM usage WHERE instance_id = ? {since} GROUP BY day ORDER BY day",
            [row["id"], *params],
        ).fetchall()
    ]
    return JSONResponse({"usage": usage})


@doc("System statistics", "statistics", admin=True)
async def system_stats(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    db = ctx.read_models.db
    instances_total, instances_active = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(status = 'connected'), 0) FROM instances WHERE deleted = 0"
    ).fetchone()
    users_total, users_active = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(active), 0) FROM users"
    ).fetchone()
    usage = next(db.query(f"SELECT {SUMS} FROM usage"))
    return JSONResponse({
        "instances": {"total": instances_total, "active": instances_active},
        "users": {"total": users_total, "active": users_active},
        "usage": usage,
    })


routes = [
    Route("/api/stats/user", user_stats, methods=["GET"]),
    Route("/api/stats/instances/{instanceId}", instance_stats, methods=["GET"]),
    Route("/api/stats/system", system_stats, methods=["GET"]),
]
