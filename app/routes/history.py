"""An instance's activity log and its chat histories."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import query
from app.answers import (
    ActivityEntry,
    ActivityLog,
    ChatHistory,
    ChatList,
    Pagination,
    answer,
)
from app.context import Context
from app.message_views import chat_view, history_message
from app.openapi import doc, whole
from domain.phone import phone_jid, to_jid
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
    # One chat whichever name addressed it: a person's number and LID are one chat.
    names = [chat]
    pair = ctx.queries.identities(row["id"], [chat]).get(chat)
    if pair is not None:
        names += [phone_jid(pair["phone"]), pair["lid"]]
    page = ctx.queries.messages(row["id"], names, window)
    parties = {r.get("sender") or r["remote_jid"] for r in page.rows}
    known = ctx.queries.identities(row["id"], sorted(parties))
    found = [history_message(r, known) for r in page.rows]
    return answer(request, ChatHistory(messages=found, pagination=_pagination(page.total, window)))


@doc(
    "Chats, most recently active first",
    "history",
    answer=ChatList,
    query={
        "limit": whole("page size (default 50)", 1, query.MAX_LIMIT),
        "skip": whole("offset", 0, query.MAX_SKIP),
    },
)
async def chats(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    limit, skip = query.paging(request.query_params, 50)
    window = Window(limit, skip)
    page = ctx.queries.chats(row["id"], window)
    found = [chat_view(r) for r in page.rows]
    return answer(request, ChatList(chats=found, pagination=_pagination(page.total, window)))


def _pagination(total: int, window: Window) -> Pagination:
    return query.pagination(total, window.limit, window.skip)


routes = [
    Route("/api/instances/{instanceId}/activity", activity, methods=["GET"]),
    Route("/api/instances/{instanceId}/chats", chats, methods=["GET"]),
    Route("/api/instances/{instanceId}/chats/{chatId}/messages", messages, methods=["GET"]),
]
