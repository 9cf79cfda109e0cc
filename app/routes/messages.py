"""Everything else a chat does: locations, contact cards, polls and votes, templates,
reactions, edits, revocations, media downloads, presence and read marks.

As on every instance route: ownership first, then the body, then the instance. A message
named by id is looked up in the instance's read models (404 `message_not_found`), and
WhatsApp's rules are checked on it before the engine is asked.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

import emoji as emoji_data
import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from actors.engines.base import (
    ContactCard,
    Location,
    Media,
    Poll,
    Template,
)
from app.answers import Done, SentMessage, answer
from app.context import Context
from app.errors import ApiError, invalid
from app.media import OCTET_STREAM, media_type
from app.openapi import doc
from app.schemas import (
    EditMessage,
    MarkRead,
    React,
    SendContact,
    SendLocation,
    SendPoll,
    SendTemplate,
    SetPresence,
    Vote,
    parse,
)
from app.sending import (
    begin_send,
    chat_names,
    find_message,
    fingerprint,
    send_options,
    sending,
)
from domain.messages import MessageNotFound
from domain.phone import is_group, normalize_phone, to_jid

CHAT_STATES = ("composing", "recording", "paused")
# Meta's template components nest a few levels (a component's parameters, a parameter's
# currency or date_time). Free-form JSON far deeper was stored, and then every answer that
# shows the message failed: each encoder recurses.
MAX_COMPONENT_NESTING = 16


def _sent(request: Request, message_id: str) -> Response:
    return answer(request, SentMessage(id=message_id))


def _print(key: str | None, body: msgspec.Struct) -> str | None:
    """The fingerprint of a send's request (its kind and whole body), when it has a key."""
    if key is None:
        return None
    return fingerprint(type(body).__name__, msgspec.json.encode(body).decode())


# -- the new sends -------------------------------------------------------------------------


@doc(
    "Send a location",
    "whatsapp",
    answer=SentMessage,
    body=SendLocation,
    errors=(202, 422, 429, 502),
)
async def send_location(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, SendLocation)
    to = to_jid(body.phone)
    options = await send_options(ctx, instance_id, to, body)
    key = await begin_send(ctx, request, instance_id)
    place = Location(body.latitude, body.longitude, body.name, body.address)
    sent = ctx.proxy(instance_id).send_location(to, place, key, options, _print(key, body))
    return _sent(request, await sending(ctx, sent, key))


@doc(
    "Send contact cards (1 to 10)",
    "whatsapp",
    answer=SentMessage,
    body=SendContact,
    errors=(202, 422, 429, 502),
)
async def send_contact(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, SendContact)
    to = to_jid(body.phone)
    cards = tuple(ContactCard(c.name, _card_phone(c.phone, n)) for n, c in enumerate(body.contacts))
    options = await send_options(ctx, instance_id, to, body)
    key = await begin_send(ctx, request, instance_id)
    sent = ctx.proxy(instance_id).send_contacts(to, cards, key, options, _print(key, body))
    return _sent(request, await sending(ctx, sent, key))


def _card_phone(raw: str, index: int) -> str:
    try:
        return normalize_phone(raw)
    except ValueError as error:
        raise invalid(str(error), f"contacts.{index}.phone") from None


@doc(
    "Send a poll (2 to 12 options)",
    "whatsapp",
    answer=SentMessage,
    body=SendPoll,
    errors=(202, 422, 429, 502),
)
async def send_poll(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, SendPoll)
    if len(set(body.options)) != len(body.options):
        raise invalid("Poll options must differ from each other", "options", "duplicate option")
    to = to_jid(body.phone)
    options = await send_options(ctx, instance_id, to, body)
    key = await begin_send(ctx, request, instance_id)
    poll = Poll(body.question, tuple(body.options), body.multipleAnswers)
    sent = ctx.proxy(instance_id).send_poll(to, poll, key, options, _print(key, body))
    return _sent(request, await sending(ctx, sent, key))


@doc(
    "Send a message template (Cloud API)",
    "whatsapp",
    answer=SentMessage,
    body=SendTemplate,
    errors=(202, 422, 429, 502),
)
async def send_template(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, SendTemplate)
    if _nesting(body.components) > MAX_COMPONENT_NESTING:
        raise invalid(
            f"Components nest more than {MAX_COMPONENT_NESTING} levels deep",
            "components",
            "nested too deeply",
        )
    to = to_jid(body.phone)
    key = await begin_send(ctx, request, instance_id)
    template = Template(body.name, body.language, tuple(body.components))
    sent = ctx.proxy(instance_id).send_template(to, template, key, _print(key, body))
    return _sent(request, await sending(ctx, sent, key))


def _nesting(value: Any) -> int:
    """How many levels of lists and objects `value` has (counted without recursing)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in item)
    return deepest


# -- acting on a message ---------------------------------------------------------------------


@doc("Vote in a poll ([] withdraws the vote)", "whatsapp", answer=SentMessage, body=Vote)
async def vote(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, Vote)
    poll = await find_message(ctx, instance_id, request.path_params["messageId"])
    choice = tuple(dict.fromkeys(body.options))
    return _sent(request, await ctx.command(ctx.proxy(instance_id).vote(poll, choice)))


@doc(
    "React to a message (an empty emoji removes the reaction)",
    "whatsapp",
    errors=(502,),
    answer=SentMessage,
    body=React,
)
async def react(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, React)
    if body.emoji and not emoji_data.is_emoji(body.emoji):
        raise invalid(
            f"{body.emoji!r} is not a single emoji (an empty one removes the reaction)",
            "emoji",
            "not a single emoji",
        )
    message = await find_message(ctx, instance_id, request.path_params["messageId"])
    return _sent(request, await ctx.command(ctx.proxy(instance_id).react(message, body.emoji)))


@doc(
    "Edit an own text message (within 15 minutes)",
    "whatsapp",
    errors=(502,),
    answer=SentMessage,
    body=EditMessage,
)
async def edit(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, EditMessage)
    message = await find_message(ctx, instance_id, request.path_params["messageId"])
    return _sent(request, await ctx.command(ctx.proxy(instance_id).edit(message, body.message)))


@doc("Delete an own message for everyone", "whatsapp", answer=Done)
async def revoke(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    message = await find_message(ctx, instance_id, request.path_params["messageId"])
    await ctx.command(ctx.proxy(instance_id).revoke(message))
    return answer(request, Done(success=True))


@doc(
    "The media of a sent or received message",
    "whatsapp",
    media={OCTET_STREAM: "binary"},
    errors=(502,),
)
async def download_media(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    message = await find_message(ctx, instance_id, request.path_params["messageId"])
    if message.media is None:
        raise ApiError(404, "no_media", f"Message {message.message_id} has no media")
    file = _local(ctx, message.media.get("path") or _file_name(message.media.get("id")))
    if file is None:  # not on this server (yet): the engine fetches it
        fetched: Media = await ctx.ask(ctx.proxy(instance_id).download_media(message))
        file = _local(ctx, fetched.path)
        if file is None:
            raise ApiError(404, "no_media", f"The media of {message.message_id} is not available")
        mimetype, filename = fetched.mimetype, fetched.filename
    else:
        mimetype = str(message.media.get("mimetype") or "")
        filename = message.media.get("filename") or file.name
    return FileResponse(file, media_type=media_type(mimetype) or OCTET_STREAM, filename=filename)


def _file_name(media_id: Any) -> str | None:
    """A media id as the file name it is, or None: an id is the sender's to write (a
    webhook's), and one with a directory in it, or a NUL, names no file of ours."""
    if not isinstance(media_id, str) or "\x00" in media_id:
        return None
    return media_id if PurePath(media_id).name == media_id else None


def _local(ctx: Context, path: str | None) -> Path | None:
    """A file under UPLOADS_DIR (a path, or a media id: its name there), or None (a path
    from elsewhere is never served)."""
    if not path:
        return None
    uploads = ctx.settings.uploads_dir.resolve()
    file = (uploads / path).resolve()
    if not file.is_relative_to(uploads) or not file.is_file():
        return None
    return file


# -- presence and read marks ---------------------------------------------------------------


@doc(
    "Show presence: in a chat (composing, recording, paused) or at all",
    "whatsapp",
    errors=(502,),
    answer=Done,
    body=SetPresence,
)
async def presence(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, SetPresence)
    if body.state in CHAT_STATES and body.phone is None:
        raise invalid(f"'{body.state}' is shown in a chat: give its 'phone'", "phone", "missing")
    if body.state not in CHAT_STATES and body.phone is not None:
        raise invalid(f"'{body.state}' is shown to everyone: leave out 'phone'", "phone")
    to = to_jid(body.phone) if body.phone is not None else None
    await ctx.ask(ctx.proxy(instance_id).send_presence(body.state, to))
    return answer(request, Done(success=True))


@doc(
    "Mark received messages of a chat read (read receipts to the sender)",
    "whatsapp",
    errors=(502,),
    answer=Done,
    body=MarkRead,
)
async def mark_read(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, MarkRead)
    chat = to_jid(body.chatId)
    names = chat_names(ctx, instance_id, chat)
    found = []
    for message_id in dict.fromkeys(body.messageIds):
        message = await find_message(ctx, instance_id, message_id)
        if message.chat not in names:
            raise MessageNotFound(f"The chat {chat} has no message {message_id}")
        if not message.from_me:
            found.append(message)
    if not is_group(chat) and found:
        chat = found[0].chat  # the name the chat goes by at WhatsApp
    await ctx.command(ctx.proxy(instance_id).mark_read(chat, tuple(found)))
    return answer(request, Done(success=True))


routes = [
    Route("/api/whatsapp/{instanceId}/send-location", send_location, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/send-contact", send_contact, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/send-poll", send_poll, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/send-template", send_template, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/messages/{messageId}/vote", vote, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/messages/{messageId}/reaction", react, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/messages/{messageId}/media", download_media, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/messages/{messageId}", edit, methods=["PUT"]),
    Route("/api/whatsapp/{instanceId}/messages/{messageId}", revoke, methods=["DELETE"]),
    Route("/api/whatsapp/{instanceId}/presence", presence, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/read", mark_read, methods=["POST"]),
]
