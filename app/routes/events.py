"""The audit history: an instance's events (owner) or everyone's (admin), as pages or live."""

from __future__ import annotations

import asyncio
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import history, query
from app.answers import EventPage, EventView, answer
from app.context import Context
from app.errors import ApiError, not_found
from app.openapi import Param, doc, whole
from app.streams import EventStreamResponse, seconds_until


def _filters(request: Request) -> tuple[int, int, list[str]]:
    params = request.query_params
    after = query.integer(params, "after", 0, 0, query.MAX_POSITION)
    last_event_id = request.headers.get("last-event-id")
    if last_event_id:
        after = max(after, query.position(last_event_id, "Last-Event-ID"))
    limit = query.integer(params, "limit", 100, 1, query.MAX_LIMIT)
    types = [t.strip() for t in params.get("types", "").split(",") if t.strip()]
    try:
        topics = history.topics_for(types)
    except ValueError as error:
        raise ApiError(400, "invalid_types", str(error)) from None
    return after, limit, topics


EVENT_QUERY: dict[str, str | Param] = {
    "after": whole("events after this position", 0, query.MAX_POSITION),
    "limit": whole("page size", 1, query.MAX_LIMIT),
    "types": "comma-separated event types",
}


@doc(
    "An instance's events (JSON, or live with Accept: text/event-stream)",
    "audit",
    answer=EventPage,
    media={"text/event-stream": "string"},
    query=EVENT_QUERY,
    errors=(429,),
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
    errors=(429,),
)
async def all_events(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    return await _answer(request, ctx, None)


async def _answer(request: Request, ctx: Context, originator: UUID | None) -> Response:
    after, limit, topics = _filters(request)
    if "text/event-stream" in request.headers.get("accept", ""):
        principal = ctx.principal(request)

        def check() -> float | None:
            """Whether the caller may still watch (from the in-memory user state)."""
            now = ctx.auth.authenticate(request)
            if originator is None and not now.admin:
                raise ApiError(403, "forbidden", "This needs an administrator")
            if originator is not None and not ctx.queries.owns(str(originator), now.user_id):
                raise not_found()
            return seconds_until(now.expires)

        stream = ctx.streams.open(principal.user_id, originator, topics, after, check)
        return EventStreamResponse(ctx.streams, stream)
    events = await asyncio.to_thread(history.read, ctx.store, originator, after, limit, topics)
    page = EventPage(
        events=[EventView(**event) for event in events],
        next=events[-1]["position"] if events else after,
    )
    return answer(request, page)


routes = [
    Route("/api/instances/{instanceId}/events", instance_events, methods=["GET"]),
    Route("/api/events", all_events, methods=["GET"]),
]
