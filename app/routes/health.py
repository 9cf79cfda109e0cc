"""/health: is the process, its storage and its actor system fit to serve."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.context import Context
from app.openapi import DOCS_PAGE, doc


@doc("Process, storage and actor health", "operations", auth=False)
async def health(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    checks: dict[str, dict[str, object]] = {}

    def probe() -> dict[str, object]:
        position = ctx.store.recorder.max_notification_id()
        return {"ok": True, "position": position or 0, **ctx.storage.details()}

    try:
        checks["eventStore"] = await asyncio.wait_for(asyncio.to_thread(probe), timeout=2)
    except Exception as error:
        checks["eventStore"] = {"ok": False, "error": str(error) or type(error).__name__}
    checks["readModels"] = {
        "ok": ctx.projections.error is None,
        "position": ctx.projections.position,
        **({"error": str(ctx.projections.error)} if ctx.projections.error else {}),
    }
    alive = sum(1 for ref in list(ctx.registry.values()) if ref.is_alive())
    checks["actors"] = {
        "ok": ctx.supervisor.is_alive(),
        "instances": len(ctx.registry),
        "running": alive,
        # Engine starts still waiting for their turn or under way (ENGINE_START_CONCURRENCY).
        "starting": ctx.start_gate.starting,
    }
    healthy = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": checks},
        status_code=200 if healthy else 503,
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


async def openapi_json(request: Request) -> JSONResponse:
    document = request.app.state.openapi
    return JSONResponse(document)


async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE)


async def index(request: Request) -> Response:
    """A browser (it asks for HTML) goes to the web console; anything else, curl's `*/*`
    included, gets a short index of where to go next."""
    vary = {"Vary": "Accept"}
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui/", status_code=307, headers=vary)
    document = request.app.state.openapi
    return JSONResponse(
        {
            "name": document["info"]["title"],
            "version": document["info"]["version"],
            "docs": "/docs",
            "health": "/health",
        },
        headers=vary,
    )


routes = [
    Route("/", index, methods=["GET"], include_in_schema=False),
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"], include_in_schema=False),
    Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
    Route("/docs", docs, methods=["GET"], include_in_schema=False),
]
