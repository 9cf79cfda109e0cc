"""Meta's webhook for Cloud API instances: subscription checks (GET) and deliveries (POST).

Two callbacks: one per instance (`/api/cloud/{instanceId}/webhook`), and one per Meta
app (`/api/cloud/webhook`), which routes each change to the instance of the phone
number id it names, so that an app with several numbers needs one callback URL.

No API credentials here: Meta proves itself with the verify token and the
X-Hub-Signature-256 of each body, checked here with the secrets the running engines
registered (`ctx.cloud`), before anything reaches an actor; a change for a number that
is not the instance's (or that no instance of a verifying app has) is dropped and
logged. Meta gets its 200 once what a delivery says is stored, and what was stored
before (Meta retries, and duplicates) is recognised from the read models, after a
restart too, and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from actors.engines.base import EngineEvent, Inbound, Receipt
from actors.engines.cloud import CloudEndpoint
from actors.engines.cloud.webhook import (
    BODY_LIMIT,
    ChangeReports,
    WebhookBodyError,
    parse,
    verify_signature,
    verify_token,
)
from app.answers import CloudWebhookReceived, answer
from app.context import Context, parse_id
from app.errors import ApiError, not_found
from app.openapi import doc
from app.schemas import read_body
from projections.messages import STATUS_RANK

log = logging.getLogger(__name__)

HUB_QUERY = {"hub.mode": "subscribe", "hub.verify_token": "token", "hub.challenge": "echoed"}


def _endpoint(ctx: Context, request: Request) -> CloudEndpoint:
    """The running Cloud API instance of the path (404 for anything else)."""
    instance_id = str(parse_id(request.path_params["instanceId"]))
    if ctx.queries.instance_engine(instance_id) != "cloud":
        raise not_found()
    endpoint = ctx.cloud.get(instance_id)
    if endpoint is None:
        raise ApiError(
            503, "instance_unavailable", "The instance is restarting; try again in a moment"
        )
    return endpoint


def _challenge(request: Request, tokens: Iterable[str]) -> Response:
    params = request.query_params
    token = params.get("hub.verify_token")
    if params.get("hub.mode") != "subscribe" or not any(verify_token(t, token) for t in tokens):
        raise ApiError(403, "invalid_verify_token", "The verify token does not match")
    return PlainTextResponse(params.get("hub.challenge", "")[:256])


def _parse(body: bytes) -> list[ChangeReports]:
    try:
        delivery = parse(body)
    except WebhookBodyError as error:
        raise ApiError(400, "invalid_webhook_body", f"The webhook body is {error}") from None
    if delivery.dropped:
        log.warning(
            "cloud webhook: dropped %d item(s) that are not Meta's documented shapes: %s",
            len(delivery.dropped),
            "; ".join(delivery.dropped[:5]),
        )
    return delivery.changes


@doc(
    "Meta webhook subscription check",
    "cloud",
    auth=False,
    media={"text/plain": "string"},
    errors=(403,),
    query=HUB_QUERY,
)
async def verify(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    return _challenge(request, [_endpoint(ctx, request).verify_token])


@doc(
    "Meta webhook delivery (signed)",
    "cloud",
    answer=CloudWebhookReceived,
    auth=False,
    errors=(400, 403, 413),
)
async def receive(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    endpoint = _endpoint(ctx, request)
    body = await read_body(request, BODY_LIMIT)
    if not verify_signature(endpoint.app_secret, body, request.headers.get("x-hub-signature-256")):
        raise ApiError(403, "invalid_signature", "The X-Hub-Signature-256 does not match")
    reports, foreign = [], set()
    for change in _parse(body):
        if change.phone_number_id == endpoint.phone_number_id:
            ctx.cloud.learn_account(endpoint.instance_id, change.waba_id)
            reports += change.reports
        elif change.phone_number_id is None and endpoint.waba_id in (None, change.waba_id):
            reports += change.reports  # the account of this callback's app (account_update)
        else:
            foreign.add(change.phone_number_id or change.waba_id)
    if foreign:
        # One Meta app, several numbers, one callback: the others' customers are not
        # this instance's (point the app at /api/cloud/webhook instead).
        log.warning(
            "cloud webhook for instance %s: dropped changes for phone number id(s) %s, "
            "not this instance's (%s)",
            endpoint.instance_id,
            ", ".join(sorted(repr(f) for f in foreign)[:5]),
            endpoint.phone_number_id,
        )
    recorded = await _record(ctx, endpoint.instance_id, reports)
    received = CloudWebhookReceived(success=True, received=recorded, dropped=len(foreign))
    return answer(request, received)


@doc(
    "Meta webhook subscription check for an app with several numbers",
    "cloud",
    auth=False,
    media={"text/plain": "string"},
    errors=(403,),
    query=HUB_QUERY,
)
async def verify_app(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    return _challenge(request, {e.verify_token for e in ctx.cloud.everyone()})


@doc(
    "Meta webhook delivery for an app with several numbers (signed; routed by number)",
    "cloud",
    answer=CloudWebhookReceived,
    auth=False,
    errors=(400, 403, 413),
)
async def receive_app(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    body = await read_body(request, BODY_LIMIT)
    changes = _parse(body)
    signature = request.headers.get("x-hub-signature-256")
    # The instances a change may be for, and of those the ones whose app secret signed
    # this body: another app's secret routes nothing to these numbers.
    verdicts: dict[str, bool] = {}

    def verified(endpoints: list[CloudEndpoint]) -> list[CloudEndpoint]:
        for endpoint in endpoints:
            if endpoint.app_secret not in verdicts:
                verdicts[endpoint.app_secret] = verify_signature(
                    endpoint.app_secret, body, signature
                )
        return [e for e in endpoints if verdicts[e.app_secret]]

    routed: dict[str, list[EngineEvent]] = {}
    unrouted: set[str] = set()
    for change in changes:
        if change.phone_number_id is None:
            endpoints = ctx.cloud.for_account(change.waba_id)
        else:
            endpoints = ctx.cloud.for_number(change.phone_number_id)
        targets = verified(endpoints)
        for endpoint in targets:
            if change.phone_number_id is not None:
                ctx.cloud.learn_account(endpoint.instance_id, change.waba_id)
            routed.setdefault(endpoint.instance_id, []).extend(change.reports)
        if not targets:
            unrouted.add(change.phone_number_id or change.waba_id)
    if not any(verdicts.values()):
        raise ApiError(403, "invalid_signature", "The X-Hub-Signature-256 does not match")
    if unrouted:
        log.warning(
            "cloud webhook: dropped changes for %s: no running instance of this app has "
            "that phone number id",
            ", ".join(sorted(repr(u) for u in unrouted)[:5]),
        )
    recorded = 0
    for instance_id, reports in routed.items():
        recorded += await _record(ctx, instance_id, reports)
    received = CloudWebhookReceived(success=True, received=recorded, dropped=len(unrouted))
    return answer(request, received)


async def _record(ctx: Context, instance_id: str, reports: list[EngineEvent]) -> int:
    """Store what is new of these reports; return how many were stored (once durable)."""
    ids = [r.message_id for r in reports if isinstance(r, Inbound | Receipt)]
    stored = ctx.queries.message_statuses(instance_id, ids) if ids else {}
    fresh = [r for r in reports if not _stored_already(r, stored)]
    if not fresh:
        return 0
    return await ctx.command(ctx.proxy(instance_id).record_reports(fresh))


def _stored_already(report: EngineEvent, stored: dict[str, str]) -> bool:
    """A message already in the history, or a status its message has reached already."""
    if isinstance(report, Inbound):
        return report.message_id in stored
    if isinstance(report, Receipt) and report.message_id in stored:
        return STATUS_RANK.get(stored[report.message_id], 0) >= STATUS_RANK.get(report.status, 0)
    return False


routes = [
    Route("/api/cloud/webhook", verify_app, methods=["GET"]),
    Route("/api/cloud/webhook", receive_app, methods=["POST"]),
    Route("/api/cloud/{instanceId}/webhook", verify, methods=["GET"]),
    Route("/api/cloud/{instanceId}/webhook", receive, methods=["POST"]),
]
