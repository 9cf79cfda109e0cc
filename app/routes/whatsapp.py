"""Messaging: status, QR, send text and media, contacts, logout; and the simple GET/POST send."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from pykka import ActorDeadError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.bridge import ActorTimeout
from actors.outbound import OutboundHTTP
from app import media, quotas, views
from app.answers import (
    ConnectionStatus,
    ContactList,
    ContactView,
    LogoutAnswer,
    NumberCheckView,
    PairingCodeView,
    SentMessage,
    answer,
)
from app.context import LOGOUT_TIMEOUT, QUERY_TIMEOUT, Context
from app.errors import ApiError, invalid
from app.openapi import doc
from app.routes.instances import qr_code
from app.schemas import MAX_MESSAGE, PairingCode, SendMedia, SendText, parse
from domain.instance import SendOutcomeUnknown
from domain.phone import normalize_phone, to_jid

MAX_IDEMPOTENCY_KEY = 200


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
        )
    return key


async def sending(ctx: Context, future: Any, key: str | None) -> Any:
    """A send's message id; when the instance does not answer in time (it may still be
    sending) or stops, the outcome is unknown: 202 `send_outcome_unknown`, never a failure
    the client would retry into a second message."""
    try:
        return await ctx.command(future)
    except (ActorTimeout, ActorDeadError):
        raise SendOutcomeUnknown(
            "the instance did not finish the send in time; it may still reach WhatsApp "
            "(retry with the same Idempotency-Key to learn the outcome)",
            key,
        ) from None


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
    return await _send_text(ctx, request, instance_id, body.phone, body.message)


def fingerprint(*parts: str | None) -> str:
    """What identifies a send's request, so that a reused Idempotency-Key is told apart."""
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:32]


async def _send_text(
    ctx: Context, request: Request, instance_id: str, phone: str, text: str
) -> Response:
    to = to_jid(phone)
    key = idempotency_key(request)
    ctx.check_webhook_backlog(instance_id)
    await quotas.check_messages(ctx, ctx.principal(request), instance_id)
    proxy = ctx.proxy(instance_id)
    sent = proxy.send_text(to, text, key, fingerprint("text", to, text) if key else None)
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
    key = idempotency_key(request)
    ctx.check_webhook_backlog(row["id"])
    media.fetchable(body.url)
    proxy = ctx.proxy(row["id"])
    request_print = fingerprint("url", to, body.url, body.caption, body.filename)
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
        sent = proxy.send_media(to, file, body.caption, key, request_print)
        message_id = await sending(ctx, sent, key)
    return answer(request, SentMessage(id=message_id))


@doc(
    "Send an uploaded file",
    "whatsapp",
    answer=SentMessage,
    form={"phone": "string", "caption": "string", "file": "binary"},
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
        key = idempotency_key(request)
        ctx.check_webhook_backlog(row["id"])
        await quotas.check_messages(ctx, ctx.principal(request), row["id"])
        file = await media.keep_upload(upload, settings.uploads_dir, settings.max_file_size)
    finally:
        await form.close()
    request_print = fingerprint("file", to, caption, file.filename, file.digest)
    with media.removed_unless_sent(file):
        sent = ctx.proxy(row["id"]).send_media(to, file, caption, key, request_print)
        message_id = await sending(ctx, sent, key)
    return answer(request, SentMessage(id=message_id))


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
    return await _send_text(ctx, request, instance_id, phone, text)


routes = [
    Route("/api/whatsapp/{instanceId}/status", status, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/qr", qr_code, methods=["GET"]),
    Route("/api/whatsapp/{instanceId}/send", send, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/send-media", send_media, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/send-file", send_file, methods=["POST"]),
    Route("/api/whatsapp/{instanceId}/contacts", contacts, methods=["GET"]),
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
