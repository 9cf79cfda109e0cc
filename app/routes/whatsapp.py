"""Messaging: status, QR, send text and media, contacts, logout; and the simple GET/POST send."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.engines.base import NO_OPTIONS, EngineError, SendOptions
from actors.outbound import OutboundHTTP
from app import media, quotas, views
from app.answers import (
    ConnectionStatus,
    ContactList,
    ContactView,
    LogoutAnswer,
    NumberCheckView,
    PairingCodeView,
    PersonView,
    SentMessage,
    answer,
)
from app.context import LOGOUT_TIMEOUT, QUERY_TIMEOUT, Context
from app.errors import ApiError, invalid
from app.message_views import person
from app.openapi import doc
from app.routes.instances import qr_code
from app.schemas import MAX_MESSAGE, PairingCode, Send, SendMedia, SendText, decode, parse
from app.sending import (
    begin_send,
    fingerprint,
    idempotency_key,
    reply_parts,
    send_options,
    sending,
)
from app.sessions import CSRF_HEADER
from domain.instance import InstanceNotConnected
from domain.phone import is_group, normalize_phone, phone_jid, to_jid


@doc("Connection status", "whatsapp", answer=ConnectionStatus)
async def status(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    state = await ctx.ask(ctx.proxy(instance_id).state())
    return answer(
        request,
        views.status_view(state["status"], state["hasQr"], state["lastError"], state["retryAt"]),
    )


@doc(
    "Send a text message",
    "whatsapp",
    answer=SentMessage,
    body=SendText,
    errors=(202, 422, 429, 502),
)
async def send(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    body = await parse(request, SendText)
    to = to_jid(body.phone)
    options = await send_options(ctx, instance_id, to, body)
    return await _send_text(ctx, request, instance_id, to, body.message, options)


async def _send_text(
    ctx: Context,
    request: Request,
    instance_id: str,
    to: str,
    text: str,
    options: SendOptions = NO_OPTIONS,
) -> Response:
    key = await begin_send(ctx, request, instance_id)
    proxy = ctx.proxy(instance_id)
    request_print = fingerprint("text", to, text, *reply_parts(options)) if key else None
    sent = proxy.send_text(to, text, key, request_print, options)
    return answer(request, SentMessage(id=await sending(ctx, sent, key)))


@doc(
    "Send media fetched from a URL",
    "whatsapp",
    answer=SentMessage,
    body=SendMedia,
    errors=(202, 422, 429, 502),
)
async def send_media(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    body = await parse(request, SendMedia)
    to = to_jid(body.phone)
    options = await send_options(ctx, row["id"], to, body)
    key = idempotency_key(request)
    ctx.check_webhook_backlog(row["id"])
    media.fetchable(body.url)
    proxy = ctx.proxy(row["id"])
    request_print = fingerprint(
        "url", to, body.url, body.caption, body.filename, *reply_parts(options)
    )
    # Before anything is fetched: a retry answers at once, a disconnected instance is 409.
    earlier = await ctx.ask(proxy.check_send(key, request_print))
    if earlier is not None:
        return answer(request, SentMessage(id=earlier))
    await quotas.check_messages(ctx, ctx.principal(request), row["id"])
    settings = ctx.settings
    file = await media.download(
        body.url,
        body.filename,
        settings.uploads_dir,
        settings.max_file_size,
        settings.media_download_timeout,
        OutboundHTTP(settings.webhook_allow_private),
    )
    with media.removed_unless_sent(file):
        sent = proxy.send_media(to, file, body.caption, key, request_print, options)
        message_id = await sending(ctx, sent, key)
    return answer(request, SentMessage(id=message_id))


@doc(
    "Send an uploaded file",
    "whatsapp",
    answer=SentMessage,
    form={
        "phone": "string",
        "caption": "string",
        "file": "binary",
        "quotedMessageId": "string",
        "mentions": "string",
    },
    errors=(202, 422, 429, 502),
)
async def send_file(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    settings = ctx.settings
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            400, "invalid_body", "send-file takes multipart/form-data with phone and file"
        )
    limited = media.limit_body(request, settings.max_file_size + 64 * 1024)
    try:
        form = await limited.form(max_files=1, max_fields=10)
    except ApiError:
        raise
    except Exception as error:  # the multipart parser's own complaint
        raise ApiError(400, "invalid_multipart", f"Malformed multipart body: {error}") from None
    try:
        phone, upload = form.get("phone"), form.get("file")
        caption = form.get("caption") or ""
        if not isinstance(phone, str) or not phone:
            raise invalid("The 'phone' field is required", "phone", "missing")
        if not isinstance(upload, UploadFile):
            raise invalid("The 'file' field must be a file", "file", "not a file")
        if not isinstance(caption, str) or len(caption) > 4096:
            raise invalid("'caption' must be text of at most 4096 characters", "caption")
        to = to_jid(phone)
        options = await send_options(ctx, row["id"], to, _form_send(phone, form))
        key = await begin_send(ctx, request, row["id"])
        file = await media.keep_upload(upload, settings.uploads_dir, settings.max_file_size)
    finally:
        await form.close()
    request_print = fingerprint(
        "file", to, caption, file.filename, file.digest, *reply_parts(options)
    )
    with media.removed_unless_sent(file):
        sent = ctx.proxy(row["id"]).send_media(to, file, caption, key, request_print, options)
        message_id = await sending(ctx, sent, key)
    return answer(request, SentMessage(id=message_id))


def _form_send(phone: str, form: Any) -> Send:
    """A multipart send's `quotedMessageId` and `mentions` (comma-separated)."""
    quoted, mentions = form.get("quotedMessageId") or None, form.get("mentions") or ""
    if not isinstance(quoted, str | None) or not isinstance(mentions, str):
        raise invalid("'quotedMessageId' and 'mentions' are text fields", "mentions")
    named = [m.strip() for m in mentions.split(",") if m.strip()]
    return decode(
        msgspec.json.encode({"phone": phone, "quotedMessageId": quoted, "mentions": named}), Send
    )


@doc("Contacts of an instance", "whatsapp", answer=ContactList)
async def contacts(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    rows = ctx.queries.contacts(row["id"])
    found = [
        ContactView(id=c["jid"], name=c["name"], number=c["number"], isGroup=bool(c["is_group"]))
        for c in rows
    ]
    return answer(request, ContactList(contacts=found))


@doc(
    "Who a phone number or LID is: both names, when known, and the contact's name",
    "whatsapp",
    answer=PersonView,
    errors=(502,),
)
async def contact(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    jid = to_jid(request.path_params["phoneOrLid"])
    known = ctx.queries.identities(row["id"], [jid])
    phone, lid = person(jid, known)
    if not is_group(jid) and (phone is None or lid is None):
        # Not learnt yet: an engine that can asks WhatsApp (and records what it learns).
        try:
            found = await ctx.command(ctx.proxy(row["id"]).lookup_identity(jid))
            phone, lid = phone or found.phone, lid or found.lid
        except InstanceNotConnected:
            pass  # what is known, then
        except EngineError as refused:
            if refused.code not in ("unsupported_by_engine", "instance_not_connected"):
                raise
    names = [jid, *([phone_jid(phone)] if phone else []), *([lid] if lid else [])]
    name = next(
        (c["name"] for n in names if (c := ctx.queries.contact(row["id"], n)) and c["name"]),
        None,
    )
    if is_group(jid):
        group = ctx.queries.group(row["id"], jid)
        name = group["subject"] if group is not None else name
    view = PersonView(id=jid, phone=phone, lid=lid, name=name, isGroup=is_group(jid))
    return answer(request, view)


@doc("Log out of WhatsApp", "whatsapp", answer=LogoutAnswer)
async def logout(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    unlinked = await ctx.command(ctx.proxy(row["id"]).logout(), timeout=LOGOUT_TIMEOUT)
    return answer(request, views.logged_out(None, unlinked))


@doc(
    "Send text with query or form fields",
    "whatsapp",
    answer=SentMessage,
    query={"phone": "recipient", "message": "text"},
    errors=(202, 422, 429, 502),
)
async def simple_send(request: Request) -> Response:
    """Send with query or form fields, for low-code tools that cannot send JSON."""
    ctx: Context = request.app.state.ctx
    instance_id = ctx.own_instance_id(request)
    if request.method != "POST" and ctx.principal(request).session is not None:
        # A link or an image on any page of the console's site makes the browser GET this
        # with its session cookie; a change needs the session's CSRF token (app/sessions.py).
        raise ApiError(
            403,
            "csrf_token_invalid",
            f"A signed-in browser sends with POST and the session's {CSRF_HEADER} header",
        )
    fields: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST":
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            limited = media.limit_body(request, 1024 * 1024)
            form = await limited.form(max_files=0, max_fields=10)
            fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        elif content_type.startswith("application/json"):
            fields.update(await parse(request, dict[str, str]))
    phone, text = fields.get("phone"), fields.get("message")
    if not phone or not text:
        missing = "phone" if not phone else "message"
        raise invalid("Both 'phone' and 'message' are required", missing, "missing")
    if len(text) > MAX_MESSAGE:
        raise invalid(f"'message' is longer than {MAX_MESSAGE} characters", "message")
    return await _send_text(ctx, request, instance_id, to_jid(phone), text)


routes = [
    Route("/api/whatsapp/{instanceId}/status", status, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/qr", qr_code, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/send", send, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/send-media", send_media, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/send-file", send_file, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/contacts", contacts, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/contacts/{phoneOrLid}", contact, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/logout", logout, methods=["POST"]),
    Route("/api/whatsapp-simple/{instanceId}/send", simple_send, methods=["GET", "POST"]),
]


@doc("Whether a number has WhatsApp (whatsmeow)", "whatsapp", answer=NumberCheckView)
async def check_number(request: Request) -> Response:
    """Whether a phone number has WhatsApp (whatsmeow instances)."""
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    phone = normalize_phone(request.path_params["phone"])
    exists = await ctx.ask(ctx.proxy(row["id"]).check_number(phone), QUERY_TIMEOUT)
    return answer(request, NumberCheckView(phone=phone, exists=bool(exists)))


@doc(
    "A pairing code to link by phone number (whatsmeow)",
    "instances",
    answer=PairingCodeView,
    body=PairingCode,
)
async def pairing_code(request: Request) -> Response:
    """Pair by phone number instead of QR: the code to type on the phone (whatsmeow)."""
    ctx: Context = request.app.state.ctx
    row = ctx.own_instance(request)
    body = await parse(request, PairingCode)
    code = await ctx.ask(
        ctx.proxy(row["id"]).pairing_code(normalize_phone(body.phone)), QUERY_TIMEOUT
    )
    return answer(request, PairingCodeView(pairingCode=code))


routes += [
    Route("/api/whatsapp/{instanceId}/check/{phone}", check_number, methods=["GET"]),
    Route("/api/instances/{instanceId}/pairing-code", pairing_code, methods=["POST"]),
]
