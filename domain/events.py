"""Every event the domain records, and how each one shows outside the domain.

One entry per event class, and every field decided (no defaults): its name in the audit
trail (the event history's `type`, and its `types=` filter); the action it is logged as in
its instance's activity log, or None when the activity log leaves it out; the webhook event
it is sent as, or None when it is never sent. Whatever else names events reads them from
here: the audit trail, the webhook payloads, the read-model caches that forget what an event
changes, the aggregates that are snapshotted. `tests/test_events.py` fails when an event
class of the domain is missing, or when the activity log or the webhooks handle a different
set of events than this catalogue says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.instance import Instance
from domain.sandbox import SandboxGroup, SandboxRelay
from domain.session import Session
from domain.usage import UsageLedger
from domain.user import User
from domain.webhook import WebhookLog

AGGREGATES: tuple[type[Any], ...] = (
    Instance,
    User,
    Session,
    UsageLedger,
    WebhookLog,
    SandboxRelay,
    SandboxGroup,
)


def topic(cls: type[Any]) -> str:
    """The topic eventsourcing stores a class's events under (`domain.user:User.Registered`)."""
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass(frozen=True)
class EventType:
    """How one domain event class shows outside the domain."""

    cls: type[Any]
    name: str  # in the audit trail
    activity: str | None  # the activity log's action (None: not in the activity log)
    webhook: str | None  # the webhook event it is sent as (None: never sent)

    @property
    def topic(self) -> str:
        return topic(self.cls)

    @property
    def aggregate(self) -> type[Any]:
        """The aggregate class whose event this is."""
        return next(a for a in AGGREGATES if self.cls.__qualname__.startswith(a.__name__ + "."))


EVENT_TYPES: tuple[EventType, ...] = (
    # -- instances -------------------------------------------------------------------------
    EventType(Instance.Created, "InstanceCreated", "instance_created", None),
    EventType(Instance.Updated, "InstanceUpdated", "instance_updated", None),
    EventType(Instance.Deleted, "InstanceDeleted", "instance_deleted", None),
    # ("reconnect_requested" when its reason is a reconnect)
    EventType(Instance.ConnectionRequested, "ConnectionRequested", "connection_requested", None),
    EventType(Instance.QrReceived, "QrReceived", "qr_received", "qr_received"),
    EventType(Instance.QrExpired, "QrExpired", "qr_expired", None),
    EventType(
        Instance.ConnectionOpened, "ConnectionOpened", "connection_opened", "connection_opened"
    ),
    EventType(
        Instance.ConnectionClosed, "ConnectionClosed", "connection_closed", "connection_closed"
    ),
    EventType(Instance.LoggedOut, "LoggedOut", "logged_out", "connection_closed"),
    # A ban and a refused client version close the connection, as webhooks tell it.
    EventType(
        Instance.TemporarilyBanned, "TemporarilyBanned", "temporary_ban", "connection_closed"
    ),
    EventType(Instance.ClientOutdated, "ClientOutdated", "client_outdated", "connection_closed"),
    # Keyed sends: started before the engine sends; failed (nothing went out, the key may
    # be used again); outcome unknown (it may have gone out: worth an activity line).
    EventType(Instance.SendStarted, "SendStarted", None, None),
    EventType(Instance.SendFailed, "SendFailed", None, None),
    EventType(Instance.SendOutcomeUnknown, "SendOutcomeUnknown", "send_outcome_unknown", None),
    # Its owner was deactivated, then brought back (webhooks are off meanwhile).
    EventType(Instance.Disabled, "InstanceDisabled", "instance_disabled", None),
    EventType(Instance.Enabled, "InstanceEnabled", "instance_enabled", None),
    # Messages have read models of their own (chat history, statistics), not activity lines.
    EventType(Instance.MessageSent, "MessageSent", None, "message_sent"),
    EventType(Instance.MessageReceived, "MessageReceived", None, "message_received"),
    EventType(Instance.MessageUndecryptable, "MessageUndecryptable", None, "message_undecryptable"),
    EventType(Instance.MediaSaved, "MediaSaved", None, None),
    EventType(Instance.MessageStatusChanged, "MessageStatusChanged", None, "message_status"),
    EventType(Instance.ContactsSynced, "ContactsSynced", None, None),
    # What the network says of the account ("account_update" when its kind is one).
    EventType(Instance.NoticeReceived, "NoticeReceived", "platform_error", None),
    # What happens to messages shows in their chat history; each has a webhook, off by
    # default (notifyMessageUpdates).
    EventType(Instance.MessageReacted, "MessageReacted", None, "message_reaction"),
    EventType(Instance.MessageEdited, "MessageEdited", None, "message_edited"),
    EventType(Instance.MessageRevoked, "MessageRevoked", None, "message_revoked"),
    EventType(Instance.PollVoted, "PollVoted", None, "poll_vote"),
    EventType(Instance.ChatRead, "ChatRead", None, None),
    # Groups are logged in the activity log and sent as group_update (notifyGroups).
    EventType(Instance.GroupCreated, "GroupCreated", "group_created", "group_update"),
    EventType(Instance.GroupJoined, "GroupJoined", "group_joined", "group_update"),
    EventType(Instance.GroupLeft, "GroupLeft", "group_left", "group_update"),
    EventType(
        Instance.GroupParticipantsChanged,
        "GroupParticipantsChanged",
        "group_participants_changed",
        "group_update",
    ),
    EventType(
        Instance.GroupSettingsChanged,
        "GroupSettingsChanged",
        "group_settings_changed",
        "group_update",
    ),
    EventType(Instance.IdentityLearnt, "IdentityLearnt", None, None),
    # Stored only while a webhook asks for others' presence (notifyPresence).
    EventType(Instance.PresenceUpdated, "PresenceUpdated", None, "presence_update"),
    # -- users (the activity log and webhooks are an instance's) -----------------------------
    EventType(User.Registered, "UserRegistered", None, None),
    EventType(User.PasswordChanged, "PasswordChanged", None, None),
    EventType(User.ApiKeyRotated, "ApiKeyRotated", None, None),
    EventType(User.ProfileUpdated, "ProfileUpdated", None, None),
    EventType(User.RoleChanged, "RoleChanged", None, None),
    EventType(User.Deactivated, "UserDeactivated", None, None),
    EventType(User.Reactivated, "UserReactivated", None, None),
    EventType(User.LimitsChanged, "LimitsChanged", None, None),
    # Logged in the activity of the instance it names, if it names one.
    EventType(User.QuotaExceeded, "QuotaExceeded", "quota_exceeded", None),
    # -- web console sign-ins (the audit trail has them; no instance's) ----------------------
    EventType(Session.Started, "SessionStarted", None, None),
    EventType(Session.Ended, "SessionEnded", None, None),
    # -- usage and webhook outcomes -----------------------------------------------------------
    EventType(UsageLedger.Opened, "UsageLedgerOpened", None, None),
    EventType(UsageLedger.UsageRecorded, "UsageRecorded", None, None),
    EventType(WebhookLog.Opened, "WebhookLogOpened", None, None),
    # Deliveries have a read model of their own; a failure is worth an activity line.
    EventType(WebhookLog.WebhookDelivered, "WebhookDelivered", None, None),
    EventType(WebhookLog.WebhookFailed, "WebhookFailed", "webhook_failed", None),
    # -- the sandbox network between nodes (a relay is its instance's report, shown there) ------
    EventType(SandboxRelay.Relayed, "SandboxRelayed", None, None),
    # -- the sandbox network's groups (each member instance records its own view) ----------
    EventType(SandboxGroup.Created, "SandboxGroupCreated", None, None),
    EventType(SandboxGroup.ParticipantsChanged, "SandboxGroupParticipantsChanged", None, None),
    EventType(SandboxGroup.SettingsChanged, "SandboxGroupSettingsChanged", None, None),
    EventType(SandboxGroup.InviteReset, "SandboxGroupInviteReset", None, None),
)

BY_CLASS: dict[type[Any], EventType] = {e.cls: e for e in EVENT_TYPES}
BY_NAME: dict[str, EventType] = {e.name: e for e in EVENT_TYPES}


def topics_of(aggregate: type[Any]) -> frozenset[str]:
    """The topics of every event of one aggregate class."""
    return frozenset(e.topic for e in EVENT_TYPES if e.aggregate is aggregate)


def webhook_name(event: Any) -> str | None:
    """The webhook event a domain event is sent as (None: never sent)."""
    found = BY_CLASS.get(type(event))
    return found.webhook if found is not None else None
