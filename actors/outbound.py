"""Outbound HTTP to addresses that users choose: webhooks, media URLs, the Cloud API's base URL.

Unless private addresses are allowed (`WEBHOOK_ALLOW_PRIVATE`), every connection made
through `OutboundHTTP(allow_private).session()` goes to a public address, and only to
the address that was checked. A host is resolved once per connection, by the session's
own resolver, which checks every address of the answer and hands exactly those to the
connector: a name that answers a public address to a check and 127.0.0.1 to the connect
(DNS rebinding) cannot slip through, because the answer that is checked is the answer
that is connected to. A socket factory checks the address once more as the socket is
made, which also covers literal IP hosts (aiohttp does not resolve those). Retries and
redirects make new connections through the same connector, so they are checked too.

    http = OutboundHTTP(allow_private=settings.webhook_allow_private)
    async with http.session(timeout=...) as session:   # an aiohttp.ClientSession
        try:
            async with session.post(url, ...) as response: ...
        except aiohttp.ClientError as error:
            if refused(error): ...   # the address is not allowed (retrying will not help)

`await http.check(url)` answers early, when a URL is stored, whether its host is allowed
now; delivery does not rely on it. A refusal names the host, never what it resolved to.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class AddressNotAllowed(OSError):
    """A URL's host is, or resolves to, an address outbound requests may not reach."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not an allowed address (only public addresses can be reached)")


def allowed(address: str) -> bool:
    """Whether an IP address is public unicast, including any IPv4 address it embeds
    (IPv4-mapped and -compatible, NAT64, 6to4, Teredo: each can lead to 127.0.0.1)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = int(ip) & 0xFFFFFFFF
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip in _IPV4_COMPATIBLE or any(ip in net for net in _NAT64):
            candidates.append(ipaddress.IPv4Address(embedded))
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo is not None:
            candidates.extend(ip.teredo)
    return all(c.is_global and not c.is_multicast for c in candidates)


class PolicyResolver(AbstractResolver):
    """Resolves with `inner` and answers only if every address is allowed; the connector
    connects to exactly what this answers, so the checked answer is the one used."""

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            answer = await self.inner.resolve(host, port, family)
        except OSError:
            # Unresolvable and not allowed read the same: no oracle for internal names.
            raise AddressNotAllowed(host) from None
        if not answer or not all(allowed(result["host"]) for result in answer):
            raise AddressNotAllowed(host)
        return answer

    async def close(self) -> None:
        await self.inner.close()


def _guarded_socket(addr_info: Any) -> socket.socket:
    """The last gate: a socket is made only for an allowed address."""
    family, kind, proto, _, address = addr_info
    if not allowed(address[0]):
        raise AddressNotAllowed(address[0])
    return socket.socket(family=family, type=kind, proto=proto)


def refused(error: BaseException) -> AddressNotAllowed | None:
    """The address policy's refusal behind a failed request, if that is what failed it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AddressNotAllowed):
            return seen
        seen = seen.os_error if isinstance(seen, aiohttp.ClientConnectorError) else seen.__cause__
    return None


class OutboundHTTP:
    """Sessions whose connections reach only addresses the policy allows.

    `resolver` makes the resolver a session starts from (aiohttp's threaded
    getaddrinfo by default); tests hand in one that answers what they need."""

    def __init__(self, allow_private: bool, resolver: Any = None) -> None:
        self.allow_private = allow_private
        self._resolver = resolver or aiohttp.ThreadedResolver

    def connector(self, **options: Any) -> aiohttp.TCPConnector:
        """A connector (in a running event loop); `options` go to aiohttp's TCPConnector."""
        resolver = self._resolver()
        if self.allow_private:
            return aiohttp.TCPConnector(resolver=resolver, **options)
        return aiohttp.TCPConnector(
            resolver=PolicyResolver(resolver), socket_factory=_guarded_socket, **options
        )

    def session(self, connector: dict[str, Any] | None = None, **options: Any) -> Any:
        """An aiohttp.ClientSession on a guarded connector (in a running event loop).
        Proxy settings from the environment are never used (trust_env stays off)."""
        return aiohttp.ClientSession(
            connector=self.connector(**(connector or {})), trust_env=False, **options
        )

    async def check(self, url: str) -> None:
        """Raise AddressNotAllowed unless the URL's host is allowed now."""
        if self.allow_private:
            return
        host = urlsplit(url).hostname or ""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not allowed(host):
                raise AddressNotAllowed(host)
            return
        resolver = PolicyResolver(self._resolver())
        try:
            await resolver.resolve(host, 0, socket.AF_UNSPEC)
        finally:
            await resolver.close()
