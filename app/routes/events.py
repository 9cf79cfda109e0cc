"""The audit history: an instance's events (owner) or everyone's (admin), as pages or live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from app import history, query
from app.answers import EventPage, EventView, answer
from app.context import Context
from app.errors import ApiError
from app.openapi import Param, doc, whole

KEEPALIVE = 15.0
PAGE = 500


def _filters(request: Request) -> tuple[int, int, list[str]]:
    params = request.query_params
    after = query.integer(params, "after", 0, 0, 2**62)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id:
        if not last_event_id.isdigit():
            raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be a position")
        after = max(after, int(last_event_id))
    limit = query.integer(params, "limit", 100, 1, query.MAX_LIMIT)
    types = [t.strip() for t in params.get("types", "").split(",") if t.strip()]
    try:
        topics = history.topics_for(types)
    except ValueError as error:
        raise ApiError(400, "invalid_types", str(error)) from None
    return after, limit, topics


EVENT_QUERY: dict[str, str | Param] = {
    "after": whole("events after this position", 0, 2**62),
    "limit": whole("page size", 1, query.MAX_LIMIT),
    "types": "comma-separated event types",
}


@doc(
    "An instance's events (JSON, or live with Accept: text/event-stream)",
    "audit",
    answer=EventPage,
    media={"text/event-stream": "string"},
    query=EVENT_QUERY,
)
async def instance_events(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    return await _answer(request, ctx, UUID(row["id"]))


@doc(
    "Every event (admin)",
    "audit",
    answer=EventPage,
    admin=True,
    media={"text/event-stream": "string"},
    query=EVENT_QUERY,
)
async def all_events(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    return await _answer(request, ctx, None)


async def _answer(request: Request, ctx: Context, originator: UUID | None) -> Response:
    after, limit, topics = _filters(request)
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _stream(request, ctx, originator, after, topics),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    events = await asyncio.to_thread(history.read, ctx.store, originator, after, limit, topics)
    page = EventPage(
        events=[EventView(**event) for event in events],
        next=events[-1]["position"] if events else after,
    )
    return answer(request, page)


async def _stream(
    request: Request, ctx: Context, originator: UUID | None, after: int, topics: list[str]
) -> AsyncIterator[str]:
    """Server-sent events: `id:` is the position, so a client resumes with Last-Event-ID."""
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        seen = ctx.projections.position
        events: list[dict[str, Any]] = await asyncio.to_thread(
            history.read, ctx.store, originator, after, PAGE, topics
        )
        for event in events:
            yield f"id: {event['position']}\nevent: {event['type']}\ndata: {history.to_json(event)}\n\n"
            after = event["position"]
        if len(events) == PAGE:
            continue
        # Wake when anything new is stored (the read models see every event).
        if not await ctx.projections.wait_async(seen + 1, timeout=KEEPALIVE):
            yield ": keep-alive\n\n"


routes = [
    Route("/api/instances/{instanceId}/events", instance_events, methods=["GET"]),
    Route("/api/events", all_events, methods=["GET"]),
]
