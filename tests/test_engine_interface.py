"""The engine interface for everything beyond text and media: what each engine report
records, what each command asks of the engine and records, and what an engine without a
capability answers. The instance actor runs on a real event store; the engine is a
scripted one (WhatsApp itself is what the tests simulate), so that every capability is
exercised whichever engines implement it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pykka
import pytest

from actors.engines import capabilities as caps
from actors.engines.base import (
    NO_OPTIONS,
    ContactCard,
    Edit,
    Emit,
    Engine,
    EngineError,
    EngineEvent,
    GroupJoined,
    GroupLeft,
    GroupParticipants,
    GroupSettings,
    Identity,
    IdentityPair,
    Inbound,
    Location,
    Media,
    Poll,
    PollVote,
    Presence,
    Reaction,
    Receipt,
    Revocation,
    SendOptions,
    Sent,
    Template,
)
from actors.instance import InstanceActor, InstanceProxy
from app.eventstore import EventStore, GroupCommitter
from domain.groups import Group, GroupChanges, Participant, ParticipantResult
from domain.instance import Instance, InstanceNotConnected
from domain.messages import (
    EDIT_WINDOW_SECONDS,
    EditWindowClosed,
    InvalidVote,
    MessageRef,
    NotAPoll,
    NotEditable,
    NotOwnMessage,
)
from storage.sqlite.events import environment as sqlite_env

WAIT = 5.0
BOB = "15550000002@s.whatsapp.net"
BOB_LID = "987654321012345@lid"
GROUP = "120363000000000001@g.us"


class Bare(Engine):
    """An engine with the base interface only (connects at once)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.sent = 0
        self.fail: EngineError | None = None

    def connect(self) -> None:
        from actors.engines.base import Connected

        self.emit(Connected("15550000001", "Shop", lid="111111111111111@lid"))

    def disconnect(self) -> None: ...

    def logout(self) -> None: ...

    def forget(self) -> None: ...

    def _did(self, name: str, *args: Any) -> Sent:
        if self.fail is not None:
            raise self.fail
        self.calls.append((name, args))
        self.sent += 1
        return Sent(f"ID{self.sent}", 1_700_000_000 + self.sent, phone="15550000002", lid=BOB_LID)

    def send_text(self, to: str, text: str, options: SendOptions = NO_OPTIONS) -> Sent:
        return self._did("send_text", to, text, options)

    def send_media(
        self, to: str, media: Media, caption: str, options: SendOptions = NO_OPTIONS
    ) -> Sent:
        return self._did("send_media", to, media, caption, options)


GROUP_INFO = Group(
    id=GROUP,
    subject="Team",
    owner="15550000001@s.whatsapp.net",
    created_at=1_700_000_000,
    participants=(
        Participant("15550000001@s.whatsapp.net", "15550000001", None, "superadmin"),
        Participant(BOB, "15550000002", BOB_LID, "member"),
    ),
)


class Full(
    Bare,
    caps.Replies,
    caps.Locations,
    caps.ContactCards,
    caps.Polls,
    caps.Templates,
    caps.Reactions,
    caps.Edits,
    caps.Revocations,
    caps.MediaDownload,
    caps.PresenceUpdates,
    caps.ReadReceipts,
    caps.Groups,
    caps.IdentityLookup,
):
    """An engine with every capability, recording what it is asked."""

    def send_location(self, to: str, location: Location, options: SendOptions) -> Sent:
        return self._did("send_location", to, location, options)

    def send_contacts(self, to: str, cards: tuple[ContactCard, ...], options: SendOptions) -> Sent:
        return self._did("send_contacts", to, cards, options)

    def send_poll(self, to: str, poll: Poll, options: SendOptions) -> Sent:
        return self._did("send_poll", to, poll, options)

    def vote(self, poll: MessageRef, options: tuple[str, ...]) -> Sent:
        return self._did("vote", poll, options)

    def send_template(self, to: str, template: Template) -> Sent:
        return self._did("send_template", to, template)

    def react(self, message: MessageRef, emoji: str) -> Sent:
        return self._did("react", message, emoji)

    def edit(self, message: MessageRef, text: str) -> Sent:
        return self._did("edit", message, text)

    def revoke(self, message: MessageRef) -> Sent:
        return self._did("revoke", message)

    def download(self, message: MessageRef) -> Media:
        self._did("download", message)
        return Media("/tmp/x.jpg", "x.jpg", "image/jpeg", 3)

    def send_presence(self, state: str, to: str | None) -> None:
        self._did("send_presence", state, to)

    def mark_read(self, chat: str, messages: tuple[MessageRef, ...]) -> None:
        self._did("mark_read", chat, messages)

    def create_group(self, subject: str, participants: tuple[str, ...]) -> Group:
        self._did("create_group", subject, participants)
        return GROUP_INFO

    def group_info(self, group_id: str) -> Group:
        self._did("group_info", group_id)
        return GROUP_INFO

    def update_group(self, group_id: str, changes: GroupChanges) -> Group:
        self._did("update_group", group_id, changes)
        return GROUP_INFO.with_changes(changes)

    def change_participants(
        self, group_id: str, action: str, participants: tuple[str, ...]
    ) -> tuple[ParticipantResult, ...]:
        self._did("change_participants", group_id, action, participants)
        return tuple(
            ParticipantResult(p, "ok" if i == 0 else "not_on_whatsapp")
            for i, p in enumerate(participants)
        )

    def invite_code(self, group_id: str, reset: bool) -> str:
        self._did("invite_code", group_id, reset)
        return "CODE2" if reset else "CODE1"

    def join_group(self, code: str) -> Group:
        self._did("join_group", code)
        return GROUP_INFO

    def leave_group(self, group_id: str) -> None:
        self._did("leave_group", group_id)

    def lookup_identity(self, jid: str) -> Identity:
        self._did("lookup_identity", jid)
        return Identity("15550000002", BOB_LID)


class Rig:
    """One instance actor on a real event store, driving the engine the test chose."""

    def __init__(
        self, root: Path, engine_class: type[Bare], webhook: dict[str, Any], settle: bool = True
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.store = EventStore(env=sqlite_env(str(root / "es.db")))
        self.committer = GroupCommitter(self.store)
        self.engines: list[Bare] = []
        instance = Instance("user-1", "Shop", "", "sandbox", webhook, {})
        self.committer.commit(instance.collect_events())
        self.id = instance.id

        def engine_for(instance: Instance, emit: Emit) -> Engine:
            self.engines.append(engine_class(emit))
            return self.engines[-1]

        self.ref = InstanceActor.start(
            self.id,
            self.store.repository.get,
            self.committer,
            engine_for,
            lambda *_: None,
        )
        self.proxy = cast(InstanceProxy, self.ref.proxy())
        if settle:
            self._settle_start()

    def _settle_start(self) -> None:
        """Until the start's reports are recorded (the engine reports Connected from the
        actor's start, which may come after this rig's first call)."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.proxy.position().get(timeout=WAIT)
            if type(self.events()[-1]).__name__ != "ConnectionRequested":
                return
            time.sleep(0.01)
        raise AssertionError("the instance did not finish starting")

    @property
    def engine(self) -> Bare:
        return self.engines[-1]

    def report(self, report: EngineEvent) -> list[Any]:
        """Tell the actor a report; the events it stored for it."""
        before = len(self.events())
        self.ref.tell(report)
        self.proxy.position().get(timeout=WAIT)
        return self.events()[before:]

    def events(self) -> list[Any]:
        return list(self.store.events.get(self.id))

    def close(self) -> None:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)
        self.committer.close()
        self.store.close()


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path, Full, {"enabled": True, "notifyPresence": True})
    yield rig
    rig.close()


@pytest.fixture()
def bare(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path, Bare, {})
    yield rig
    rig.close()


def message(**overrides: Any) -> MessageRef:
    values: dict[str, Any] = {
        "message_id": "M1",
        "chat": BOB,
        "sender": None,
        "from_me": True,
        "message_type": "text",
        "body": "hi",
        "sent_at": 1_700_000_000.0,
    }
    values.update(overrides)
    return MessageRef(**values)


POLL = message(
    message_id="P1",
    message_type="poll",
    body="Lunch?",
    data={"poll": {"question": "Lunch?", "options": ["pizza", "sushi"], "multipleAnswers": False}},
)


# -- reports become events ---------------------------------------------------------------

REPORTS: list[tuple[EngineEvent, str, dict[str, Any]]] = [
    (
        Inbound(
            "IN1",
            "15550000002@s.whatsapp.net",
            "Bob",
            "location",
            "",
            None,
            1_700_000_001,
            chat=GROUP,
            quoted_message_id="M0",
            mentions=("15550000001@s.whatsapp.net",),
            data={"latitude": 1.5, "longitude": 2.5, "name": None, "address": None},
            phone="15550000002",
            lid=BOB_LID,
        ),
        "MessageReceived",
        {
            "chat": GROUP,
            "sender": BOB,
            "quoted_message_id": "M0",
            "mentions": ["15550000001@s.whatsapp.net"],
            "data": {"latitude": 1.5, "longitude": 2.5, "name": None, "address": None},
            "phone": "15550000002",
            "lid": BOB_LID,
        },
    ),
    (
        Receipt("M1", "read", GROUP, participant=BOB, phone="15550000002"),
        "MessageStatusChanged",
        {"message_id": "M1", "status": "read", "participant": BOB, "from_me": True},
    ),
    (
        Reaction("M1", BOB, BOB, "👍", 1_700_000_002, phone="15550000002"),
        "MessageReacted",
        {"message_id": "M1", "chat": BOB, "sender": BOB, "emoji": "👍", "from_me": False},
    ),
    (
        Edit("IN1", BOB, BOB, "new text", 1_700_000_003),
        "MessageEdited",
        {"message_id": "IN1", "body": "new text", "edited_at": 1_700_000_003},
    ),
    (
        Revocation("IN1", BOB, BOB, 1_700_000_004),
        "MessageRevoked",
        {"message_id": "IN1", "sender": BOB, "revoked_at": 1_700_000_004},
    ),
    (
        PollVote("P1", BOB, BOB, ("sushi",), 1_700_000_005),
        "PollVoted",
        {"message_id": "P1", "voter": BOB, "options": ["sushi"]},
    ),
    (
        GroupJoined(GROUP_INFO, "added", BOB),
        "GroupJoined",
        {"group": GROUP_INFO.describe(), "reason": "added", "by": BOB},
    ),
    (
        GroupParticipants(GROUP, "promote", (Participant(BOB, "15550000002", BOB_LID),), BOB),
        "GroupParticipantsChanged",
        {
            "group_id": GROUP,
            "action": "promote",
            "participants": [{"id": BOB, "phone": "15550000002", "lid": BOB_LID}],
        },
    ),
    (
        GroupSettings(GROUP, {"subject": "Team 2", "announce": True}, BOB),
        "GroupSettingsChanged",
        {"group_id": GROUP, "changes": {"subject": "Team 2", "announce": True}, "by": BOB},
    ),
    (
        GroupLeft(GROUP, "removed", BOB),
        "GroupLeft",
        {"group_id": GROUP, "reason": "removed", "by": BOB},
    ),
    (
        Presence(BOB, "composing", None, "15550000002", None),
        "PresenceUpdated",
        {"jid": BOB, "state": "composing", "phone": "15550000002"},
    ),
    (
        IdentityPair("15550000002", BOB_LID),
        "IdentityLearnt",
        {"phone": "15550000002", "lid": BOB_LID},
    ),
]


@pytest.mark.parametrize(
    ("report", "name", "fields"), REPORTS, ids=[type(r[0]).__name__ for r in REPORTS]
)
def test_each_report_is_recorded_as_its_event(
    rig: Rig, report: EngineEvent, name: str, fields: dict[str, Any]
) -> None:
    stored = rig.report(report)
    first = stored[0]
    assert type(first).__name__ == name
    assert {k: getattr(first, k) for k in fields} == fields


def test_a_pair_is_learnt_once_however_many_messages_carry_it(rig: Rig) -> None:
    def inbound(n: int) -> Inbound:
        return Inbound(
            f"IN{n}", BOB_LID, None, "text", "hi", None, 1, phone="15550000002", lid=BOB_LID
        )

    first = rig.report(inbound(1))
    again = rig.report(inbound(2))
    assert [type(e).__name__ for e in first] == ["MessageReceived", "IdentityLearnt"]
    assert [type(e).__name__ for e in again] == ["MessageReceived"]


def test_presence_is_stored_only_for_a_webhook_that_wants_it(tmp_path: Path) -> None:
    """Others' presence is frequent and worthless once past: it becomes an event only
    while webhooks are on with notifyPresence, so that the webhook gets it."""
    quiet = Rig(tmp_path / "a", Full, {"enabled": False, "notifyPresence": False})
    try:
        assert quiet.report(Presence(BOB, "available")) == []
        run(quiet, lambda: quiet.proxy.update({"webhook": {"notifyPresence": True}}))
        assert quiet.report(Presence(BOB, "available")) == []  # webhooks are still off
        run(quiet, lambda: quiet.proxy.update({"webhook": {"enabled": True}}))
        stored = quiet.report(Presence(BOB, "available"))
        assert [type(e).__name__ for e in stored] == ["PresenceUpdated"]
    finally:
        quiet.close()


# -- commands ask the engine, then record --------------------------------------------------


def names(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def run(rig: Rig, call: Callable[[], Any]) -> tuple[Any, list[Any]]:
    """Run a command; its value and the events it stored (durable before we look)."""
    before = len(rig.events())
    outcome = call().get(timeout=WAIT)
    if getattr(outcome, "commit", None) is not None:
        outcome.commit.result(timeout=WAIT)
    value = getattr(outcome, "value", outcome)
    return value, rig.events()[before:]


def test_a_reply_with_mentions_records_what_it_quotes(rig: Rig) -> None:
    quoted = message(message_id="IN7", from_me=False, sender=BOB)
    options = SendOptions(quoted=quoted, mentions=(BOB,))
    value, stored = run(rig, lambda: rig.proxy.send_text(BOB, "answer", None, options=options))
    assert rig.engine.calls[-1] == ("send_text", (BOB, "answer", options))
    (sent, learnt) = stored
    assert (sent.message_id, sent.quoted_message_id, sent.mentions) == (value, "IN7", [BOB])
    # The engine said who the recipient is: the event carries both, and the pair is learnt.
    assert (sent.phone, sent.lid) == ("15550000002", BOB_LID)
    assert (type(learnt).__name__, learnt.phone, learnt.lid) == (
        "IdentityLearnt",
        "15550000002",
        BOB_LID,
    )


@pytest.mark.parametrize(
    ("kind", "call", "data", "body"),
    [
        (
            "location",
            lambda p: p.send_location(BOB, Location(48.85, 2.35, "Louvre", "Paris"), None),
            {
                "location": {
                    "latitude": 48.85,
                    "longitude": 2.35,
                    "name": "Louvre",
                    "address": "Paris",
                }
            },
            "Louvre",
        ),
        (
            "contacts",
            lambda p: p.send_contacts(BOB, (ContactCard("Ann", "15550000009"),), None),
            {"contacts": [{"name": "Ann", "phone": "15550000009"}]},
            "Ann",
        ),
        (
            "poll",
            lambda p: p.send_poll(BOB, Poll("Lunch?", ("pizza", "sushi"), True), None),
            {
                "poll": {
                    "question": "Lunch?",
                    "options": ["pizza", "sushi"],
                    "multipleAnswers": True,
                }
            },
            "Lunch?",
        ),
        (
            "template",
            lambda p: p.send_template(BOB, Template("hello_world", "en_US"), None),
            {"template": {"name": "hello_world", "language": "en_US", "components": []}},
            "hello_world",
        ),
    ],
)
def test_structured_sends_record_their_content(
    rig: Rig, kind: str, call: Any, data: dict[str, Any], body: str
) -> None:
    value, stored = run(rig, lambda: call(rig.proxy))
    sent = stored[0]
    assert (sent.message_type, sent.data, sent.body, sent.message_id) == (kind, data, body, value)


def test_vote_react_edit_revoke_record_what_was_done(rig: Rig) -> None:
    _, voted = run(rig, lambda: rig.proxy.vote(POLL, ("sushi",)))
    assert (voted[0].message_id, voted[0].options, voted[0].from_me, voted[0].voter) == (
        "P1",
        ["sushi"],
        True,
        None,
    )
    _, reacted = run(rig, lambda: rig.proxy.react(message(from_me=False, sender=BOB), "❤️"))
    assert (type(reacted[0]).__name__, reacted[0].emoji, reacted[0].from_me) == (
        "MessageReacted",
        "❤️",
        True,
    )
    fresh = message(sent_at=time.time())
    _, edited = run(rig, lambda: rig.proxy.edit(fresh, "fixed"))
    assert (type(edited[0]).__name__, edited[0].body) == ("MessageEdited", "fixed")
    _, revoked = run(rig, lambda: rig.proxy.revoke(fresh))
    assert names(revoked) == ["MessageRevoked"]
    assert [c[0] for c in rig.engine.calls[-4:]] == ["vote", "react", "edit", "revoke"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.edit(message(from_me=False, sender=BOB), "x"), NotOwnMessage),
        (lambda p: p.edit(message(message_type="image"), "x"), NotEditable),
        (lambda p: p.edit(message(sent_at=0.0), "x"), EditWindowClosed),
        (lambda p: p.revoke(message(from_me=False, sender=BOB)), NotOwnMessage),
        (lambda p: p.vote(message(), ("a",)), NotAPoll),
        (lambda p: p.vote(POLL, ("curry",)), InvalidVote),
        (lambda p: p.vote(POLL, ("pizza", "sushi")), InvalidVote),
    ],
)
def test_refused_message_commands_ask_the_engine_nothing(
    rig: Rig, call: Any, error: type[Exception]
) -> None:
    calls, stored = len(rig.engine.calls), len(rig.events())
    with pytest.raises(error):
        call(rig.proxy).get(timeout=WAIT)
    assert len(rig.engine.calls) == calls
    assert len(rig.events()) == stored


def test_group_commands_record_what_changed(rig: Rig) -> None:
    group, stored = run(rig, lambda: rig.proxy.create_group("Team", (BOB,)))
    assert group == GROUP_INFO
    assert names(stored) == ["GroupCreated"] and stored[0].group == GROUP_INFO.describe()

    changed, stored = run(
        rig, lambda: rig.proxy.update_group(GROUP, GroupChanges(subject="Team 2"))
    )
    assert changed.subject == "Team 2"
    assert (stored[0].changes, stored[0].by) == ({"subject": "Team 2"}, None)

    results, stored = run(
        rig,
        lambda: rig.proxy.change_participants(GROUP, "add", (BOB, "15550000003@s.whatsapp.net")),
    )
    assert [r.status for r in results] == ["ok", "not_on_whatsapp"]
    # Only the participants WhatsApp accepted are recorded.
    assert stored[0].participants == [{"id": BOB, "phone": "15550000002", "lid": None}]

    assert rig.proxy.invite_code(GROUP, False).get(timeout=WAIT) == "CODE1"
    assert rig.proxy.invite_code(GROUP, True).get(timeout=WAIT) == "CODE2"
    _, stored = run(rig, lambda: rig.proxy.join_group("CODE2"))
    assert (names(stored), stored[0].reason) == (["GroupJoined"], "invite")
    _, stored = run(rig, lambda: rig.proxy.leave_group(GROUP))
    assert (names(stored), stored[0].reason) == (["GroupLeft"], "left")


def test_read_marks_presence_and_identity_lookup(rig: Rig) -> None:
    received = message(message_id="IN9", from_me=False, sender=BOB, lid=BOB_LID)
    _, stored = run(rig, lambda: rig.proxy.mark_read(BOB, (received,)))
    assert (names(stored), stored[0].message_ids, stored[0].lid) == (["ChatRead"], ["IN9"], BOB_LID)

    _, stored = run(rig, lambda: rig.proxy.send_presence("composing", BOB))
    assert stored == [] and rig.engine.calls[-1] == ("send_presence", ("composing", BOB))

    found, stored = run(rig, lambda: rig.proxy.lookup_identity(BOB_LID))
    assert found == Identity("15550000002", BOB_LID)
    assert names(stored) == ["IdentityLearnt"]


def test_a_failed_engine_command_records_nothing(rig: Rig) -> None:
    rig.engine.fail = EngineError("WhatsApp said 403", "not_group_admin", 409)
    stored = len(rig.events())
    for call in (
        lambda: rig.proxy.send_poll(BOB, Poll("Q", ("a", "b")), None),
        lambda: rig.proxy.update_group(GROUP, GroupChanges(subject="x")),
        lambda: rig.proxy.react(message(), "👍"),
    ):
        with pytest.raises(EngineError) as refused:
            call().get(timeout=WAIT)
        assert refused.value.code == "not_group_admin"
    assert len(rig.events()) == stored


# -- an engine without a capability --------------------------------------------------------

UNSUPPORTED = [
    (
        lambda p: p.send_text(BOB, "x", None, options=SendOptions(mentions=(BOB,))),
        "reply to a message",
    ),
    (lambda p: p.send_location(BOB, Location(1, 2), None), "send locations"),
    (lambda p: p.send_contacts(BOB, (ContactCard("A", "15550000009"),), None), "contact cards"),
    (lambda p: p.send_poll(BOB, Poll("Q", ("a", "b")), None), "send polls"),
    (lambda p: p.vote(POLL, ("pizza",)), "vote"),
    (lambda p: p.send_template(BOB, Template("t", "en"), None), "templates"),
    (lambda p: p.react(message(), "👍"), "react"),
    (lambda p: p.edit(message(), "x"), "edit messages"),
    (lambda p: p.revoke(message()), "delete messages"),
    (lambda p: p.download_media(message()), "download media"),
    (lambda p: p.send_presence("available", None), "presence"),
    (lambda p: p.mark_read(BOB, ()), "mark messages read"),
    (lambda p: p.create_group("T", (BOB,)), "manage groups"),
    (lambda p: p.group_info(GROUP), "manage groups"),
    (lambda p: p.join_group("CODE"), "manage groups"),
    (lambda p: p.lookup_identity(BOB_LID), "look up"),
]


@pytest.mark.parametrize(("call", "action"), UNSUPPORTED)
def test_an_engine_without_the_capability_answers_unsupported(
    bare: Rig, call: Any, action: str
) -> None:
    stored = len(bare.events())
    with pytest.raises(EngineError) as refused:
        call(bare.proxy).get(timeout=WAIT)
    assert (refused.value.code, refused.value.status) == ("unsupported_by_engine", 400)
    assert str(refused.value).startswith("The sandbox engine cannot ")
    assert action in str(refused.value)
    assert bare.engine.calls == [] and len(bare.events()) == stored


def test_a_plain_send_needs_no_capability(bare: Rig) -> None:
    value, stored = run(bare, lambda: bare.proxy.send_text(BOB, "plain", None))
    assert names(stored)[0] == "MessageSent" and stored[0].message_id == value


def test_commands_need_a_connection(tmp_path: Path) -> None:
    class Offline(Full):
        def connect(self) -> None:
            pass

    rig = Rig(tmp_path, Offline, {}, settle=False)
    try:
        with pytest.raises(InstanceNotConnected):
            rig.proxy.react(message(), "👍").get(timeout=WAIT)
        assert rig.engine.calls == []
    finally:
        rig.close()


# -- the rules, and events stored before these fields existed ---------------------------------


def test_the_edit_window_is_fifteen_minutes() -> None:
    sent = message(sent_at=1000.0)
    sent.check_editable(1000.0 + EDIT_WINDOW_SECONDS)
    with pytest.raises(EditWindowClosed):
        sent.check_editable(1000.0 + EDIT_WINDOW_SECONDS + 1)
    with pytest.raises(NotEditable):
        message(revoked=True).check_editable(1000.0)
