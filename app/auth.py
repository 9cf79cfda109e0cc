"""Passwords, API keys, JWTs, and who is calling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from Crypto.Cipher import AES
from starlette.requests import Request

from app.errors import ApiError
from app.sessions import COOKIE as SESSION_COOKIE
from app.sessions import Sessions
from projections.queries import ReadModelQueries

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
VERIFIED_TOKENS = 10_000  # kept at most, then forgotten all at once

_hasher = PasswordHasher()  # argon2id, memory-hard


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_key() -> str:
    return "wa_" + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    # API keys are 256 random bits: a fast hash is enough to make a leaked table useless.
    return hashlib.sha256(key.encode()).hexdigest()


def unauthorized(message: str = "Missing or invalid credentials") -> ApiError:
    return ApiError(401, "unauthorized", message)


def load_jwt_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, or one generated once and kept in the data directory."""
    if configured:
        return configured
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secret)
    log.warning(
        "JWT_SECRET is not set: generated one and kept it in %s (set JWT_SECRET in production)",
        path,
    )
    return secret


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    email: str
    role: str
    session: UUID | None = None  # the console session of a caller signed in by cookie

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Authenticator:
    """Issues tokens, seals API keys, and resolves a request's credentials."""

    def __init__(self, secret: str, expiration: int, users: ReadModelQueries) -> None:
        self._secret = secret
        self._expiration = expiration
        self._users = users
        self._seal_key = hashlib.sha256(b"api-key-seal:" + secret.encode()).digest()
        # Tokens whose signature and claims were checked: token -> (subject, expiry).
        # A token is immutable and the secret fixed for the process, so only the
        # expiry needs checking again; the user behind it is still looked up (and
        # must be active) on every request.
        self._verified: dict[str, tuple[str, int]] = {}
        self.sessions: Sessions | None = None  # console sessions (cookies), once started

    def issue_token(self, user_id: str, role: str) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "role": role, "iat": now, "exp": now + self._expiration}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def seal(self, api_key: str) -> str:
        """Encrypt an API key so that login can return it (AES-GCM)."""
        nonce = secrets.token_bytes(12)
        cipher = AES.new(self._seal_key, AES.MODE_GCM, nonce=nonce)
        data, tag = cipher.encrypt_and_digest(api_key.encode())
        return base64.b64encode(nonce + tag + data).decode()

    def unseal(self, sealed: str) -> str | None:
        """The API key, or None when it was sealed under another JWT secret."""
        raw = base64.b64decode(sealed)
        cipher = AES.new(self._seal_key, AES.MODE_GCM, nonce=raw[:12])
        try:
            return cipher.decrypt_and_verify(raw[28:], raw[12:28]).decode()
        except ValueError:
            return None

    def authenticate(self, request: Request) -> Principal:
        """The caller of a request, from a Bearer JWT or an x-api-key, or else from a
        console session cookie (see app/sessions.py); 401 otherwise."""
        api_key, authorization = _credential_headers(request)
        session: UUID | None = None
        if api_key is not None:  # an API key that is sent must be valid, even beside a token
            row = self._users.user_by_api_key_hash(api_key_hash(api_key))
        elif authorization[:7].lower() == "bearer ":
            user_id = self._user_id_from_token(authorization[7:].strip())
            row = self._users.user(user_id)
        elif self.sessions is not None and (cookie := _session_cookie(request)) is not None:
            token = self.sessions.verify(request, cookie)
            row = self._users.user(token.subject)
            if row is not None and token.generation < (row.get("token_generation") or 0):
                raise unauthorized("The password has changed since this sign-in; sign in again")
            session = token.session_id
        else:
            raise unauthorized("Sign in: send Authorization: Bearer <token> or x-api-key")
        if row is None or not row["active"]:
            raise unauthorized()
        return Principal(user_id=row["id"], email=row["email"], role=row["role"], session=session)

    def _user_id_from_token(self, token: str) -> str:
        verified = self._verified.get(token)
        if verified is not None and time.time() < verified[1]:
            return verified[0]
        return self._verify(token)

    def _verify(self, token: str) -> str:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("The token has expired; sign in again") from None
        except jwt.InvalidTokenError:
            raise unauthorized("The token is invalid") from None
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise unauthorized("The token is invalid")
        expiry = claims.get("exp")
        if isinstance(expiry, int):
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = (subject, expiry)
        return subject


def _credential_headers(request: Request) -> tuple[str | None, str]:
    """The first x-api-key (None if absent) and authorization ("" if absent) headers.

    One pass over the raw headers (lower-case names in ASGI) instead of two lookups
    through starlette's Headers, each a scan that raises KeyError for a missing name."""
    api_key: str | None = None
    authorization: str | None = None
    for name, value in request.scope["headers"]:
        if name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    return api_key, authorization or ""


def _session_cookie(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
