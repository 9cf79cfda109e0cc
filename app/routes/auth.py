"""Sign in, who am I, change my password, rotate my API key."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import ApiKey, Done, Me, SignedIn, SignedInUser, answer
from app.auth import api_key_hash, hash_password, new_api_key, unauthorized, verify_password
from app.context import Context
from app.errors import ApiError
from app.openapi import doc
from app.schemas import ChangePassword, Login, parse
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
    body = await parse(request, Login)
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
    return answer(
        request,
        SignedIn(
            token=ctx.auth.issue_token(str(user.id), user.role),
            user=SignedInUser(
                id=str(user.id),
                email=user.email,
                firstName=user.first_name,
                lastName=user.last_name,
                role=user.role,
                apiKey=ctx.auth.unseal(user.api_key_sealed),
            ),
        ),
    )


@doc("The signed-in user", "auth", answer=Me)
async def me(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    row = ctx.queries.user(principal.user_id)
    return answer(
        request,
        Me(
            id=row["id"],
            email=row["email"],
            firstName=row["first_name"],
            lastName=row["last_name"],
            role=row["role"],
        ),
    )


@doc("Change my password", "auth", answer=Done, body=ChangePassword)
async def change_password(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    body = await parse(request, ChangePassword)
    user = await asyncio.to_thread(ctx.get_user, principal.user_id)
    if not await asyncio.to_thread(verify_password, user.password_hash, body.currentPassword):
        raise ApiError(400, "wrong_password", "The current password is wrong")
    new_hash = await asyncio.to_thread(hash_password, body.newPassword)
    user.change_password(new_hash)
    await ctx.save(user)
    return answer(request, Done(success=True, message="Password changed"))


@doc("Rotate my API key (the old one stops working)", "auth", answer=ApiKey)
async def rotate_api_key(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.principal(request)
    key = new_api_key()

    def rotate(user: User) -> None:
        user.check_active()
        user.rotate_api_key(api_key_hash(key), ctx.auth.seal(key))

    await ctx.change_user(principal.user_id, rotate)
    return answer(request, ApiKey(apiKey=key))


_DUMMY_HASH = hash_password("not a real password, only here to spend the same time")

routes = [
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/me", me, methods=["GET"]),
    Route("/api/auth/password", change_password, methods=["POST"]),
    Route("/api/auth/api-key", rotate_api_key, methods=["POST"]),
]
