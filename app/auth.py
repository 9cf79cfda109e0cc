"""Passwords, API keys, JWTs, and who is calling."""

from __future__ import annotations

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
from starlette.requests import Request

from app.errors import ApiError
from app.sealing import decrypt, encrypt, key_for
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
    expires: int | None = None  # when the token expires (epoch seconds); None for an API key
    issued: int | None = None  # when the token was issued; None for an API key
    session: UUID | None = None  # the console session of a caller signed in by cookie

    def signed_in_within(self, seconds: float) -> bool:
        """Whether the caller holds a token issued in the last `seconds` (a recent sign-in)."""
        return self.issued is not None and time.time() - self.issued <= seconds

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class Authenticator:
    """Issues tokens, seals API keys, and resolves a request's credentials."""

    def __init__(self, secret: str, expiration: int, users: ReadModelQueries) -> None:
        self._secret = secret
        self._expiration = expiration
        self._users = users
        self._seal_key = key_for(secret, "api-key-seal")
        # Tokens whose signature and claims were checked. A token is immutable and the
        # secret fixed for the process, so only the expiry needs checking again; the user
        # behind it is still looked up on every request (active, and the password not
        # changed since the token was issued).
        self._verified: dict[str, _Token] = {}
        self.sessions: Sessions | None = None  # console sessions (cookies), once started

    def issue_token(self, user_id: str, role: str, generation: int) -> str:
        """A token for a user whose password has changed `generation` times so far."""
        now = int(time.time())
        claims = {
            "sub": user_id,
            "role": role,
            "iat": now,
            "exp": now + self._expiration,
            "gen": generation,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def seal(self, api_key: str) -> str:
        """Encrypt an API key so that login can return it (AES-GCM)."""
        return encrypt(self._seal_key, api_key)

    def unseal(self, sealed: str) -> str | None:
        """The API key, or None when it was sealed under another JWT secret."""
        return decrypt(self._seal_key, sealed)

    def authenticate(self, request: Request) -> Principal:
        """The caller of a request, from a Bearer JWT or an x-api-key, or else from a
        console session cookie (see app/sessions.py); 401 otherwise."""
        api_key, authorization = _credential_headers(request)
        token: _Token | None = None
        session: UUID | None = None
        if api_key is not None:  # an API key that is sent must be valid, even beside a token
            row = self._users.user_by_api_key_hash(api_key_hash(api_key))
        elif authorization[:7].lower() == "bearer ":
            token = self._token(authorization[7:].strip())
            row = self._users.user(token.subject)
        elif self.sessions is not None and (cookie := _session_cookie(request)) is not None:
            cookie_token = self.sessions.verify(request, cookie)
            row = self._users.user(cookie_token.subject)
            if row is not None and cookie_token.generation < (row.get("token_generation") or 0):
                raise unauthorized("The password has changed since this sign-in; sign in again")
            session = cookie_token.session_id
        else:
            raise unauthorized("Sign in: send Authorization: Bearer <token> or x-api-key")
        if row is None or not row["active"]:
            raise unauthorized()
        if token is None:
            return Principal(
                user_id=row["id"], email=row["email"], role=row["role"], session=session
            )
        if token.generation < (row.get("token_generation") or 0):
            raise unauthorized(
                "The password has changed since this token was issued; sign in again"
            )
        return Principal(
            user_id=row["id"],
            email=row["email"],
            role=row["role"],
            expires=token.expires,
            issued=token.issued,
        )

    def _token(self, token: str) -> _Token:
        """The claims of a valid token; 401 otherwise."""
        verified = self._verified.get(token)
        if verified is not None and time.time() < verified.expires:
            return verified
        return self._verify(token)

    def _verify(self, token: str) -> _Token:
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
        subject, expires, issued = claims["sub"], claims["exp"], claims["iat"]
        generation = claims.get("gen", 0)  # tokens from before generations were counted: 0
        if not (
            isinstance(subject, str) and all(type(n) is int for n in (expires, issued, generation))
        ):
            raise unauthorized("The token is invalid")
        verified = _Token(subject, expires, issued, generation)
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = verified
        return verified


@dataclass(frozen=True)
class _Token:
    """The claims of a token whose signature was checked."""

    subject: str
    expires: int
    issued: int
    generation: int


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
