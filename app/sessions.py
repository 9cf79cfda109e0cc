"""Console sessions: the sign-in that a browser keeps across its tabs, safely.

The web console signs in with `POST /api/auth/session` and gets a cookie instead of a token:

- `HttpOnly` (no script, and so no injected script, can read it), `SameSite=Strict` (the
  browser sends it only with requests that start on this site), `Path=/api`, `Secure` when
  the request came over https, and a lifetime of `JWT_EXPIRATION`.
- Its value is a token signed with a key of its own (derived from `JWT_SECRET`), so a
  session cookie never passes as a Bearer token, nor a Bearer token as a cookie.
- It names a `Session` aggregate in the event store. Signing out ends that session, so a
  copy of the cookie is refused afterwards on every server that reads the store; the
  cookie names a new session at every sign-in (a cookie planted before the sign-in is
  never adopted: no session fixation).
- A request that changes something (any method but GET, HEAD and OPTIONS) must also carry
  `X-CSRF-Token`, a value derived from the session that only a page of this origin can
  read (from the sign-in answer or `GET /api/auth/session`). SameSite alone would leave
  older browsers and sibling sites; the token closes both.
- The user must still be active, and a password change refuses sessions started before
  it, as it refuses older tokens.

API clients are unaffected: a request with `Authorization` or `x-api-key` is judged by
those alone, and the cookie is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import jwt
from starlette.requests import Request
from starlette.responses import Response

from app.errors import ApiError
from domain.session import Session

COOKIE = "wa_session"
COOKIE_PATH = "/api"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALGORITHM = "HS256"
ENDED_KEPT = 10_000  # ended sessions remembered in memory (they never come back)


@dataclass(frozen=True)
class SessionToken:
    """The claims of a session cookie whose signature was checked."""

    session_id: UUID
    subject: str
    expires: int
    issued: int
    generation: int


class Sessions:
    """Issues and checks session cookies; `load` reads a Session from the event store."""

    def __init__(
        self, secret: str, expiration: int, load: Callable[[UUID], Session | None]
    ) -> None:
        self._key = hashlib.sha256(b"console-session:" + secret.encode()).digest()
        self._csrf_key = hashlib.sha256(b"console-csrf:" + secret.encode()).digest()
        self.expiration = expiration
        self._load = load
        self._ended: set[UUID] = set()

    def start(self, user_id: str, generation: int) -> Session:
        """A new session (to be saved), lasting JWT_EXPIRATION."""
        return Session(
            user_id=user_id,
            expires_at=int(time.time()) + self.expiration,
            generation=generation,
        )

    def cookie_value(self, session: Session) -> str:
        claims = {
            "sid": str(session.id),
            "sub": session.user_id,
            "iat": int(session.created_on.timestamp()),
            "exp": session.expires_at,
            "gen": session.generation,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def csrf_token(self, session_id: UUID | str) -> str:
        return hmac.new(self._csrf_key, str(session_id).encode(), hashlib.sha256).hexdigest()

    def forget(self, session_id: UUID) -> None:
        """This server ended the session: refuse it at once, without asking the store."""
        if len(self._ended) >= ENDED_KEPT:
            self._ended.clear()
        self._ended.add(session_id)

    def verify(self, request: Request, cookie: str) -> SessionToken:
        """The session of a request that carries the cookie; 401 if it is not a live
        session, 403 if the request changes something without the session's CSRF token."""
        token = self._decode(cookie)
        if token.session_id in self._ended:
            raise _signed_out()
        session = self._load(token.session_id)
        if session is None or session.ended:
            if session is not None:
                self.forget(token.session_id)
            raise _signed_out()
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.csrf_token(token.session_id).encode()):
                raise ApiError(
                    403,
                    "csrf_token_invalid",
                    f"This change needs the session's {CSRF_HEADER} header (reload the console)",
                )
        return token

    def _decode(self, cookie: str) -> SessionToken:
        try:
            claims = jwt.decode(
                cookie,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "sid"]},
            )
            token = SessionToken(
                UUID(claims["sid"]),
                claims["sub"],
                claims["exp"],
                claims["iat"],
                claims.get("gen", 0),
            )
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "unauthorized", "The session has expired; sign in again") from None
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
            raise ApiError(401, "unauthorized", "The session is invalid; sign in again") from None
        if not isinstance(token.subject, str) or type(token.generation) is not int:
            raise ApiError(401, "unauthorized", "The session is invalid; sign in again")
        return token


def _signed_out() -> ApiError:
    return ApiError(401, "unauthorized", "This session has ended; sign in again")


def check_sign_in(request: Request) -> None:
    """A console sign-in is JSON, sent by the console's script; 415 otherwise. A form can
    send only form fields or text/plain, but a text/plain field can spell JSON (its name up
    to the `=`): a page of any site could post an attacker's e-mail and password in one and
    sign the browser in as them (login CSRF), so that what the victim pairs or types next
    lands in the attacker's account. A script of another site cannot send JSON here with
    the browser's cookies unless CORS lets it, and the cookie it would get is dropped."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "json_required",
            "The console signs in with a JSON body (Content-Type: application/json)",
        )


def set_cookie(response: Response, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
