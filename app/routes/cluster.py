"""Several nodes: who is in the cluster, what each runs, and who leads (admin)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import ClusterNodeView, ClusterView, answer
from app.context import Context
from app.errors import ApiError
from app.openapi import doc


def _iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@doc(
    "The nodes of the cluster, what each runs and which one leads (admin)",
    "operations",
    answer=ClusterView,
    admin=True,
)
async def cluster_view(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    node = ctx.cluster
    if node is None:
        raise ApiError(404, "not_clustered", "This server runs as one node (NODE_URL is not set)")
    view = node.view
    counts: dict[str, int] = {}
    for lease in view.leases.values():
        if lease.owner is not None and lease.key != "leader":
            counts[lease.owner] = counts.get(lease.owner, 0) + 1
    counts[node.id] = len(node.held())
    return answer(
        request,
        ClusterView(
            node=node.id,
            leader=node.leader_id(),
            nodes=[
                ClusterNodeView(
                    id=record.node_id,
                    url=record.url,
                    lastSeen=_iso(record.heartbeat),
                    startedAt=_iso(record.started),
                    draining=record.draining,
                    instances=counts.get(record.node_id, 0),
                )
                for record in sorted(view.nodes.values(), key=lambda r: r.node_id)
            ],
        ),
    )


routes = [Route("/api/cluster", cluster_view, methods=["GET"])]
