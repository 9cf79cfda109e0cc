"""Groups: list, create, read, change, participants, invite codes, join and leave.

`groupId` in a path is the group's JID (`…@g.us`, URL-encoded) or its digits. What the
instance knows of its groups is its read model (GroupCreated, GroupJoined, ...); changes
go to WhatsApp through the engine, which answers `409 not_group_admin` when WhatsApp
refuses a member what only admins may do.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.answers import (
    Done,
    GroupList,
    GroupView,
    InviteView,
    ParticipantChange,
    ParticipantChanges,
    answer,
)
from app.context import Context
from app.message_views import group_row_view, group_view
from app.openapi import doc
from app.schemas import ChangeParticipants, CreateGroup, JoinGroup, UpdateGroup, parse
from domain.groups import GroupChanges, GroupNotFound
from domain.phone import GROUP_SERVER, InvalidPhoneNumber, to_jid

INVITE_LINK = "https://chat.whatsapp.com/"
_GROUP = re.compile(r"\d{5,32}(-\d{5,16})?", re.ASCII)


def group_id(request: Request) -> str:
    """The group JID a path names (by its JID or its digits); 404 if it cannot be one."""
    raw = request.path_params["groupId"]
    digits = raw.removesuffix("@" + GROUP_SERVER)
    if not _GROUP.fullmatch(digits):
        raise GroupNotFound(f"'{raw}' is not a group id (a …@g.us JID or its digits)")
    return f"{digits}@{GROUP_SERVER}"


def _participants(raw: list[str]) -> tuple[str, ...]:
    jids = tuple(dict.fromkeys(to_jid(p) for p in raw))
    if any(j.endswith("@" + GROUP_SERVER) for j in jids):
        raise InvalidPhoneNumber("a group cannot be a participant of a group")
    return jids


@doc("The groups this instance is in", "groups", answer=GroupList)
async def list_groups(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    groups = [group_row_view(g) for g in ctx.queries.groups(row["id"])]
    return answer(request, GroupList(groups=groups))


@doc("Create a group", "groups", errors=(502,), answer=GroupView, body=CreateGroup, ok=201)
async def create_group(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, CreateGroup)
    participants = _participants(body.participants)
    group = await ctx.command(ctx.proxy(instance_id).create_group(body.subject, participants))
    return answer(request, group_view(group))


@doc("A group this instance is in", "groups", answer=GroupView)
async def get_group(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    found = ctx.queries.group(row["id"], group_id(request))
    if found is None or found["left"]:
        raise GroupNotFound("This instance is not in that group")
    return answer(request, group_row_view(found))


@doc(
    "Change a group's subject, description, announce or locked",
    "groups",
    errors=(502,),
    answer=GroupView,
    body=UpdateGroup,
)
async def update_group(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, UpdateGroup)
    jid = group_id(request)
    changes = GroupChanges(body.subject, body.description, body.announce, body.locked)
    group = await ctx.command(ctx.proxy(instance_id).update_group(jid, changes))
    return answer(request, group_view(group))


@doc(
    "Add, remove, promote or demote participants",
    "groups",
    errors=(502,),
    answer=ParticipantChanges,
    body=ChangeParticipants,
)
async def participants(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, ChangeParticipants)
    jid = group_id(request)
    people = _participants(body.participants)
    results = await ctx.command(
        ctx.proxy(instance_id).change_participants(jid, body.action, people)
    )
    changed = [ParticipantChange(id=r.id, status=r.status) for r in results]
    return answer(request, ParticipantChanges(participants=changed))


@doc("The group's invite code and link (admins)", "groups", errors=(502,), answer=InviteView)
async def invite(request: Request) -> Response:
    return await _invite(request, reset=False)


@doc(
    "Revoke the invite code; a new one is made (admins)", "groups", errors=(502,), answer=InviteView
)
async def revoke_invite(request: Request) -> Response:
    return await _invite(request, reset=True)


async def _invite(request: Request, reset: bool) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    code = await ctx.ask(ctx.proxy(instance_id).invite_code(group_id(request), reset))
    return answer(request, InviteView(inviteCode=code, inviteLink=INVITE_LINK + code))


@doc(
    "Join a group by its invite code (or link)",
    "groups",
    errors=(502,),
    answer=GroupView,
    body=JoinGroup,
)
async def join(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, JoinGroup)
    code = body.inviteCode.strip().removeprefix(INVITE_LINK)
    group = await ctx.command(ctx.proxy(instance_id).join_group(code))
    return answer(request, group_view(group))


@doc("Leave a group", "groups", errors=(502,), answer=Done)
async def leave(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    await ctx.command(ctx.proxy(instance_id).leave_group(group_id(request)))
    return answer(request, Done(success=True))


routes = [
    Route("/api/whatsapp/{instanceId}/groups", list_groups, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/groups", create_group, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/groups/join", join, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/groups/{groupId}", get_group, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/groups/{groupId}", update_group, methods=["PUT"]),
    Route(
        "/api/whatsapp/{instanceId}/groups/{groupId}/participants", participants, methods=["POST"]
    ),
    Route("/api/whatsapp/{instanceId}/groups/{groupId}/invite", invite, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/groups/{groupId}/invite", revoke_invite, methods=["DELETE"]),
    Route("/api/whatsapp/{instanceId}/groups/{groupId}/leave", leave, methods=["POST"]),
]
