"""Users, for administrators."""

from __future__ import annotations

import asyncio

from eventsourcing.persistence import IntegrityError
from msgspec import UNSET, structs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import owners, views
from app.answers import CreatedUser, Done, UserList, UserView, answer
from app.auth import api_key_hash, hash_password, new_api_key
from app.context import Context, parse_id
from app.errors import ApiError, not_found
from app.openapi import doc
from app.schemas import UserCreate, UserUpdate, parse
from domain.user import User


@doc("List users", "users", answer=UserList, admin=True)
async def list_users(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    rows = ctx.queries.users()
    return answer(request, UserList(users=[views.user(row) for row in rows]))


@doc("Create a user", "users", answer=CreatedUser, body=UserCreate, admin=True, ok=201)
async def create_user(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    body = await parse(request, UserCreate)
    try:
        user, api_key = await ctx.register_user(
            body.email, body.password, body.firstName, body.lastName, body.role
        )
    except IntegrityError:
        raise ApiError(
            409, "email_taken", f"A user with e-mail {body.email} exists already"
        ) from None
    view = views.user(ctx.user_row(str(user.id)))
    return answer(request, CreatedUser(**structs.asdict(view), apiKey=api_key))


@doc("A user", "users", answer=UserView, admin=True)
async def get_user(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    ctx.admin(request)
    return answer(request, views.user(_row(ctx, request)))


@doc(
    'Change a user ({"active": false} deactivates, {"active": true} brings one back)',
    "users",
    answer=UserView,
    body=UserUpdate,
    admin=True,
)
async def update_user(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.admin(request)
    user_id = str(parse_id(request.path_params["userId"], "user"))
    row = ctx.queries.user(user_id)
    if row is None:
        raise not_found("user")
    body = await parse(request, UserUpdate)
    # A deactivated user is gone from every user route, except to be brought back.
    if not (row["active"] or body.active is True):
        raise not_found("user")
    if body.active is False and user_id == principal.user_id:
        raise ApiError(400, "cannot_delete_self", "An administrator cannot deactivate themselves")
    password_hash = (
        await asyncio.to_thread(hash_password, body.password)
        if body.password is not UNSET
        else None
    )

    def change(user: User) -> None:
        if body.active is True and not user.active:
            user.reactivate()
        user.check_active()
        if body.firstName is not UNSET or body.lastName is not UNSET:
            user.update_profile(
                body.firstName if body.firstName is not UNSET else user.first_name,
                body.lastName if body.lastName is not UNSET else user.last_name,
            )
        if body.role is not UNSET and body.role != user.role:
            user.change_role(body.role)
        if password_hash is not None:
            # A reset is what an administrator does for a lost or leaked account: every
            # token is refused from now on, and the API key is replaced (the user sees
            # the new one when they sign in).
            user.change_password(password_hash)
            key = new_api_key()
            user.rotate_api_key(api_key_hash(key), ctx.auth.seal(key))
        if body.limits is not UNSET:
            limits = {k: v for k, v in structs.asdict(body.limits).items() if v is not UNSET}
            if limits:
                user.change_limits(limits)
        if body.active is False:
            user.deactivate()

    await ctx.change_user(user_id, change)
    if body.active is not UNSET and body.active != bool(row["active"]):
        await owners.follow(ctx, user_id, active=body.active)
    return answer(request, views.user(ctx.user_row(user_id)))


@doc("Delete (deactivate) a user; their instances stop", "users", answer=Done, admin=True)
async def delete_user(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    principal = ctx.admin(request)
    row = _row(ctx, request)
    if row["id"] == principal.user_id:
        raise ApiError(400, "cannot_delete_self", "An administrator cannot delete themselves")
    await ctx.change_user(row["id"], lambda user: user.deactivate())
    await owners.follow(ctx, row["id"], active=False)
    return answer(request, Done(success=True, message=f"User {row['id']} deleted successfully"))


def _row(ctx: Context, request: Request) -> dict:
    user_id = str(parse_id(request.path_params["userId"], "user"))
    row = ctx.queries.active_user(user_id)
    if row is None:
        raise not_found("user")
    return row


routes = [
    Route("/api/users", list_users, methods=["GET"]),
    Route("/api/users", create_user, methods=["POST"]),
    Route("/api/users/{userId}", get_user, methods=["GET"]),
    Route("/api/users/{userId}", update_user, methods=["PUT"]),
    Route("/api/users/{userId}", delete_user, methods=["DELETE"]),
]
