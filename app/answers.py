"""API answers as msgspec types, and the one encoder that writes every JSON answer.

Each route documents its answer type (`@doc(..., answer=InstanceView)`); `answer()`
refuses to send anything else, so `/openapi.json` (built from the same types) cannot
drift from what the routes send, as `parse()` does for request bodies. Field names are
the wire names (camelCase, the seed's shapes); fields that are sometimes absent default
to UNSET, which the encoder leaves out.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType
from starlette.requests import Request
from starlette.responses import Response

ENCODER = msgspec.json.Encoder()


class Answer(Struct, kw_only=True):
    """Base of answers."""


class JSONAnswer(Response):
    """A JSON response written by the one encoder (msgspec: compact UTF-8)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return ENCODER.encode(content)


def answer(
    request: Request,
    value: Answer,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """`value` as the route's JSON answer; it must be of the type the route documents."""
    documented = getattr(request.scope.get("endpoint"), "__openapi__", None)
    if documented is None or documented.answer is None:
        raise RuntimeError(f"{request.url.path} documents no answer type")
    if not isinstance(value, documented.answer):
        raise RuntimeError(
            f"{request.url.path} documents {documented.answer} but answers {type(value)}"
        )
    return JSONAnswer(value, status_code=status or documented.ok, headers=headers)


# -- shared -------------------------------------------------------------------------------


class ErrorDetails(Answer):
    """What a program may act on: for a validation error, the field and the problem; for a
    Cloud API error, what Meta's Graph API answered (its HTTP status, code, subcode and
    trace id, when they are well formed) and Meta's title for a code we know."""

    field: str | UnsetType | None = UNSET  # dotted for nested fields; null: the whole body
    problem: str | UnsetType = UNSET
    httpStatus: int | UnsetType = UNSET
    code: int | UnsetType = UNSET
    subcode: int | UnsetType = UNSET
    fbtraceId: str | UnsetType = UNSET
    title: str | UnsetType = UNSET


class Error(Answer):
    """Every error: for a person (`error`) and for a program (`code`)."""

    error: str
    code: str
    details: ErrorDetails | UnsetType = UNSET  # validation errors
    # 202 send_outcome_unknown: the send's key; retrying with it never sends twice
    idempotencyKey: str | UnsetType = UNSET


class Done(Answer):
    """A command that has nothing more to say than that it was done."""

    success: bool
    message: str | UnsetType = UNSET


class LogoutAnswer(Answer):
    """A logout: whether WhatsApp unlinked the device (absent: there was none to unlink), and
    when it could not be reached, what to do instead."""

    success: bool
    message: str | UnsetType = UNSET
    unlinked: bool | UnsetType = UNSET
    warning: str | UnsetType = UNSET


class Pagination(Answer):
    total: int
    limit: int
    skip: int
    hasMore: bool


# -- auth and users -----------------------------------------------------------------------


class Me(Answer):
    id: str
    email: str
    firstName: str
    lastName: str
    role: str


class SignedInUser(Me):
    apiKey: str | None  # null when JWT_SECRET changed since the key was sealed


class SignedIn(Answer):
    token: str
    user: SignedInUser


class ApiKey(Answer):
    apiKey: str


class ConsoleSession(Answer):
    """The web console's session: who is signed in, the CSRF token to send with every
    change, and when the session ends (the cookie itself is HttpOnly)."""

    user: Me
    csrfToken: str
    expiresAt: str


class PasswordChanged(Done, kw_only=True):
    """`token`: a new token (every token issued before the change is refused);
    `csrfToken`: a console that changed its password goes on under a new session."""

    token: str
    csrfToken: str | UnsetType = UNSET


class UserLimits(Answer):
    maxInstances: int | UnsetType | None = UNSET
    maxMessagesPerDay: int | UnsetType | None = UNSET


class UserView(Answer):
    id: str
    email: str
    firstName: str
    lastName: str
    role: str
    active: bool
    limits: UserLimits
    createdAt: str
    updatedAt: str


class CreatedUser(UserView):
    apiKey: str  # shown once


class UserList(Answer):
    users: list[UserView]


# -- instances ----------------------------------------------------------------------------


class ConnectionStatus(Answer):
    """`status` is one of connecting, qr, connected, reconnecting, disconnected, logged_out,
    banned, outdated, disabled; when not connected, `lastError` says why (null: no error)
    and `retryAt` when the next attempt is due (null: none is planned)."""

    ready: bool
    status: str
    hasQr: bool
    lastError: str | UnsetType | None = UNSET
    retryAt: str | UnsetType | None = UNSET


class WebhookSettingsView(Answer):
    notifyReceived: bool
    notifySent: bool
    notifyDelivery: bool
    notifyRead: bool
    notifyMessageUpdates: bool  # reactions, edits, revocations, poll votes
    notifyGroups: bool
    notifyPresence: bool
    maxRetries: int | None
    retryInterval: int | None
    hasSecret: bool


class InstanceView(Answer):
    id: str
    name: str
    description: str
    userId: str
    engine: str
    status: str
    phone: str | None
    webhookUrl: str | None
    webhookEnabled: bool
    createdAt: str
    updatedAt: str
    connectionStatus: ConnectionStatus
    webhookSettings: WebhookSettingsView | UnsetType = UNSET  # one instance, not in lists
    engineSettings: dict[str, Any] | UnsetType = UNSET  # secrets left out
    connectionDetails: dict[str, Any] | UnsetType = UNSET  # what the engine said on connecting
    node: str | UnsetType | None = UNSET  # several nodes: the node that runs it (null: moving)


class InstanceList(Answer):
    instances: list[InstanceView]


class FleetInstance(InstanceView, kw_only=True):
    owner: str  # the owner's e-mail
    messagesSentToday: int
    messagesReceivedToday: int
    failedWebhooks: int  # deliveries that failed and stay failed


class Fleet(Answer):
    instances: list[FleetInstance]
    counts: dict[str, int]  # instances in each status


class Engines(Answer):
    engines: list[str]
    default: str | None  # what an instance gets when it names none


class QrCodeView(Answer):
    qrCode: str


class PairingCodeView(Answer):
    pairingCode: str


# -- messaging ----------------------------------------------------------------------------


class SentMessage(Answer):
    id: str  # the WhatsApp message id


class ContactView(Answer):
    id: str
    name: str | None
    number: str | None
    isGroup: bool


class ContactList(Answer):
    contacts: list[ContactView]


class NumberCheckView(Answer):
    phone: str
    exists: bool


# -- history --------------------------------------------------------------------------------


class ActivityEntry(Answer):
    id: str
    instanceId: str
    action: str
    details: dict[str, Any]
    createdAt: str


class ActivityLog(Answer):
    logs: list[ActivityEntry]
    pagination: Pagination


class ReactionView(Answer):
    sender: str = msgspec.field(name="from")  # who reacted: a JID, or "me"
    emoji: str


class PollOptionView(Answer):
    name: str
    votes: list[str]  # who chose it (JIDs, "me" for this account)


class PollView(Answer):
    question: str
    multipleAnswers: bool
    options: list[PollOptionView]  # the live tally


class MessageView(Answer):
    id: str
    instanceId: str
    remoteJid: str
    fromMe: bool
    messageType: str
    content: str | None  # "" once revoked
    messageId: str
    hasMedia: bool
    media: dict[str, Any] | None
    status: str
    createdAt: str
    sender: str | None  # the participant who wrote it, in a group
    phone: str | None  # the other party's number and LID, whenever either is known
    lid: str | None
    quotedMessageId: str | None
    reactions: list[ReactionView]  # current, one per reactor
    edited: bool
    revoked: bool
    location: dict[str, Any] | UnsetType = UNSET  # {latitude, longitude, name?, address?}
    contacts: list[dict[str, Any]] | UnsetType = UNSET  # [{name, phone}]
    poll: PollView | UnsetType = UNSET
    data: dict[str, Any] | UnsetType = UNSET  # a received message's structured content
    error: dict[str, Any] | UnsetType = UNSET  # why a message failed: {code, title, details}


class ChatHistory(Answer):
    messages: list[MessageView]
    pagination: Pagination


class LastMessage(Answer):
    id: str
    fromMe: bool
    type: str
    content: str  # the first characters; "" once revoked
    createdAt: str
    edited: bool | UnsetType = UNSET
    revoked: bool | UnsetType = UNSET


class ChatSummary(Answer):
    id: str
    name: str | None
    isGroup: bool
    lastMessage: LastMessage | None
    unreadCount: int  # received since the last read mark
    updatedAt: str | None


class ChatList(Answer):
    chats: list[ChatSummary]
    pagination: Pagination


class PersonView(Answer):
    """Who a phone number or LID names: both, when known."""

    id: str
    phone: str | None
    lid: str | None
    name: str | None
    isGroup: bool


# -- groups -------------------------------------------------------------------------------


class ParticipantView(Answer):
    id: str
    phone: str | None
    lid: str | None
    role: str  # member, admin or superadmin


class GroupView(Answer):
    id: str  # the group JID (…@g.us)
    subject: str
    description: str
    owner: str | None
    announce: bool  # only admins send
    locked: bool  # only admins change the group's settings
    createdAt: str | None
    participants: list[ParticipantView]


class GroupList(Answer):
    groups: list[GroupView]


class ParticipantChange(Answer):
    id: str
    status: str  # ok, or why this participant was not changed


class ParticipantChanges(Answer):
    participants: list[ParticipantChange]


class InviteView(Answer):
    inviteCode: str
    inviteLink: str


class EventView(Answer):
    """A stored event as the audit history shows it (secrets redacted)."""

    position: int
    type: str
    aggregate: str
    aggregateId: str
    version: int
    timestamp: str
    data: dict[str, Any]


class EventPage(Answer):
    events: list[EventView]
    next: int  # the position to ask `after` next


# -- statistics -----------------------------------------------------------------------------


class Usage(Answer):
    messagesSent: int
    messagesReceived: int
    mediaSent: int
    mediaReceived: int
    totalMediaSize: int
    apiCalls: int
    webhookSent: int


class UserTotals(Usage):
    instanceCount: int


class InstanceUsageTotal(Usage):
    instanceId: str
    name: str


class UserStats(Answer):
    total: UserTotals
    instances: list[InstanceUsageTotal]


class DailyUsage(Answer):
    date: str
    messagesSent: int
    messagesReceived: int
    mediaSent: int
    mediaReceived: int


class InstanceUsage(Usage):
    dailyStats: list[DailyUsage]


class InstanceStats(Answer):
    usage: InstanceUsage


class Counts(Answer):
    total: int
    active: int


class SystemStats(Answer):
    instances: Counts
    users: Counts
    usage: Usage


# -- webhooks, Meta's webhook, the sandbox --------------------------------------------------


class DeliveryView(Answer):
    id: str
    instanceId: str
    position: int
    event: str
    deliveryId: str
    status: str
    attempts: int
    lastStatusCode: int | None
    lastError: str | None
    replay: bool
    createdAt: str


class OutcomeView(Answer):
    """One delivery (one event sent) with its attempts and replays together: how it ended
    last, how many attempts failed, and whether a later one recovered it."""

    deliveryId: str
    position: int
    event: str
    status: str
    attempts: int
    failures: int
    recovered: bool
    replay: bool
    lastStatusCode: int | None
    lastError: str | None
    firstAt: str
    lastAt: str


class OutcomeList(Answer):
    outcomes: list[OutcomeView]
    unresolved: int  # deliveries that failed and stay failed
    pagination: Pagination


class WebhookTested(Answer):
    delivered: bool
    statusCode: int | None
    error: str | None


class DeliveryList(Answer):
    deliveries: list[DeliveryView]
    pagination: Pagination


class ReplayStarted(Answer):
    success: bool
    replaying: int  # how many events will be sent again
    nextPosition: int | None  # where the rest starts, past WEBHOOK_REPLAY_LIMIT; null: none


class CloudWebhookReceived(Answer):
    success: bool
    received: int  # messages and statuses it held that were new
    dropped: int  # changes for numbers that are not this instance's (or no running instance's)


class SandboxPaired(Answer):
    success: bool
    phone: str


class SandboxInboundSent(Answer):
    success: bool
    id: str


class Index(Answer):
    """`GET /` for a client that is not a browser: where to go next."""

    name: str
    version: str
    docs: str
    health: str


# -- health ---------------------------------------------------------------------------------


class EventStoreCheck(Answer):
    ok: bool
    position: int | UnsetType = UNSET
    provider: str | UnsetType = UNSET
    replicaSet: str | UnsetType = UNSET
    error: str | UnsetType = UNSET


class ReadModelsCheck(Answer):
    ok: bool
    position: int
    error: str | UnsetType = UNSET


class ActorsCheck(Answer):
    ok: bool
    instances: int
    running: int
    starting: int  # engine starts waiting for their turn or under way (ENGINE_START_CONCURRENCY)


class ForwardsCheck(Answer):
    sent: int  # requests forwarded to their instance's node
    failed: int  # that node could not be reached (answered 503 instance_moving)
    received: int  # requests other nodes forwarded here


class ClusterCheck(Answer):
    """Several nodes: not ok while this node has stopped its engines for lack of lease
    renewals."""

    ok: bool
    node: str
    leader: str | None
    nodes: int  # live nodes
    leases: int  # instances this node runs
    takeovers: int
    forwards: ForwardsCheck
    lastRenewalMs: float
    draining: bool | UnsetType = UNSET


class HealthChecks(Answer):
    eventStore: EventStoreCheck
    readModels: ReadModelsCheck
    actors: ActorsCheck
    cluster: ClusterCheck | UnsetType = UNSET  # several nodes only


class Health(Answer):
    status: str  # ok or unhealthy (503)
    checks: HealthChecks


# -- cluster --------------------------------------------------------------------------------


class ClusterNodeView(Answer):
    id: str
    url: str
    lastSeen: str
    startedAt: str
    draining: bool
    instances: int  # instances it runs


class ClusterView(Answer):
    node: str  # the node that answered
    leader: str | None
    nodes: list[ClusterNodeView]  # the live nodes
