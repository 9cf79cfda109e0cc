"""What every send and every command on a message has in common: the idempotency key,
the checks before a send goes, the message a command names, and a reply's quote."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from pykka import ActorDeadError
from starlette.requests import Request

from actors.bridge import ActorTimeout
from actors.engines.base import SendOptions
from app import quotas
from app.context import Context
from app.errors import ApiError
from app.message_views import message_ref
from app.schemas import Send
from domain.instance import SendOutcomeUnknown
from domain.messages import MessageNotFound, MessageRef
from domain.phone import phone_jid, to_jid

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


def fingerprint(*parts: str | None) -> str:
    """What identifies a send's request, so that a reused Idempotency-Key is told apart."""
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:32]


def reply_parts(options: SendOptions) -> tuple[str | None, ...]:
    """What a send's reply and mentions add to its fingerprint (nothing without either,
    so that a plain send's fingerprint is what it always was)."""
    if not options:
        return ()
    return (options.quoted.message_id if options.quoted else None, *options.mentions)


async def find_message(ctx: Context, instance_id: str, message_id: str) -> MessageRef:
    """A message the instance sent or received; 404 message_not_found if none."""
    row = ctx.queries.message(instance_id, message_id)
    if row is None:
        raise MessageNotFound(f"This instance has no message {message_id}")
    return message_ref(row)


def chat_names(ctx: Context, instance_id: str, jid: str) -> set[str]:
    """The names one chat goes by: a person's phone JID and LID, when the pair is known."""
    names = {jid}
    pair = ctx.queries.identities(instance_id, [jid]).get(jid)
    if pair is not None:
        names |= {phone_jid(pair["phone"]), pair["lid"]}
    return names


async def send_options(ctx: Context, instance_id: str, to: str, body: Send) -> SendOptions:
    """The reply and mentions a send asks for; the quoted message must be of that chat."""
    quoted = None
    if body.quotedMessageId is not None:
        quoted = await find_message(ctx, instance_id, body.quotedMessageId)
        if quoted.chat not in chat_names(ctx, instance_id, to):
            raise MessageNotFound(
                f"The chat {to} has no message {body.quotedMessageId} to reply to"
            )
    mentions = tuple(dict.fromkeys(to_jid(m) for m in body.mentions))
    return SendOptions(quoted=quoted, mentions=mentions)


async def begin_send(ctx: Context, request: Request, instance_id: str) -> str | None:
    """What every send checks before it goes: the idempotency key, webhook backlog, quota;
    the key is the value."""
    key = idempotency_key(request)
    ctx.check_webhook_backlog(instance_id)
    await quotas.check_messages(ctx, ctx.principal(request), instance_id)
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
