"""Request bodies as msgspec types, and how a request body becomes one."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from starlette.requests import Request

from app.errors import ApiError, invalid

T = TypeVar("T")

MAX_JSON_BODY = 1024 * 1024

Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, Meta(min_length=8, max_length=256)]
Name = Annotated[str, Meta(max_length=100)]
InstanceName = Annotated[str, Meta(min_length=1, max_length=100)]
Text = Annotated[str, Meta(max_length=2000)]
Url = Annotated[str, Meta(max_length=2048)]
Retries = Annotated[int, Meta(ge=0, le=20)]
IntervalMs = Annotated[int, Meta(ge=0, le=86_400_000)]
Secret = Annotated[str, Meta(max_length=256)]
MAX_MESSAGE = 65_536
MessageText = Annotated[str, Meta(min_length=1, max_length=MAX_MESSAGE)]
PhoneText = Annotated[str, Meta(min_length=1, max_length=64)]


class Body(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are refused."""


class Login(Body):
    email: Annotated[str, Meta(max_length=254)]
    password: Annotated[str, Meta(max_length=256)]


class ChangePassword(Body):
    currentPassword: Annotated[str, Meta(max_length=256)]
    newPassword: Password


class RotateApiKey(Body):
    """Optional: without a body, a token from a sign-in in the last 5 minutes is needed."""

    currentPassword: Annotated[str, Meta(max_length=256)] | None = None


class UserCreate(Body):
    email: Email
    password: Password
    firstName: Name = ""
    lastName: Name = ""
    role: Annotated[str, Meta(pattern="^(user|admin)$")] = "user"


class Limits(Body):
    maxInstances: Annotated[int, Meta(ge=0, le=100000)] | UnsetType | None = UNSET
    maxMessagesPerDay: Annotated[int, Meta(ge=0, le=100000000)] | UnsetType | None = UNSET


class UserUpdate(Body):
    limits: Limits | UnsetType = UNSET
    firstName: Name | UnsetType = UNSET
    lastName: Name | UnsetType = UNSET
    role: Annotated[str, Meta(pattern="^(user|admin)$")] | UnsetType = UNSET
    password: Password | UnsetType = UNSET
    active: bool | UnsetType = UNSET


MetaId = Annotated[str, Meta(pattern=r"^[0-9]{1,32}$")]  # a Graph path segment: digits only
ApiVersion = Annotated[str, Meta(pattern=r"^v[0-9]{1,3}\.[0-9]{1,2}$")]
# RFC 6750 §2.1's b64token: what may follow "Bearer " in an Authorization header.
BearerToken = Annotated[
    str, Meta(min_length=1, max_length=1024, pattern=r"^[A-Za-z0-9\-._~+/]+=*$")
]


class CloudSettings(Body):
    phoneNumberId: MetaId
    accessToken: BearerToken
    # Without them Meta's webhook can be neither subscribed nor verified.
    appSecret: Annotated[str, Meta(min_length=1, max_length=256)]
    verifyToken: Annotated[str, Meta(min_length=1, max_length=256)]
    graphBaseUrl: Url | None = None  # None: Meta's own, https://graph.facebook.com
    # None: the server's CLOUD_API_VERSION (stored only when chosen, so it follows that).
    apiVersion: ApiVersion | None = None
    wabaId: MetaId | None = None  # the business account: checks that the app gets its webhooks


class WebhookSettings(Body):
    notifyReceived: bool | UnsetType = UNSET
    notifySent: bool | UnsetType = UNSET
    notifyDelivery: bool | UnsetType = UNSET
    notifyRead: bool | UnsetType = UNSET
    notifyMessageUpdates: bool | UnsetType = UNSET
    notifyGroups: bool | UnsetType = UNSET
    notifyPresence: bool | UnsetType = UNSET
    maxRetries: Retries | UnsetType = UNSET
    retryInterval: IntervalMs | UnsetType = UNSET
    secret: Secret | UnsetType | None = UNSET


class InstanceCreate(Body):
    name: InstanceName
    description: Text = ""
    webhookUrl: Url | None = None
    # Unset: on when a webhookUrl is given (the seed's own example sends the URL alone).
    webhookEnabled: bool | None = None
    notifyReceived: bool = True
    notifySent: bool = True
    notifyDelivery: bool = False
    notifyRead: bool = False
    # Off by default, so existing receivers see nothing new: reactions, edits, revocations
    # and poll votes; group changes; others' presence.
    notifyMessageUpdates: bool = False
    notifyGroups: bool = False
    notifyPresence: bool = False
    maxRetries: Retries | None = None
    retryInterval: IntervalMs | None = None
    webhookSecret: Secret | None = None
    engine: Annotated[str, Meta(pattern="^(whatsmeow|cloud|sandbox)$")] | None = None
    cloud: CloudSettings | None = None
    proxy: Url | None = None


class InstanceUpdate(Body):
    name: InstanceName | UnsetType = UNSET
    description: Text | UnsetType = UNSET
    webhookUrl: Url | UnsetType | None = UNSET
    webhookEnabled: bool | UnsetType = UNSET
    webhookSettings: WebhookSettings | UnsetType = UNSET
    cloud: CloudSettings | UnsetType = UNSET
    proxy: Url | UnsetType | None = UNSET


MessageId = Annotated[str, Meta(min_length=1, max_length=128)]
Mentions = Annotated[list[PhoneText], Meta(max_length=256)]


class Send(Body):
    """What every send takes: the chat (digits, a phone JID, a group JID or a LID), and
    optionally a message of that chat to reply to and people to mention."""

    phone: PhoneText
    quotedMessageId: MessageId | None = None
    mentions: Mentions = []


class SendText(Send, kw_only=True):
    message: MessageText


class SendMedia(Send, kw_only=True):
    url: Url
    caption: Annotated[str, Meta(max_length=4096)] = ""
    filename: Annotated[str, Meta(max_length=255)] | None = None


class SendLocation(Send, kw_only=True):
    latitude: Annotated[float, Meta(ge=-90, le=90)]
    longitude: Annotated[float, Meta(ge=-180, le=180)]
    name: Annotated[str, Meta(max_length=1024)] | None = None
    address: Annotated[str, Meta(max_length=1024)] | None = None


class Card(Body):
    name: Annotated[str, Meta(min_length=1, max_length=256)]
    phone: PhoneText


class SendContact(Send, kw_only=True):
    contacts: Annotated[list[Card], Meta(min_length=1, max_length=10)]


PollOption = Annotated[str, Meta(min_length=1, max_length=100)]


class SendPoll(Send, kw_only=True):
    question: Annotated[str, Meta(min_length=1, max_length=255)]
    options: Annotated[list[PollOption], Meta(min_length=2, max_length=12)]
    multipleAnswers: bool = False


class SendTemplate(Body):
    phone: PhoneText
    name: Annotated[str, Meta(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")]
    language: Annotated[str, Meta(min_length=2, max_length=15, pattern=r"^[A-Za-z_]+$")]
    components: Annotated[list[dict[str, Any]], Meta(max_length=20)] = []


class Vote(Body):
    options: Annotated[list[PollOption], Meta(max_length=12)]


class React(Body):
    emoji: Annotated[str, Meta(max_length=32)]


class EditMessage(Body):
    message: MessageText


class SetPresence(Body):
    state: Annotated[str, Meta(pattern="^(available|unavailable|composing|recording|paused)$")]
    phone: PhoneText | None = None


class MarkRead(Body):
    chatId: PhoneText
    messageIds: Annotated[list[MessageId], Meta(min_length=1, max_length=100)]


GroupSubject = Annotated[str, Meta(min_length=1, max_length=100)]


class CreateGroup(Body):
    subject: GroupSubject
    participants: Annotated[list[PhoneText], Meta(min_length=1, max_length=256)]


class UpdateGroup(Body):
    subject: GroupSubject | None = None
    description: Annotated[str, Meta(max_length=2048)] | None = None
    announce: bool | None = None
    locked: bool | None = None


class ChangeParticipants(Body):
    action: Annotated[str, Meta(pattern="^(add|remove|promote|demote)$")]
    participants: Annotated[list[PhoneText], Meta(min_length=1, max_length=256)]


class JoinGroup(Body):
    inviteCode: Annotated[str, Meta(min_length=1, max_length=256)]


class PairingCode(Body):
    phone: PhoneText


class SandboxScan(Body):
    phone: PhoneText | None = None
    lid: PhoneText | None = None  # `<digits>@lid`: the LID WhatsApp knows the number by


class SandboxInbound(Body, rename={"sender": "from"}):
    sender: PhoneText  # a phone number, or a LID (`<digits>@lid`)
    message: MessageText
    pushName: Name | None = None
    lid: PhoneText | None = None  # the sender's LID, when it sends from a phone number


_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


async def read_body(request: Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The raw body, refusing more than `limit` bytes (413) before reading it all."""
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def content_length(request: Request) -> int | None:
    """The declared body length, if it is a plain number (else the body's own end counts)."""
    declared = request.headers.get("content-length", "")
    if 0 < len(declared) <= 18 and declared.isascii() and declared.isdigit():
        return int(declared)
    return None


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body is larger than {limit} bytes")


async def parse(request: Request, kind: type[T]) -> T:
    """Decode and validate a JSON body into `kind`; 400 with details when it does not fit."""
    documented = getattr(request.scope.get("endpoint"), "__openapi__", None)
    if documented is not None and documented.body not in (kind, None):
        raise RuntimeError(f"{request.url.path} documents {documented.body} but decodes {kind}")
    body = await read_body(request)
    return decode(body, kind)


def decode(body: bytes, kind: type[T]) -> T:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    if not body.strip():
        raise ApiError(400, "invalid_body", "A JSON body is required")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as error:
        field, problem = _located(str(error))
        raise invalid(f"Invalid request body: {error}", field, problem) from None
    except msgspec.DecodeError as error:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {error}") from None
    except RecursionError:  # free-form JSON (a template's components) a few kB deep
        raise ApiError(400, "invalid_json", "The body's JSON is nested too deeply") from None


_AT = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")


def _located(message: str) -> tuple[str | None, str]:
    """msgspec's "Expected `str`, got `int` - at `$.cloud.phoneNumberId`" as the field
    ("cloud.phoneNumberId", or the missing or unknown field's own path) and the problem."""
    found = _AT.match(message)
    assert found is not None  # the pattern matches any text
    problem, path = found["problem"], (found["path"] or "").lstrip(".")
    named = _NAMED.search(problem)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
    return path or None, problem
