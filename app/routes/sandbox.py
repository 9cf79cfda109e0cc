"""The sandbox network's controls: play the phone that scans, an outside sender, a dropped line.

Mounted only when SANDBOX_ENABLED.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import Done, SandboxInboundSent, SandboxPaired, answer
from app.context import Context
from app.openapi import doc
from app.schemas import SandboxInbound, SandboxScan, decode, read_body
from domain.phone import normalize_phone, to_lid


@doc("Sandbox: the phone scans the QR code", "sandbox", answer=SandboxPaired, body=SandboxScan)
async def scan(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    raw = await read_body(request)
    body = decode(raw, SandboxScan) if raw.strip() else SandboxScan()
    phone = normalize_phone(body.phone) if body.phone else None
    lid = to_lid(body.lid) if body.lid else None
    paired = await ctx.ask(ctx.proxy(instance_id).sandbox_scan(phone, lid))
    await ctx.settle(await ctx.ask(ctx.proxy(instance_id).position()))
    return answer(request, SandboxPaired(success=True, phone=paired))


@doc(
    "Sandbox: a message from an outside number",
    "sandbox",
    answer=SandboxInboundSent,
    body=SandboxInbound,
)
async def inbound(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = decode(await read_body(request), SandboxInbound)
    sender = to_lid(body.sender) if "@" in body.sender else normalize_phone(body.sender)
    lid = to_lid(body.lid) if body.lid else None
    message_id = await ctx.ask(
        ctx.proxy(instance_id).sandbox_inbound(sender, body.message, body.pushName, lid)
    )
    await ctx.settle(await ctx.ask(ctx.proxy(instance_id).position()))
    return answer(request, SandboxInboundSent(success=True, id=message_id))


@doc("Sandbox: drop the connection (it comes back)", "sandbox", answer=Done)
async def drop(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    await ctx.ask(ctx.proxy(instance_id).sandbox_drop())
    return answer(request, Done(success=True))


routes = [
    Route("/api/sandbox/instances/{instanceId}/scan", scan, methods=["POST"]),
    Route("/api/sandbox/instances/{instanceId}/inbound", inbound, methods=["POST"]),
    Route("/api/sandbox/instances/{instanceId}/drop", drop, methods=["POST"]),
]
