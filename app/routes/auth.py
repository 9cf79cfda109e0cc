"""Sign in, who am I, change my password, rotate my API key."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import ApiKey, Me, PasswordChanged, SignedIn, SignedInUser, answer
from app.auth import api_key_hash, hash_password, new_api_key, unauthorized, verify_password
from app.context import Context
from app.errors import ApiError
from app.openapi import doc
from app.schemas import ChangePassword, Login, RotateApiKey, decode, parse, read_body
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
    return answer(
        request,
        SignedIn(
            token=ctx.auth.issue_token(str(user.id), user.role, user.token_generation),
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
    row = ctx.user_row(principal.user_id)
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
    # Every token issued before this change is refused from now on; the caller gets a new one.
    return answer(
        request,
        PasswordChanged(
            success=True,
            message="Password changed; other sessions are signed out",
            token=ctx.auth.issue_token(str(user.id), user.role, user.token_generation),
        ),
    )


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
    Route("/api/auth/me", me, methods=["GET"]),
    Route("/api/auth/password", change_password, methods=["POST"]),
    Route("/api/auth/api-key", rotate_api_key, methods=["POST"]),
]
