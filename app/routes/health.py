"""/health: is the process, its storage and its actor system fit to serve."""

from __future__ import annotations

import asyncio
import hmac

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app.answers import (
    ActorsCheck,
    ClusterCheck,
    EventStoreCheck,
    ForwardsCheck,
    Health,
    HealthChecks,
    Index,
    JSONAnswer,
    ReadModelsCheck,
    answer,
)
from app.cluster.forward import ForwardCounts
from app.cluster.node import ClusterNode
from app.context import Context
from app.openapi import DOCS_PAGE, doc


@doc(
    "Process, storage and actor health (503 with the same answer when unhealthy)",
    "operations",
    answer=Health,
    also=(503,),
    auth=False,
)
async def health(request: Request) -> Response:
    ctx: Context = request.app.state.ctx

    def probe() -> EventStoreCheck:
        position = ctx.store.recorder.max_notification_id()
        return EventStoreCheck(ok=True, position=position or 0, **ctx.storage.details())

    try:
        store = await asyncio.wait_for(asyncio.to_thread(probe), timeout=2)
    except Exception as error:
        store = EventStoreCheck(ok=False, error=str(error) or type(error).__name__)
    failure = ctx.projections.error
    read_models = ReadModelsCheck(
        ok=failure is None,
        position=ctx.projections.position,
        error=str(failure) if failure else UNSET,
    )
    alive = sum(1 for ref in list(ctx.registry.values()) if ref.is_alive())
    actors = ActorsCheck(
        ok=ctx.supervisor.is_alive(),
        instances=len(ctx.registry),
        running=alive,
        # Engine starts still waiting for their turn or under way (ENGINE_START_CONCURRENCY).
        starting=ctx.start_gate.starting,
    )
    cluster = (
        UNSET if ctx.cluster is None else cluster_health(ctx.cluster, request.app.state.forwards)
    )
    healthy = store.ok and read_models.ok and actors.ok and (cluster is UNSET or cluster.ok)
    checks = HealthChecks(eventStore=store, readModels=read_models, actors=actors, cluster=cluster)
    return answer(
        request,
        Health(status="ok" if healthy else "unhealthy", checks=checks),
        status=200 if healthy else 503,
    )


def cluster_health(node: ClusterNode, forwards: ForwardCounts) -> ClusterCheck:
    """Several nodes: this node, its leases, the live nodes, forwards and takeovers; not ok
    while it has stopped its engines for lack of lease renewals."""
    counts = node.counts
    return ClusterCheck(
        ok=not node.fenced,
        node=node.id,
        leader=node.leader_id(),
        nodes=len(node.view.nodes),
        leases=len(node.held()),
        takeovers=counts.takeovers,
        forwards=ForwardsCheck(
            sent=forwards.sent, failed=forwards.failed, received=forwards.received
        ),
        lastRenewalMs=round(counts.renewal_seconds * 1000, 1),
        draining=True if node.draining else UNSET,
    )


async def metrics(request: Request) -> Response:
    """Prometheus metrics: an administrator's credentials, or Bearer METRICS_TOKEN."""
    ctx: Context = request.app.state.ctx
    token = ctx.settings.metrics_token
    given = request.headers.get("authorization", "")
    if not (token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())):
        ctx.admin(request)
    body = await asyncio.to_thread(request.app.state.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4")


async def openapi_json(request: Request) -> Response:
    return JSONAnswer(request.app.state.openapi)


async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)


async def index(request: Request) -> Response:
    """A browser (it asks for HTML) goes to the web console; anything else, curl's `*/*`
    included, gets a short index of where to go next."""
    vary = {"Vary": "Accept"}
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui/", status_code=307, headers=vary)
    info = request.app.state.openapi["info"]
    index = Index(name=info["title"], version=info["version"], docs="/docs", health="/health")
    return JSONAnswer(index, headers=vary)


routes = [
    Route("/", index, methods=["GET"], include_in_schema=False),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"], include_in_schema=False),
    Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
    Route("/docs", docs, methods=["GET"], include_in_schema=False),
]
