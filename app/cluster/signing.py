"""What nodes say to each other, signed with CLUSTER_SECRET (HMAC-SHA256).

The secret itself never leaves a node: a forwarded request carries a signature over what
it is (method, path and query), who forwarded it, when, and the address of the client it
came from; a node's record in MongoDB carries a signature over its id and URL, so that
nothing but a node (say, someone who can write to the database but has not the secret)
can make the others forward requests, and their credentials, to an address of its
choice. Each purpose has a key of its own, derived from the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

#: Headers of a forwarded request (lower case, as ASGI gives them).
FROM = b"x-cluster-from"
TIME = b"x-cluster-time"
CLIENT = b"x-cluster-client"
SIGNATURE = b"x-cluster-signature"
HEADERS = (FROM, TIME, CLIENT, SIGNATURE)
PREFIX = b"x-cluster-"

#: How old a forwarded request's signature may be (nodes' clocks agree within a second:
#: `whatsapp-api doctor` checks it); past it, a captured request cannot be replayed.
MAX_AGE = 30


class BadSignature(Exception):
    """A request claims to come from a node and cannot prove it."""


@dataclass(frozen=True)
class Forwarded:
    """A verified forwarded request: the node it came through and its client's address."""

    node_id: str
    client: str


class Signer:
    """Signs and checks what nodes say to each other."""

    def __init__(self, secret: str) -> None:
        self._forward_key = _derive(secret, "forward")
        self._node_key = _derive(secret, "node")

    # -- forwarded requests --------------------------------------------------------

    def forward_headers(
        self, node_id: str, method: str, target: bytes, client: str, now: float | None = None
    ) -> list[tuple[bytes, bytes]]:
        """The headers that mark a request forwarded by `node_id` (target: path?query)."""
        stamp = str(int(time.time() if now is None else now))
        signature = self._sign_forward(node_id, stamp, client, method, target)
        return [
            (FROM, node_id.encode()),
            (TIME, stamp.encode()),
            (CLIENT, client.encode()),
            (SIGNATURE, signature.encode()),
        ]

    def check_forwarded(
        self, headers: dict[bytes, bytes], method: str, target: bytes, now: float | None = None
    ) -> Forwarded:
        """The forwarding node and client of a request with cluster headers; BadSignature if
        any is missing, the signature does not match or it is older than MAX_AGE."""
        try:
            node_id, stamp, client, signature = (headers[h].decode("ascii") for h in HEADERS)
        except (KeyError, UnicodeDecodeError):
            raise BadSignature("incomplete cluster headers") from None
        expected = self._sign_forward(node_id, stamp, client, method, target)
        if not hmac.compare_digest(expected, signature):
            raise BadSignature("the cluster signature does not match")
        if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > MAX_AGE:
            raise BadSignature("the cluster signature is too old")
        return Forwarded(node_id, client)

    def _sign_forward(
        self, node_id: str, stamp: str, client: str, method: str, target: bytes
    ) -> str:
        message = "\n".join(("forward", node_id, stamp, client, method)).encode()
        return hmac.new(self._forward_key, message + b"\n" + target, hashlib.sha256).hexdigest()

    # -- node records ---------------------------------------------------------------

    def sign_node(self, node_id: str, url: str) -> str:
        """The signature a node stores with its record (its id and URL)."""
        message = "\n".join(("node", node_id, url)).encode()
        return hmac.new(self._node_key, message, hashlib.sha256).hexdigest()

    def node_is_genuine(self, node_id: str, url: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign_node(node_id, url), signature or "")


def _derive(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), f"whatsapp-api cluster {purpose}".encode(), "sha256").digest()
