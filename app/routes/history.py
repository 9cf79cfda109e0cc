"""An instance's activity log and its chat histories."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import query
from app.context import Context
from app.openapi import doc
from domain.phone import to_jid


def _window(request: Request, column: str) -> tuple[list[str], list[Any]]:
    where, params = [], []
    start = query.timestamp(request.query_params, "startDate")
    end = query.timestamp(request.query_params, "endDate")
    if start:
        where.append(f"{column} >= ?")
        params.append(start)
    if end:
        where.append(f"{column} <= ?")
        params.append(end)
    return where, params


@doc("Activity log", "history", query={"limit": "default 100", "skip": "offset", "actions": "comma-separated actions", "startDate": "ISO 8601", "endDate": "ISO 8601"})
async def activity(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    limit, skip = query.paging(request.query_params, 100)
    where, params = _window(request, "created_at")
    where.insert(0, "instance_id = ?")
    params.insert(0, row["id"])
    actions = [a.strip() for a in request.query_params.get("actions", "").split(",") if a.strip()]
    if actions:
        where.append(f"action IN ({', '.join('?' * len(actions))})")
        params += actions
    clause = " AND ".join(where)
    db = ctx.read_models.db
    total = db["activity"].count_where(clause, params)
    rows = db["activity"].rows_where(
        clause, params, order_by="created_at DESC, rowid DESC", limit=limit, offset=skip
    )
    logs = [
        {
            "id": r["id"], "instanceId": r["instance_id"], "action": r["action"],
            "details": json.loads(r["details"]), "createdAt": r["created_at"],
        }
        for r in rows
    ]
    return JSONResponse({"logs": logs, "pagination": query.pagination(total, limit, skip)})


@doc("Chat history, newest first", "history", query={"limit": "default 50", "skip": "offset", "startDate": "ISO 8601", "endDate": "ISO 8601"})
async def messages(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    chat = to_jid(request.path_params["chatId"])
    limit, skip = query.paging(request.query_params, 50)
    where, params = _window(request, "created_at")
    clause = " AND ".join(["instance_id = ?", "remote_jid = ?", *where])
    params = [row["id"], chat, *params]
    db = ctx.read_models.db
    total = db["messages"].count_where(clause, params)
    rows = db["messages"].rows_where(
        clause, params, order_by="created_at DESC, rowid DESC", limit=limit, offset=skip
    )
    found = [
        {
            "id": r["id"], "instanceId": r["instance_id"], "remoteJid": r["remote_jid"],
            "fromMe": bool(r["from_me"]), "messageType": r["message_type"],
            "content": r["content"], "messageId": r["message_id"],
            "hasMedia": bool(r["has_media"]),
            "media": json.loads(r["media"]) if r["media"] else None,
            "status": r["status"], "createdAt": r["created_at"],
        }
        for r in rows
    ]
    return JSONResponse({"messages": found, "pagination": query.pagination(total, limit, skip)})


routes = [
    Route("/api/instances/{instanceId}/activity", activity, methods=["GET"]),
    Route("/api/instances/{instanceId}/chats/{chatId}/messages", messages, methods=["GET"]),
]
