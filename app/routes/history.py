"""An instance's activity log and its chat histories."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import query
from app.context import Context
from app.openapi import doc
from domain.phone import to_jid
from projections.queries import Window


def _window(request: Request, default_limit: int) -> Window:
    limit, skip = query.paging(request.query_params, default_limit)
    return Window(
        limit,
        skip,
        query.timestamp(request.query_params, "startDate"),
        query.timestamp(request.query_params, "endDate"),
    )


@doc(
    "Activity log",
    "history",
    query={
        "limit": "default 100",
        "skip": "offset",
        "actions": "comma-separated actions",
        "startDate": "ISO 8601",
        "endDate": "ISO 8601",
    },
)
async def activity(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    window = _window(request, 100)
    actions = [a.strip() for a in request.query_params.get("actions", "").split(",") if a.strip()]
    page = ctx.queries.activity(row["id"], actions, window)
    logs = [
        {
            "id": r["id"],
            "instanceId": r["instance_id"],
            "action": r["action"],
            "details": json.loads(r["details"]),
            "createdAt": r["created_at"],
        }
        for r in page.rows
    ]
    return JSONResponse({"logs": logs, "pagination": _pagination(page.total, window)})


@doc(
    "Chat history, newest first",
    "history",
    query={"limit": "default 50", "skip": "offset", "startDate": "ISO 8601", "endDate": "ISO 8601"},
)
async def messages(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    chat = to_jid(request.path_params["chatId"])
    window = _window(request, 50)
    page = ctx.queries.messages(row["id"], chat, window)
    found = [
        {
            "id": r["id"],
            "instanceId": r["instance_id"],
            "remoteJid": r["remote_jid"],
            "fromMe": bool(r["from_me"]),
            "messageType": r["message_type"],
            "content": r["content"],
            "messageId": r["message_id"],
            "hasMedia": bool(r["has_media"]),
            "media": json.loads(r["media"]) if r["media"] else None,
            "status": r["status"],
            "createdAt": r["created_at"],
            **({"data": json.loads(r["data"])} if r.get("data") else {}),
            **({"error": json.loads(r["error"])} if r.get("error") else {}),
        }
        for r in page.rows
    ]
    return JSONResponse({"messages": found, "pagination": _pagination(page.total, window)})


def _pagination(total: int, window: Window) -> dict:
    return query.pagination(total, window.limit, window.skip)


routes = [
    Route("/api/instances/{instanceId}/activity", activity, methods=["GET"]),
    Route("/api/instances/{instanceId}/chats/{chatId}/messages", messages, methods=["GET"]),
]
