"""Instances: create, list, read, change, delete, reconnect, log out, QR code."""

from __future__ import annotations

import asyncio
import io
from typing import Any
from urllib.parse import urlsplit

import segno
from msgspec import UNSET, structs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.outbound import AddressNotAllowed, OutboundHTTP
from app import quotas, views
from app.answers import Done, InstanceList, InstanceView, LogoutAnswer, QrCodeView, answer
from app.context import LOGOUT_TIMEOUT, Context
from app.engine_settings import check_proxy, cloud_settings
from app.errors import ApiError, invalid
from app.openapi import choice, doc
from app.schemas import InstanceCreate, InstanceUpdate, parse
from app.sealing import ENGINE_SECRETS, WEBHOOK_SECRETS
from domain.instance import Instance
from domain.urls import HIDDEN


async def check_webhook_url(ctx: Context, url: str | None) -> None:
    """An http(s) URL, on a public address unless WEBHOOK_ALLOW_PRIVATE (400 otherwise)."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "invalid_webhook_url", f"'{url}' is not an http(s) URL")
    try:
        await OutboundHTTP(ctx.settings.webhook_allow_private).check(url)
    except AddressNotAllowed as error:
        raise ApiError(400, "webhook_url_not_allowed", f"Webhook URL refused: {error}") from None


def _view(ctx: Context, row: dict[str, Any], detailed: bool = True) -> InstanceView:
    """An instance's view; on several nodes with the node that runs it."""
    node = UNSET if ctx.cluster is None else ctx.node_of(row["id"])
    return views.instance(row, detailed=detailed, node=node)


def check_engine(ctx: Context, engine: str) -> None:
    if engine not in ctx.engines:
        available = ", ".join(sorted(ctx.engines)) or "none"
        raise ApiError(
            400,
            "engine_unavailable",
            f"The '{engine}' engine is not available on this server (available: {available})",
        )


@doc(
    "Create an instance; it starts connecting at once",
    "instances",
    answer=InstanceView,
    body=InstanceCreate,
    ok=201,
    errors=(429,),
)
async def create_instance(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    body = await parse(request, InstanceCreate)
    # One creation per user at a time: concurrent requests cannot all pass the quota.
    async with quotas.creating(principal.user_id):
        await quotas.check_instances(ctx, principal)
        instance = await _create(ctx, principal.user_id, body)
    if ctx.cluster is None:
        await ctx.ask(ctx.supervisor_proxy.start_instance(instance.id))
    else:  # runs here if it is this node's, else its node starts it when it sees it
        await asyncio.to_thread(ctx.cluster.claim, str(instance.id))
    request.path_params["instanceId"] = str(instance.id)
    return answer(request, _view(ctx, ctx.own_instance(request)))


async def _create(ctx: Context, user_id: str, body: InstanceCreate) -> Instance:
    engine = body.engine or ctx.settings.default_engine
    check_engine(ctx, engine)
    if engine == "cloud" and body.cloud is None:
        raise invalid("The cloud engine needs 'cloud' settings", "cloud", "missing")
    await check_webhook_url(ctx, body.webhookUrl)
    settings: dict[str, Any] = (
        ctx.sealer.seal_fields(await cloud_settings(ctx, body.cloud), ENGINE_SECRETS)
        if body.cloud
        else {}
    )
    if body.proxy:
        await check_proxy(ctx, body.proxy)
        settings["proxy"] = body.proxy
    instance = Instance(
        user_id=user_id,
        name=body.name,
        description=body.description,
        engine=engine,
        webhook={
            "url": body.webhookUrl,
            # A URL turns webhooks on unless they are turned off in the same request.
            "enabled": bool(body.webhookUrl) and body.webhookEnabled is not False,
            "notifyReceived": body.notifyReceived,
            "notifySent": body.notifySent,
            "notifyDelivery": body.notifyDelivery,
            "notifyRead": body.notifyRead,
            "notifyMessageUpdates": body.notifyMessageUpdates,
            "notifyGroups": body.notifyGroups,
            "notifyPresence": body.notifyPresence,
            "maxRetries": body.maxRetries
            if body.maxRetries is not None
            else ctx.settings.webhook_max_retries,
            "retryInterval": body.retryInterval
            if body.retryInterval is not None
            else ctx.settings.webhook_retry_interval,
            "secret": ctx.sealer.seal(body.webhookSecret),
        },
        engine_settings=settings,
    )
    await ctx.save(instance)  # the read models include it before the next one is counted
    return instance


@doc("My instances", "instances", answer=InstanceList)
async def list_instances(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    rows = ctx.instances_of(principal.user_id)
    return answer(
        request, InstanceList(instances=[_view(ctx, row, detailed=False) for row in rows])
    )


@doc(
    "An instance with its webhook settings and connection status",
    "instances",
    answer=InstanceView,
)
async def get_instance(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    return answer(request, _view(ctx, ctx.own_instance(request)))


@doc(
    "Change an instance (name, webhook, engine settings)",
    "instances",
    answer=InstanceView,
    body=InstanceUpdate,
)
async def update_instance(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    body = await parse(request, InstanceUpdate)
    changes: dict[str, Any] = {}
    for field in ("name", "description"):
        if getattr(body, field) is not UNSET:
            changes[field] = getattr(body, field)
    webhook: dict[str, Any] = {}
    if body.webhookUrl is not UNSET and not _as_shown(body.webhookUrl, row["webhook"].get("url")):
        await check_webhook_url(ctx, body.webhookUrl)
        webhook["url"] = body.webhookUrl
    if body.webhookEnabled is not UNSET:
        webhook["enabled"] = body.webhookEnabled
    if body.webhookSettings is not UNSET:
        for key, value in structs.asdict(body.webhookSettings).items():
            if value is not UNSET:
                webhook[key] = ctx.sealer.seal(value) if key in WEBHOOK_SECRETS else value
    if webhook:
        changes["webhook"] = webhook
    settings: dict[str, Any] = {}
    if body.cloud is not UNSET:
        if row["engine"] != "cloud":
            raise invalid("'cloud' settings apply to cloud instances only", "cloud")
        settings.update(
            ctx.sealer.seal_fields(await cloud_settings(ctx, body.cloud), ENGINE_SECRETS)
        )
    if body.proxy is not UNSET and not _as_shown(
        body.proxy, (row.get("engine_settings") or {}).get("proxy")
    ):
        await check_proxy(ctx, body.proxy)
        settings["proxy"] = body.proxy
    if settings:
        changes["engine_settings"] = settings
    versioned_webhook = await ctx.command(ctx.proxy(row["id"]).update(changes))
    if "webhook" in changes:
        await ctx.refresh_webhooks(row["id"], versioned_webhook)
    return answer(request, _view(ctx, ctx.own_instance(request)))


def _as_shown(given: str | None, shown: str | None) -> bool:
    """A URL sent back exactly as this API shows it (credentials hidden): unchanged."""
    return given is not None and given == shown and HIDDEN in given


@doc("Delete an instance and its session", "instances", answer=Done)
async def delete_instance(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    await ctx.command(ctx.proxy(row["id"]).delete(), timeout=LOGOUT_TIMEOUT)
    await ctx.ask(ctx.supervisor_proxy.forget(ctx.instance_uuid(row)))
    return answer(request, Done(success=True, message=f"Instance {row['id']} deleted successfully"))


@doc("Reconnect an instance", "instances", answer=Done)
async def reconnect(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    await ctx.command(ctx.proxy(row["id"]).reconnect())
    return answer(request, Done(success=True, message=f"Instance {row['id']} reconnected"))


@doc("Log an instance out of WhatsApp", "instances", answer=LogoutAnswer)
async def logout(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    unlinked = await ctx.command(ctx.proxy(row["id"]).logout(), timeout=LOGOUT_TIMEOUT)
    return answer(request, views.logged_out(f"Instance {row['id']} logged out", unlinked))


@doc(
    "The current QR code (raw, or ?format=svg|png)",
    "instances",
    answer=QrCodeView,
    media={"image/svg+xml": "string", "image/png": "binary"},
    query={"format": choice("svg or png to get an image", "svg", "png")},
)
async def qr_code(request: Request) -> Response:
    """The current QR code as its raw string, or drawn (?format=svg|png)."""
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    image_format = request.query_params.get("format")
    if image_format not in (None, "svg", "png"):
        raise ApiError(400, "invalid_format", "format must be svg or png")
    state = await ctx.ask(ctx.proxy(row["id"]).state())
    code = state["qrCode"]
    if code is None:
        raise ApiError(404, "qr_not_available", f"No QR code right now (status: {state['status']})")
    if image_format is None:
        return answer(request, QrCodeView(qrCode=code))
    buffer = io.BytesIO()
    segno.make(code, error="m").save(buffer, kind=image_format, scale=6, border=2)
    media_type = "image/svg+xml" if image_format == "svg" else "image/png"
    return Response(buffer.getvalue(), media_type=media_type, headers={"Cache-Control": "no-store"})


routes = [
    Route("/api/instances", create_instance, methods=["POST"]),
    Route("/api/instances", list_instances, methods=["GET"]),
    Route("/api/instances/{instanceId}", get_instance, methods=["GET"]),
    Route("/api/instances/{instanceId}", update_instance, methods=["PUT"]),
    Route("/api/instances/{instanceId}", delete_instance, methods=["DELETE"]),
    Route("/api/instances/{instanceId}/reconnect", reconnect, methods=["POST"]),
    Route("/api/instances/{instanceId}/logout", logout, methods=["POST"]),
    Route("/api/instances/{instanceId}/qr", qr_code, methods=["GET"]),
]
