"""Signing and POSTing one webhook body: the HTTP side of delivery."""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple

import aiohttp

from actors.outbound import OutboundHTTP, refused

RESPONSE_LIMIT = 64 * 1024  # never read more of an answer than this


def sign(secret: str, body: bytes) -> str:
    """`X-Webhook-Signature`: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Attempt(NamedTuple):
    """What one POST of a webhook came to."""

    status: int | None  # the receiver's HTTP status, None if there was no answer
    error: str = ""  # why it failed, for a person
    final: bool = False  # retrying cannot help (the address is not allowed)


class WebhookPoster:
    """Signs and POSTs one webhook body; never raises for the receiver's faults.
    Connections go only where the address policy allows (actors.outbound)."""

    def __init__(self, outbound: OutboundHTTP, timeout: float) -> None:
        self.timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self.session = outbound.session(connector={"limit": 256, "limit_per_host": 32})

    async def post(
        self, url: str, body: bytes, event: str, delivery: str, secret: str | None, replay: bool
    ) -> Attempt:
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Event": event,
            "X-Webhook-Delivery": delivery,
            "User-Agent": "whatsapp-api-webhooks",
        }
        if secret:
            headers["X-Webhook-Signature"] = sign(secret, body)
        if replay:
            headers["X-Webhook-Replay"] = "true"
        try:
            async with self.session.post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self._client_timeout
            ) as response:
                await response.content.read(RESPONSE_LIMIT)
                status = response.status
                return Attempt(status, "" if status < 300 else f"HTTP {status}")
        except TimeoutError:
            return Attempt(None, f"timed out after {self.timeout:g} s")
        except aiohttp.ClientError as error:
            refusal = refused(error)
            if refusal is not None:
                return Attempt(None, str(refusal), final=True)
            return Attempt(None, f"{type(error).__name__}: {error}")

    async def close(self) -> None:
        await self.session.close()
