"""An instance's activity log and its chat histories."""

from __future__ import annotations

import json

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import query
from app.answers import (
    ActivityEntry,
    ActivityLog,
    ChatHistory,
    MessageView,
    Pagination,
    answer,
)
from app.context import Context
from app.openapi import doc, whole
from domain.phone import to_jid
from projections.queries import Window


def _window(request: Request, default_limit: int) -> Window:
    limit, skip = query.paging(request.query_params, default_limit)
    start, end = query.window_bounds(request.query_params)
    return Window(limit, skip, start, end)


@doc(
    "Activity log",
    "history",
    answer=ActivityLog,
    query={
        "limit": whole("page size (default 100)", 1, query.MAX_LIMIT),
        "skip": whole("offset", 0, query.MAX_SKIP),
        "actions": "comma-separated actions",
        "startDate": "ISO 8601 (a date alone: from the start of that day)",
        "endDate": "ISO 8601 (a date alone: to the end of that day)",
    },
)
async def activity(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    window = _window(request, 100)
    actions = [a.strip() for a in request.query_params.get("actions", "").split(",") if a.strip()]
    page = ctx.queries.activity(row["id"], actions, window)
    logs = [
        ActivityEntry(
            id=r["id"],
            instanceId=r["instance_id"],
            action=r["action"],
            details=json.loads(r["details"]),
            createdAt=r["created_at"],
        )
        for r in page.rows
    ]
    return answer(request, ActivityLog(logs=logs, pagination=_pagination(page.total, window)))


@doc(
    "Chat history, newest first",
    "history",
    answer=ChatHistory,
    query={
        "limit": whole("page size (default 50)", 1, query.MAX_LIMIT),
        "skip": whole("offset", 0, query.MAX_SKIP),
        "startDate": "ISO 8601 (a date alone: from the start of that day)",
        "endDate": "ISO 8601 (a date alone: to the end of that day)",
    },
)
async def messages(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    chat = to_jid(request.path_params["chatId"])
    window = _window(request, 50)
    page = ctx.queries.messages(row["id"], chat, window)
    found = [
        MessageView(
            id=r["id"],
            instanceId=r["instance_id"],
            remoteJid=r["remote_jid"],
            fromMe=bool(r["from_me"]),
            messageType=r["message_type"],
            content=r["content"],
            messageId=r["message_id"],
            hasMedia=bool(r["has_media"]),
            media=json.loads(r["media"]) if r["media"] else None,
            status=r["status"],
            createdAt=r["created_at"],
            data=json.loads(r["data"]) if r.get("data") else UNSET,
            error=json.loads(r["error"]) if r.get("error") else UNSET,
        )
        for r in page.rows
    ]
    return answer(request, ChatHistory(messages=found, pagination=_pagination(page.total, window)))


def _pagination(total: int, window: Window) -> Pagination:
    return query.pagination(total, window.limit, window.skip)


routes = [
    Route("/api/instances/{instanceId}/activity", activity, methods=["GET"]),
    Route("/api/instances/{instanceId}/chats/{chatId}/messages", messages, methods=["GET"]),
]
