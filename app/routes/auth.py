"""Sign in, who am I, change my password, rotate my API key; and the web console's cookie
session (see app/sessions.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import (
    ApiKey,
    ConsoleSession,
    Done,
    Me,
    PasswordChanged,
    SignedIn,
    SignedInUser,
    answer,
)
from app.auth import api_key_hash, hash_password, new_api_key, unauthorized, verify_password
from app.context import Context
from app.errors import ApiError
from app.openapi import doc
from app.schemas import ChangePassword, Login, RotateApiKey, decode, parse, read_body
from app.sessions import Sessions, check_sign_in, clear_cookie, set_cookie
from domain.session import Session
from domain.timestamps import iso_ms
from domain.user import User, user_id_for


@doc(
    "Sign in with e-mail and password",
    "auth",
    answer=SignedIn,
    body=Login,
    auth=False,
    errors=(401, 429),
)
async def login(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    user = await _signed_in(ctx, request, await parse(request, Login))
    return answer(
        request,
        SignedIn(
            token=ctx.auth.issue_token(str(user.id), user.role, user.token_generation),
            user=SignedInUser(**_profile(user), apiKey=ctx.auth.unseal(user.api_key_sealed)),
        ),
    )


async def _signed_in(ctx: Context, request: Request, body: Login) -> User:
    """The user these credentials belong to (throttled); 401 for wrong ones."""
    account = body.email.strip().lower()
    address = request.client.host if request.client else "unknown"
    # Counted before the password is checked, so concurrent guesses all see each other.
    attempt = ctx.login_throttle.begin(account, address)
    try:
        user = await asyncio.to_thread(ctx.get_user, user_id_for(body.email))
    except ApiError:
        user = None
    if user is None or not user.active:
        await asyncio.to_thread(verify_password, _DUMMY_HASH, body.password)  # same timing
        ctx.login_throttle.failed(attempt)
        raise unauthorized("Wrong e-mail or password")
    if not await asyncio.to_thread(verify_password, user.password_hash, body.password):
        ctx.login_throttle.failed(attempt)
        raise unauthorized("Wrong e-mail or password")
    ctx.login_throttle.succeeded(attempt)
    return user


def _profile(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "role": user.role,
    }


def _me(row: dict[str, Any]) -> Me:
    return Me(
        id=row["id"],
        email=row["email"],
        firstName=row["first_name"],
        lastName=row["last_name"],
        role=row["role"],
    )


@doc(
    "Sign the web console in: an HttpOnly session cookie, and the CSRF token to send with it",
    "auth",
    answer=ConsoleSession,
    body=Login,
    auth=False,
    errors=(401, 415, 429),
)
async def start_session(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    check_sign_in(request)
    user = await _signed_in(ctx, request, await parse(request, Login))
    session = await _new_session(ctx, user)
    response = answer(request, _session_answer(ctx, session.id, Me(**_profile(user)), session))
    _set(ctx, request, response, session)
    return response


async def _new_session(ctx: Context, user: User) -> Session:
    session = _sessions(ctx).start(str(user.id), user.token_generation)
    await ctx.save(session)
    return session


def _set(ctx: Context, request: Request, response: Response, session: Session) -> None:
    sessions = _sessions(ctx)
    set_cookie(response, request, sessions.cookie_value(session), sessions.expiration)


def _session_answer(ctx: Context, session_id: UUID, user: Me, session: Session) -> ConsoleSession:
    return ConsoleSession(
        user=user,
        csrfToken=_sessions(ctx).csrf_token(session_id),
        expiresAt=iso_ms(datetime.fromtimestamp(session.expires_at, UTC)),
    )


@doc(
    "The console session of this browser (from its cookie), with its CSRF token",
    "auth",
    answer=ConsoleSession,
)
async def current_session(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    if principal.session is None:
        raise unauthorized("No console session: sign in with POST /api/auth/session")
    session: Session = await asyncio.to_thread(ctx.store.repository.get, principal.session)
    user = _me(ctx.user_row(principal.user_id))
    return answer(request, _session_answer(ctx, principal.session, user, session))


@doc(
    "Sign the web console out: the session ends on every server, the cookie is cleared",
    "auth",
    answer=Done,
)
async def end_session(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    if principal.session is None:
        raise ApiError(400, "no_session", "Only a console session can be signed out")
    await _end(ctx, principal.session, "signed_out")
    response = answer(request, Done(success=True, message="Signed out"))
    clear_cookie(response, request)
    return response


async def _end(ctx: Context, session_id: UUID, reason: str) -> None:
    session: Session = await asyncio.to_thread(ctx.store.repository.get, session_id)
    if not session.ended:
        session.end(reason)
        await ctx.save(session)
    _sessions(ctx).forget(session_id)


def _sessions(ctx: Context) -> Sessions:
    assert ctx.auth.sessions is not None
    return ctx.auth.sessions


@doc("The signed-in user", "auth", answer=Me)
async def me(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    return answer(request, _me(ctx.user_row(principal.user_id)))


@doc(
    "Change my password (signs out every other session)",
    "auth",
    answer=PasswordChanged,
    body=ChangePassword,
)
async def change_password(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    body = await parse(request, ChangePassword)
    user = await asyncio.to_thread(ctx.get_user, principal.user_id)
    if not await asyncio.to_thread(verify_password, user.password_hash, body.currentPassword):
        raise ApiError(400, "wrong_password", "The current password is wrong")
    new_hash = await asyncio.to_thread(hash_password, body.newPassword)
    user.check_active()
    user.change_password(new_hash)
    await ctx.save(user)
    # Every token and console session from before this change is refused from now on;
    # the caller gets a new token, and a console that changed it goes on under a new session.
    token = ctx.auth.issue_token(str(user.id), user.role, user.token_generation)
    message = "Password changed; other sessions are signed out"
    if principal.session is None:
        return answer(request, PasswordChanged(success=True, message=message, token=token))
    await _end(ctx, principal.session, "password_changed")
    session = await _new_session(ctx, user)
    response = answer(
        request,
        PasswordChanged(
            success=True,
            message=message,
            token=token,
            csrfToken=_sessions(ctx).csrf_token(session.id),
        ),
    )
    _set(ctx, request, response, session)
    return response


@doc(
    "Rotate my API key (the old one stops working); needs currentPassword or a recent sign-in",
    "auth",
    answer=ApiKey,
    body=RotateApiKey,
    errors=(403,),
)
async def rotate_api_key(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    raw = await read_body(request)
    body = decode(raw, RotateApiKey) if raw.strip() else RotateApiKey()
    if body.currentPassword is not None:
        user = await asyncio.to_thread(ctx.get_user, principal.user_id)
        if not await asyncio.to_thread(verify_password, user.password_hash, body.currentPassword):
            raise ApiError(400, "wrong_password", "The current password is wrong")
    elif not principal.signed_in_within(RECENT_SIGN_IN):
        raise ApiError(
            403,
            "current_password_required",
            "Rotating the API key needs your currentPassword, or a token from a sign-in "
            f"in the last {RECENT_SIGN_IN // 60} minutes",
        )
    key = new_api_key()

    def rotate(user: User) -> None:
        user.check_active()
        user.rotate_api_key(api_key_hash(key), ctx.auth.seal(key))

    await ctx.change_user(principal.user_id, rotate)
    return answer(request, ApiKey(apiKey=key))


# A token this young stands in for the password when rotating the API key.
RECENT_SIGN_IN = 5 * 60

_DUMMY_HASH = hash_password("not a real password, only here to spend the same time")

routes = [
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/session", start_session, methods=["POST"]),
    Route("/api/auth/session", current_session, methods=["GET"]),
    Route("/api/auth/session", end_session, methods=["DELETE"]),
    Route("/api/auth/me", me, methods=["GET"]),
    Route("/api/auth/password", change_password, methods=["POST"]),
    Route("/api/auth/api-key", rotate_api_key, methods=["POST"]),
]
