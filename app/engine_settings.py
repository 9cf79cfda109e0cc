"""Engine settings as users set them, checked before they are stored.

Both settings here make the server open connections where the user says: the Cloud
API's `graphBaseUrl` (called with the instance's access token) and a whatsmeow
`proxy`. They follow the webhooks' address policy: private, loopback and link-local
addresses are refused unless WEBHOOK_ALLOW_PRIVATE, and the refusal says only that
the address is not allowed (what a host resolves to is nobody's business). In
production the Graph API must be reached over https.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from msgspec import structs

from actors.engines.cloud import graph_url_problem, is_metas
from actors.outbound import AddressNotAllowed, OutboundHTTP
from app.context import Context
from app.errors import ApiError
from app.schemas import CloudSettings

PROXY_SCHEMES = ("http", "https", "socks5")


async def cloud_settings(ctx: Context, cloud: CloudSettings) -> dict[str, Any]:
    """The Cloud API settings to store (400 if `graphBaseUrl` is not allowed here).

    Meta's own Graph API is stored as no choice at all (None), so that it follows the
    server's default."""
    settings = structs.asdict(cloud)
    url = settings.get("graphBaseUrl")
    if url is None or is_metas(url):
        settings["graphBaseUrl"] = None
        return settings
    problem = graph_url_problem(url, require_https=ctx.settings.production)
    if problem is not None:
        raise ApiError(400, "invalid_graph_url", f"The graphBaseUrl {problem}")
    await _allowed(ctx, url, "graph_url_not_allowed", "The graphBaseUrl")
    return settings


async def check_proxy(ctx: Context, url: str | None) -> None:
    """An http(s) or socks5 proxy URL on an allowed address (400 otherwise)."""
    if url is None:
        return
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or parts.scheme not in PROXY_SCHEMES or not parts.hostname or not port:
        raise ApiError(
            400,
            "invalid_proxy",
            "The proxy must look like socks5://host:port or http(s)://host:port",
        )
    await _allowed(ctx, url, "proxy_not_allowed", "The proxy")


async def _allowed(ctx: Context, url: str, code: str, what: str) -> None:
    try:
        await OutboundHTTP(ctx.settings.webhook_allow_private).check(url)
    except AddressNotAllowed:
        raise ApiError(400, code, f"{what} is not allowed on this server") from None
