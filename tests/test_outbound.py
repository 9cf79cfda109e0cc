"""Outbound HTTP reaches only allowed addresses, and only the address that was checked.

DNS is the one thing simulated here: a scripted resolver stands in for a name server that
changes its answer between a check and a connect (DNS rebinding). It answers exactly as
aiohttp's own ThreadedResolver does (`aiohttp/resolver.py`: a list of ResolveResult dicts
with the numeric host and port), so the real connector, the real webhook poster and the
real media download run unchanged against a real receiver on 127.0.0.1. No answer's
public address is ever connected to: every test ends at a refusal or on loopback.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from actors.outbound import AddressNotAllowed, OutboundHTTP, allowed
from actors.webhooks.poster import WebhookPoster
from app import media
from app.errors import ApiError
from tests.receiver import Receiver
from tests.server import Api, running_server

pytestmark = pytest.mark.drill_cases("security cases")

PUBLIC = "93.184.216.34"  # a public address: answered to checks, never connected to


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next address list of its script (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def port_of(receiver: Receiver) -> int:
    return int(receiver.url.rsplit(":", 1)[1].split("/", 1)[0])


async def post_times(http: OutboundHTTP, url: str, times: int) -> list[tuple[int | None, str]]:
    poster = WebhookPoster(http, timeout=5)
    try:
        results = []
        for _ in range(times):
            attempt = await poster.post(url, b"{}", "message_sent", "d-1", "secret", replay=False)
            results.append((attempt.status, attempt.error))
        return results
    finally:
        await poster.close()


def test_the_receiver_is_reached_when_private_addresses_are_allowed(receiver: Receiver) -> None:
    # The same harness with the policy off: what the refusals below stop does get through.
    resolver = ScriptedResolver(["127.0.0.1"])
    http = OutboundHTTP(allow_private=True, resolver=lambda: resolver)
    url = f"http://hooks.example:{port_of(receiver)}/hook"
    assert asyncio.run(post_times(http, url, 1)) == [(200, "")]
    assert len(receiver.attempts) == 1


def test_a_name_that_rebinds_to_loopback_after_its_check_is_refused_at_every_connect(
    receiver: Receiver,
) -> None:
    # Public when the URL is checked (on create or update), 127.0.0.1 ever after.
    resolver = ScriptedResolver([PUBLIC], ["127.0.0.1"])
    http = OutboundHTTP(allow_private=False, resolver=lambda: resolver)
    url = f"http://rebind.example:{port_of(receiver)}/hook"

    asyncio.run(http.check(url))  # passes: the first answer is public
    # The delivery and two retries each connect anew, and each answer is checked.
    results = asyncio.run(post_times(http, url, 3))

    assert [status for status, _ in results] == [None, None, None]
    assert all("rebind.example is not an allowed address" in error for _, error in results)
    assert resolver.lookups == 4  # one check, then one lookup per connection attempt
    assert receiver.attempts == []


def test_a_send_media_url_that_rebinds_is_refused_and_leaves_no_file(
    receiver: Receiver, tmp_path: Path
) -> None:
    resolver = ScriptedResolver([PUBLIC], ["127.0.0.1"])
    http = OutboundHTTP(allow_private=False, resolver=lambda: resolver)
    url = f"http://media.example:{port_of(receiver)}/cat.png"
    asyncio.run(http.check(url))

    with pytest.raises(ApiError) as refused:
        asyncio.run(media.download(url, None, tmp_path, 1 << 20, 5, http))

    assert (refused.value.status, refused.value.code) == (400, "url_not_allowed")
    assert receiver.attempts == []
    assert list(tmp_path.iterdir()) == []


def test_an_answer_with_any_private_address_is_refused_whole(receiver: Receiver) -> None:
    # Loopback first: a connector that tried addresses in turn would reach the receiver.
    resolver = ScriptedResolver(["127.0.0.1", PUBLIC])
    http = OutboundHTTP(allow_private=False, resolver=lambda: resolver)
    url = f"http://mixed.example:{port_of(receiver)}/hook"

    with pytest.raises(AddressNotAllowed):
        asyncio.run(http.check(url))
    [(status, error)] = asyncio.run(post_times(http, url, 1))

    assert status is None and "not an allowed address" in error
    assert receiver.attempts == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
def test_private_hosts_are_refused_at_the_connect_whatever_the_check_said(
    receiver: Receiver, host: str
) -> None:
    # aiohttp does not resolve literal addresses (the resolver never sees them): the
    # socket is refused as it is made. `localhost` goes to the system's resolver, which
    # answers it from /etc/hosts (no DNS query leaves the machine).
    http = OutboundHTTP(allow_private=False)
    [(status, error)] = asyncio.run(post_times(http, f"http://{host}:{port_of(receiver)}/", 1))
    assert status is None and "is not an allowed address" in error
    assert receiver.attempts == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible (deprecated, still routed by some stacks)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
        "ff02::1",
        "not an address",
    ],
)
def test_the_policy_refuses_private_addresses_also_inside_ipv6(address: str) -> None:
    assert not allowed(address)


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_the_policy_allows_public_unicast_addresses(address: str) -> None:
    assert allowed(address)


def test_refusals_name_the_host_and_never_what_it_resolves_to(tmp_path: Path) -> None:
    # A real server with private addresses off; `localhost` resolves through /etc/hosts.
    with running_server(tmp_path, WEBHOOK_ALLOW_PRIVATE="false") as server:
        api = Api.login(server)
        created = api.http.post(
            "/api/instances", json={"name": "x", "webhookUrl": "http://localhost:9/hook"}
        )
        instance = api.create_instance("Sender")["id"]
        api.pair(instance, "15550008201")
        fetched = api.http.post(
            f"/api/whatsapp/{instance}/send-media",
            json={"phone": "15550008202", "url": "http://localhost:9/a.png"},
        )
    for answer, code in ((created, "webhook_url_not_allowed"), (fetched, "url_not_allowed")):
        assert answer.status_code == 400 and answer.json()["code"] == code
        message = answer.json()["error"]
        assert "localhost is not an allowed address" in message
        assert "127.0.0.1" not in message and "::1" not in message
