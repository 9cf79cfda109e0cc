"""Meta's webhook for cloud instances: subscription check (GET) and deliveries (POST).

No API credentials here: Meta proves itself with the verify token and the
X-Hub-Signature-256 of each body, checked by the instance's engine.
"""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.context import Context, parse_id
from app.errors import ApiError, not_found
from app.openapi import doc
from app.schemas import read_body


def _cloud_instance(ctx: Context, request: Request) -> UUID:
    instance_id = parse_id(request.path_params["instanceId"])
    if ctx.queries.instance_engine(str(instance_id)) != "cloud":
        raise not_found()
    return instance_id


@doc(
    "Meta webhook subscription check",
    "cloud",
    auth=False,
    content="text/plain",
    errors=(403,),
    query={"hub.mode": "subscribe", "hub.verify_token": "token", "hub.challenge": "echoed"},
)
async def verify(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = _cloud_instance(ctx, request)
    params = request.query_params
    ok = await ctx.ask(
        ctx.proxy(instance_id).verify_cloud_subscription(
            params.get("hub.mode"), params.get("hub.verify_token")
        )
    )
    if not ok:
        raise ApiError(403, "invalid_verify_token", "The verify token does not match")
    return PlainTextResponse(params.get("hub.challenge", ""))


@doc("Meta webhook delivery (signed)", "cloud", auth=False, errors=(403,))
async def receive(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = _cloud_instance(ctx, request)
    body = await read_body(request)
    reports = await ctx.ask(
        ctx.proxy(instance_id).receive_cloud_webhook(
            body, request.headers.get("x-hub-signature-256")
        )
    )
    return JSONResponse({"success": True, "received": reports})


routes = [
    Route("/api/cloud/{instanceId}/webhook", verify, methods=["GET"]),
    Route("/api/cloud/{instanceId}/webhook", receive, methods=["POST"]),
]
