"""Sign in, who am I, change my password, rotate my API key."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import views
from app.auth import api_key_hash, hash_password, new_api_key, unauthorized, verify_password
from app.context import Context
from app.errors import ApiError
from app.openapi import doc
from app.schemas import ChangePassword, Login, parse
from app.sessions import Sessions, clear_cookie, set_cookie
from domain.session import Session
from domain.user import User, user_id_for
from projections.base import iso


@doc("Sign in with e-mail and password", "auth", body=Login, auth=False, errors=(401, 429))
async def login(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    user = await _signed_in(ctx, request, await parse(request, Login))
    return JSONResponse(
        {
            "token": ctx.auth.issue_token(str(user.id), user.role),
            "user": {**_profile(user), "apiKey": ctx.auth.unseal(user.api_key_sealed)},
        }
    )


async def _signed_in(ctx: Context, request: Request, body: Login) -> User:
    """The user these credentials belong to (throttled); 401 for wrong ones."""
    account = body.email.strip().lower()
    address = request.client.host if request.client else "unknown"
    ctx.login_throttle.check(account, address)
    try:
        user = await asyncio.to_thread(ctx.get_user, user_id_for(body.email))
    except ApiError:
        user = None
    if user is None or not user.active:
        await asyncio.to_thread(verify_password, _DUMMY_HASH, body.password)  # same timing
        ctx.login_throttle.failed(account, address)
        raise unauthorized("Wrong e-mail or password")
    if not await asyncio.to_thread(verify_password, user.password_hash, body.password):
        ctx.login_throttle.failed(account, address)
        raise unauthorized("Wrong e-mail or password")
    ctx.login_throttle.succeeded(account)
    return user


def _profile(user: User) -> dict[str, str]:
    return {
        "id": str(user.id),
        "email": user.email,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "role": user.role,
    }


@doc(
    "Sign the web console in: an HttpOnly session cookie, and the CSRF token to send with it",
    "auth",
    body=Login,
    auth=False,
    errors=(401, 429),
)
async def start_session(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    user = await _signed_in(ctx, request, await parse(request, Login))
    return await _new_session(ctx, request, user)


async def _new_session(ctx: Context, request: Request, user: User) -> JSONResponse:
    sessions = _sessions(ctx)
    session = sessions.start(str(user.id), getattr(user, "token_generation", 0))
    await ctx.save(session)
    response = JSONResponse(_session_answer(sessions, session.id, _profile(user), session))
    set_cookie(response, request, sessions.cookie_value(session), sessions.expiration)
    return response


def _session_answer(
    sessions: Sessions, session_id: UUID, user: dict[str, str], session: Session
) -> dict[str, object]:
    return {
        "user": user,
        "csrfToken": sessions.csrf_token(session_id),
        "expiresAt": iso(datetime.fromtimestamp(session.expires_at, UTC)),
    }


@doc("The console session of this browser (from its cookie), with its CSRF token", "auth")
async def current_session(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    if principal.session is None:
        raise unauthorized("No console session: sign in with POST /api/auth/session")
    session = await asyncio.to_thread(ctx.store.repository.get, principal.session)
    row = ctx.queries.user(principal.user_id)
    return JSONResponse(
        _session_answer(_sessions(ctx), principal.session, views.profile(row), session)
    )


@doc("Sign the web console out: the session ends on every server, the cookie is cleared", "auth")
async def end_session(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    if principal.session is None:
        raise ApiError(400, "no_session", "Only a console session can be signed out")
    await _end(ctx, principal.session, "signed_out")
    response = JSONResponse({"success": True, "message": "Signed out"})
    clear_cookie(response, request)
    return response


async def _end(ctx: Context, session_id: UUID, reason: str) -> None:
    session = await asyncio.to_thread(ctx.store.repository.get, session_id)
    if not session.ended:
        session.end(reason)
        await ctx.save(session)
    _sessions(ctx).forget(session_id)


def _sessions(ctx: Context) -> Sessions:
    assert ctx.auth.sessions is not None
    return ctx.auth.sessions


@doc("The signed-in user", "auth")
async def me(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    return JSONResponse(views.profile(ctx.queries.user(principal.user_id)))


@doc("Change my password", "auth", body=ChangePassword)
async def change_password(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    body = await parse(request, ChangePassword)
    user = await asyncio.to_thread(ctx.get_user, principal.user_id)
    if not await asyncio.to_thread(verify_password, user.password_hash, body.currentPassword):
        raise ApiError(400, "wrong_password", "The current password is wrong")
    new_hash = await asyncio.to_thread(hash_password, body.newPassword)
    user.change_password(new_hash)
    await ctx.save(user)
    if principal.session is not None:
        # The console that changed it stays signed in, under a new session (and cookie).
        await _end(ctx, principal.session, "password_changed")
        renewed = await _new_session(ctx, request, user)
        return _with(renewed, {"success": True, "message": "Password changed"})
    return JSONResponse({"success": True, "message": "Password changed"})


def _with(response: JSONResponse, extra: dict[str, object]) -> JSONResponse:
    """The same response (its cookies too) with more fields in its JSON body."""
    body = {**json.loads(response.body), **extra}
    renewed = JSONResponse(body, status_code=response.status_code)
    for name, value in response.raw_headers:
        if name == b"set-cookie":
            renewed.raw_headers.append((name, value))
    return renewed


@doc("Rotate my API key (the old one stops working)", "auth")
async def rotate_api_key(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    key = new_api_key()

    def rotate(user: User) -> None:
        user.check_active()
        user.rotate_api_key(api_key_hash(key), ctx.auth.seal(key))

    await ctx.change_user(principal.user_id, rotate)
    return JSONResponse({"apiKey": key})


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
