"""Secrets sealed (AES-GCM) before they are stored, and opened where they are used.

The secret settings of an instance (the Cloud API's access token, app secret and verify
token, the webhook secret) are sealed by the API before its events are stored, so the
event store, its backups and the read models never hold them in the clear; the engine
and webhook delivery open them when they start. The key derives from JWT_SECRET, which
lives in the environment (or, in development, in a file of its own), not in the store.

A sealed value reads `sealed:v1:<base64 of nonce, tag, ciphertext>`. A value without that
prefix was stored before sealing existed (or is empty) and is used as it is, so old
event stores keep working.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterable
from typing import Any

from Crypto.Cipher import AES

log = logging.getLogger(__name__)

PREFIX = "sealed:v1:"
ENGINE_SECRETS = ("accessToken", "appSecret", "verifyToken")
WEBHOOK_SECRETS = ("secret",)


class Unreadable(Exception):
    """A sealed value that this key cannot open (JWT_SECRET changed since it was sealed)."""


def key_for(secret: str, purpose: str) -> bytes:
    """A 256-bit key for one purpose, derived from the server's secret."""
    return hashlib.sha256(f"{purpose}:".encode() + secret.encode()).digest()


def encrypt(key: bytes, text: str) -> str:
    """AES-GCM: base64 of nonce (12 bytes), tag (16) and ciphertext."""
    nonce = secrets.token_bytes(12)
    data, tag = AES.new(key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(text.encode())
    return base64.b64encode(nonce + tag + data).decode()


def decrypt(key: bytes, sealed: str) -> str | None:
    """The text, or None when it was sealed under another key (or is damaged)."""
    try:
        raw = base64.b64decode(sealed, validate=True)
        cipher = AES.new(key, AES.MODE_GCM, nonce=raw[:12])
        return cipher.decrypt_and_verify(raw[28:], raw[12:28]).decode()
    except ValueError:
        return None


class Sealer:
    """Seals and opens the secret settings of instances."""

    def __init__(self, secret: str) -> None:
        self._key = key_for(secret, "settings-seal")

    def seal(self, value: str | None) -> str | None:
        if not value or value.startswith(PREFIX):
            return value
        return PREFIX + encrypt(self._key, value)

    def open(self, value: str | None) -> str | None:
        if not value or not value.startswith(PREFIX):
            return value  # stored before sealing existed, or nothing
        opened = decrypt(self._key, value[len(PREFIX) :])
        if opened is None:
            raise Unreadable(
                "a stored secret cannot be read with this JWT_SECRET (was it changed?); "
                "set the instance's secrets again"
            )
        return opened

    def seal_fields(self, settings: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
        return {
            k: self.seal(v) if k in names and isinstance(v, str) else v for k, v in settings.items()
        }

    def open_fields(self, settings: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
        return {
            k: self.open(v) if k in names and isinstance(v, str) else v for k, v in settings.items()
        }


def open_webhook(
    sealer: Sealer, instance_id: str, versioned: tuple[int, dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    """Webhook settings as delivery needs them: the secret opened. One that cannot be
    opened turns delivery off (an unsigned post would pass for a signed one), loudly."""
    version, settings = versioned
    try:
        return version, sealer.open_fields(settings, WEBHOOK_SECRETS)
    except Unreadable as error:
        log.error("webhooks of instance %s are off: %s", instance_id, error)
        return version, {**settings, "enabled": False, "secret": None}
