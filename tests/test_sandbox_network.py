"""The sandbox network between sandbox instances: groups, replies, reactions, edits,
revocations, polls, presence, read marks and LIDs, as each instance records them.

Instance actors run on a real event store; the sandbox groups live in that store too,
so a second network over the same store (another node, or after a restart) sees them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pykka
import pytest

from actors.engines.base import (
    ContactCard,
    EngineError,
    Location,
    Media,
    Poll,
    SendOptions,
)
from actors.engines.sandbox import sandbox_engine
from actors.engines.sandbox_network import SandboxGroups, SandboxNetwork, lid_for
from actors.instance import InstanceActor, InstanceProxy
from app.eventstore import EventStore, GroupCommitter
from domain.groups import GroupChanges, GroupNotFound, NotGroupAdmin, NotGroupParticipant
from domain.instance import Instance
from domain.messages import MessageRef
from storage.sqlite.events import environment as sqlite_env

WAIT = 5.0
A, B, C, D = "15550000001", "15550000002", "15550000003", "15550000004"


def jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


@dataclass
class Net:
    store: EventStore
    committer: GroupCommitter
    network: SandboxNetwork
    actors: dict[str, pykka.ActorRef[Any]]
    ids: dict[str, UUID]

    def join(
        self, phone: str, lid: str | None = None, webhook: dict[str, Any] | None = None
    ) -> None:
        """A sandbox instance paired as `phone`."""
        instance = Instance("user-1", f"I{phone[-1]}", "", "sandbox", webhook or {}, {})
        self.committer.commit(instance.collect_events())
        network = self.network

        def engine_for(aggregate: Instance, emit: Any) -> Any:
            return sandbox_engine(network, aggregate, emit)

        ref = InstanceActor.start(
            instance.id,
            self.store.repository.get,
            self.committer,
            engine_for,
            lambda *_: None,
        )
        self.actors[phone], self.ids[phone] = ref, instance.id
        until(lambda: self.proxy(phone).state().get(timeout=WAIT)["hasQr"])
        self.proxy(phone).sandbox_scan(phone, lid).get(timeout=WAIT)

    def proxy(self, phone: str) -> InstanceProxy:
        return cast(InstanceProxy, self.actors[phone].proxy())

    def do(self, phone: str, call: Callable[[InstanceProxy], Any]) -> Any:
        """Run a command of `phone`'s instance; its value once its events are stored, and
        every instance's reports recorded."""
        outcome = call(self.proxy(phone)).get(timeout=WAIT)
        if getattr(outcome, "commit", None) is not None:
            outcome.commit.result(timeout=WAIT)
        self.settle()
        return getattr(outcome, "value", outcome)

    def settle(self) -> None:
        for ref in self.actors.values():
            cast(InstanceProxy, ref.proxy()).position().get(timeout=WAIT)

    def events(self, phone: str, name: str | None = None) -> list[Any]:
        found = list(self.store.events.get(self.ids[phone]))
        return [e for e in found if name is None or type(e).__name__ == name]

    def last(self, phone: str, name: str) -> Any:
        found = self.events(phone, name)
        assert found, f"{phone} recorded no {name}"
        return found[-1]

    def ref(self, phone: str, message_id: str) -> MessageRef:
        """A message as `phone`'s instance holds it (what the read models give a route)."""
        for e in self.events(phone):
            if getattr(e, "message_id", None) != message_id:
                continue
            if type(e).__name__ == "MessageSent":
                return MessageRef(
                    message_id, e.to, None, True, e.message_type, e.body, float(e.sent_at),
                    e.data, e.media, phone=e.phone, lid=e.lid,
                )  # fmt: skip
            if type(e).__name__ == "MessageReceived":
                return MessageRef(
                    message_id, e.chat, e.sender, False, e.message_type, e.body,
                    float(e.received_at), e.data, e.media, phone=e.phone, lid=e.lid,
                )  # fmt: skip
        raise AssertionError(f"{phone} never saw {message_id}")


def until(condition: Callable[[], Any]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def open_net(path: Path) -> tuple[EventStore, GroupCommitter]:
    store = EventStore(env=sqlite_env(str(path)))
    return store, GroupCommitter(store)


@pytest.fixture()
def net(tmp_path: Path) -> Iterator[Net]:
    store, committer = open_net(tmp_path / "es.db")
    network = SandboxNetwork(SandboxGroups(store.repository.get, committer.commit), tmp_path)
    world = Net(store, committer, network, {}, {})
    try:
        yield world
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)
        committer.close()
        store.close()


# -- groups ---------------------------------------------------------------------------------


def test_a_group_message_reaches_every_member_with_receipts_per_participant(net: Net) -> None:
    for phone in (A, B, C):
        net.join(phone)
    # D has no sandbox instance: it is in the group, but nothing reaches it.
    group = net.do(A, lambda p: p.create_group("Team", (jid(B), jid(C), jid(D))))
    assert (group.subject, group.owner) == ("Team", jid(A))
    assert {(x.phone, x.role) for x in group.participants} == {
        (A, "superadmin"),
        (B, "member"),
        (C, "member"),
        (D, "member"),
    }
    assert net.last(A, "GroupCreated").group["id"] == group.id
    joined = net.last(B, "GroupJoined")
    assert (joined.group["id"], joined.reason, joined.by) == (group.id, "added", jid(A))

    message_id = net.do(A, lambda p: p.send_text(group.id, "hello team", None))
    sent = net.last(A, "MessageSent")
    assert sorted(sent.recipients) == [jid(B), jid(C), jid(D)]
    for phone in (B, C):
        got = net.last(phone, "MessageReceived")
        assert (got.message_id, got.chat, got.sender) == (message_id, group.id, jid(A))
        assert (got.phone, got.lid) == (A, lid_for(A))
    receipts = net.events(A, "MessageStatusChanged")
    assert sorted((r.participant, r.status) for r in receipts) == [
        (jid(B), "delivered"),
        (jid(C), "delivered"),
    ]

    # B reads it: A learns who read, in the group.
    net.do(B, lambda p: p.mark_read(group.id, (net.ref(B, message_id),)))
    read = net.last(A, "MessageStatusChanged")
    assert (read.status, read.remote_jid, read.participant) == ("read", group.id, jid(B))


def test_only_admins_change_a_locked_group_or_send_to_an_announce_one(net: Net) -> None:
    for phone in (A, B):
        net.join(phone)
    group = net.do(A, lambda p: p.create_group("Rules", (jid(B),)))
    # Unlocked: any member edits the subject.
    net.do(B, lambda p: p.update_group(group.id, GroupChanges(subject="B's rules")))
    changed = net.last(A, "GroupSettingsChanged")
    assert (changed.changes, changed.by) == ({"subject": "B's rules"}, jid(B))
    # Only admins lock and announce.
    with pytest.raises(NotGroupAdmin):
        net.do(B, lambda p: p.update_group(group.id, GroupChanges(locked=True)))
    net.do(A, lambda p: p.update_group(group.id, GroupChanges(locked=True, announce=True)))
    assert net.last(B, "GroupSettingsChanged").changes == {"announce": True, "locked": True}
    before = len(net.events(B))
    with pytest.raises(NotGroupAdmin):
        net.do(B, lambda p: p.update_group(group.id, GroupChanges(description="mine")))
    with pytest.raises(NotGroupAdmin):
        net.do(B, lambda p: p.send_text(group.id, "may I?", None))
    with pytest.raises(NotGroupAdmin):
        net.do(B, lambda p: p.change_participants(group.id, "add", (jid(C),)))
    assert len(net.events(B)) == before  # refused changes record nothing
    # Promoted, B may.
    net.do(A, lambda p: p.change_participants(group.id, "promote", (jid(B),)))
    net.do(B, lambda p: p.send_text(group.id, "now I may", None))
    assert net.last(A, "MessageReceived").body == "now I may"


def test_participants_invites_and_leaving(net: Net) -> None:
    for phone in (A, B, C, D):
        net.join(phone)
    group = net.do(A, lambda p: p.create_group("Club", (jid(B),)))

    results = net.do(
        A, lambda p: p.change_participants(group.id, "add", (jid(C), jid(B), lid_for(D)))
    )
    # D was named by its LID: the network knows whose it is.
    assert [(r.id, r.status) for r in results] == [
        (jid(C), "ok"),
        (jid(B), "already_participant"),
        (lid_for(D), "ok"),
    ]
    assert net.last(C, "GroupJoined").reason == "added"
    added = net.last(B, "GroupParticipantsChanged")
    assert (added.action, {p["phone"] for p in added.participants}) == ("add", {C, D})

    results = net.do(A, lambda p: p.change_participants(group.id, "remove", (jid(C), jid(A))))
    assert [r.status for r in results] == ["ok", "not_allowed"]  # the creator stays
    left = net.last(C, "GroupLeft")
    assert (left.group_id, left.reason, left.by) == (group.id, "removed", jid(A))
    with pytest.raises(NotGroupParticipant):
        net.do(C, lambda p: p.send_text(group.id, "still here?", None))

    # Invites: C comes back by the code; a reset code no longer opens the group.
    code = net.do(A, lambda p: p.invite_code(group.id, False))
    with pytest.raises(NotGroupAdmin):
        net.do(B, lambda p: p.invite_code(group.id, False))
    again = net.do(C, lambda p: p.join_group(code))
    assert C in {x.phone for x in again.participants}
    assert net.last(C, "GroupJoined").reason == "invite"
    joined = net.last(A, "GroupParticipantsChanged")
    assert (joined.action, joined.by) == ("add", jid(C))
    fresh = net.do(A, lambda p: p.invite_code(group.id, True))
    assert fresh != code
    net.do(C, lambda p: p.leave_group(group.id))
    with pytest.raises(GroupNotFound):
        net.do(C, lambda p: p.join_group(code))
    gone = net.last(B, "GroupParticipantsChanged")
    assert (gone.action, gone.by, gone.participants[0]["phone"]) == ("remove", jid(C), C)
    assert net.last(C, "GroupLeft").reason == "left"


def test_groups_live_in_the_event_store(net: Net, tmp_path: Path) -> None:
    """Another network over the same store (another node, or after a restart) sees the
    group as it is, changes included."""
    net.join(A)
    group = net.do(A, lambda p: p.create_group("Kept", (jid(B),)))
    net.do(A, lambda p: p.update_group(group.id, GroupChanges(description="about")))
    other = SandboxGroups(net.store.repository.get, net.committer.commit)
    kept = other.get(group.id)
    assert (kept.subject, kept.description, kept.members) == (
        "Kept",
        "about",
        {A: "superadmin", B: "member"},
    )


# -- one-to-one: replies, reactions, edits, revocations, polls -----------------------------


def test_what_a_sender_does_to_a_message_reaches_the_recipient(net: Net) -> None:
    net.join(A)
    net.join(B)
    first = net.do(A, lambda p: p.send_text(jid(B), "lunch at 1?", None))
    # B replies quoting it and mentioning A.
    quoted = net.ref(B, first)
    reply = net.do(
        B,
        lambda p: p.send_text(
            jid(A), "yes", None, options=SendOptions(quoted=quoted, mentions=(jid(A),))
        ),
    )
    got = net.last(A, "MessageReceived")
    assert (got.message_id, got.quoted_message_id, got.mentions) == (reply, first, [jid(A)])

    net.do(B, lambda p: p.react(net.ref(B, first), "👍"))
    reacted = net.last(A, "MessageReacted")
    assert (reacted.message_id, reacted.emoji, reacted.sender, reacted.from_me) == (
        first,
        "👍",
        jid(B),
        False,
    )
    assert net.last(B, "MessageReacted").from_me is True

    net.do(A, lambda p: p.edit(net.ref(A, first), "lunch at 2?"))
    edited = net.last(B, "MessageEdited")
    assert (edited.message_id, edited.body, edited.sender) == (first, "lunch at 2?", jid(A))

    net.do(A, lambda p: p.revoke(net.ref(A, first)))
    assert net.last(B, "MessageRevoked").message_id == first


def test_polls_and_votes(net: Net) -> None:
    net.join(A)
    net.join(B)
    poll = net.do(A, lambda p: p.send_poll(jid(B), Poll("Where?", ("park", "beach")), None))
    got = net.last(B, "MessageReceived")
    assert (got.message_type, got.data) == (
        "poll",
        {"poll": {"question": "Where?", "options": ["park", "beach"], "multipleAnswers": False}},
    )
    net.do(B, lambda p: p.vote(net.ref(B, poll), ("beach",)))
    vote = net.last(A, "PollVoted")
    assert (vote.message_id, vote.voter, vote.options) == (poll, jid(B), ["beach"])
    net.do(B, lambda p: p.vote(net.ref(B, poll), ()))  # withdrawn
    assert net.last(A, "PollVoted").options == []


def test_locations_and_contact_cards_arrive_as_sent(net: Net) -> None:
    net.join(A)
    net.join(B)
    net.do(A, lambda p: p.send_location(jid(B), Location(48.8584, 2.2945, "Tower"), None))
    place = net.last(B, "MessageReceived")
    assert (place.message_type, place.body, place.data["location"]["latitude"]) == (
        "location",
        "Tower",
        48.8584,
    )
    net.do(A, lambda p: p.send_contacts(jid(B), (ContactCard("Ann", "15550009999"),), None))
    card = net.last(B, "MessageReceived")
    assert card.data == {"contacts": [{"name": "Ann", "phone": "15550009999"}]}


# -- identity: LIDs -----------------------------------------------------------------------------


def test_a_chat_by_lid_hides_numbers_and_a_chat_by_phone_shows_both(net: Net) -> None:
    net.join(A)
    net.join(B, lid="777000111222333@lid")
    # A knows only B's LID: each sees the other by LID, without a number.
    net.do(A, lambda p: p.send_text("777000111222333@lid", "hi by lid", None))
    sent = net.last(A, "MessageSent")
    assert (sent.to, sent.phone, sent.lid) == ("777000111222333@lid", None, "777000111222333@lid")
    got = net.last(B, "MessageReceived")
    assert (got.sender, got.phone, got.lid) == (lid_for(A), None, lid_for(A))
    assert net.events(B, "IdentityLearnt") == []
    # Then by number: both sides learn the pair.
    net.do(A, lambda p: p.send_text(jid(B), "hi by number", None))
    got = net.last(B, "MessageReceived")
    assert (got.sender, got.phone, got.lid) == (jid(A), A, lid_for(A))
    assert (net.last(B, "IdentityLearnt").phone, net.last(B, "IdentityLearnt").lid) == (
        A,
        lid_for(A),
    )
    assert net.last(A, "IdentityLearnt").lid == "777000111222333@lid"
    found = net.do(A, lambda p: p.lookup_identity("777000111222333@lid"))
    assert (found.phone, found.lid) == (B, "777000111222333@lid")


def test_a_lid_belongs_to_one_number(net: Net) -> None:
    net.join(A, lid="555000111222333@lid")
    instance = Instance("user-1", "X", "", "sandbox", {}, {})
    net.committer.commit(instance.collect_events())
    with pytest.raises(EngineError, match="belongs to another"):
        net.network.join(B, cast(Any, object()), "555000111222333@lid")


def test_pairing_survives_a_restart_without_a_session_file(net: Net, tmp_path: Path) -> None:
    net.join(A, lid="444000111222333@lid")
    net.settle()
    net.actors[A].stop(block=True)
    loaded = net.store.repository.get(net.ids[A])
    assert (loaded.phone, loaded.lid) == (A, "444000111222333@lid")
    engine = sandbox_engine(net.network, loaded, lambda report: None)
    assert engine.paired == (A, "444000111222333@lid")
    assert not list(tmp_path.rglob("*.json"))


# -- presence, media -------------------------------------------------------------------------


def test_presence_reaches_the_chat_and_is_kept_only_for_a_webhook(net: Net) -> None:
    net.join(A)
    net.join(B, webhook={"enabled": True, "notifyPresence": True})
    net.join(C)
    net.do(A, lambda p: p.send_presence("composing", jid(B)))
    net.do(A, lambda p: p.send_presence("composing", jid(C)))
    presence = net.last(B, "PresenceUpdated")
    assert (presence.jid, presence.state, presence.phone) == (jid(A), "composing", A)
    assert net.events(C, "PresenceUpdated") == []  # C's webhooks do not ask for it


def test_media_is_downloaded_from_where_the_server_keeps_it(net: Net, tmp_path: Path) -> None:
    net.join(A)
    net.join(B)
    file = tmp_path / "photo.jpg"
    file.write_bytes(b"\xff\xd8\xff jpeg")
    media = Media(str(file), "photo.jpg", "image/jpeg", file.stat().st_size)
    message_id = net.do(A, lambda p: p.send_media(jid(B), media, "look", None))
    fetched = net.do(B, lambda p: p.download_media(net.ref(B, message_id)))
    assert (Path(fetched.path).read_bytes(), fetched.mimetype) == (file.read_bytes(), "image/jpeg")
    text = net.do(A, lambda p: p.send_text(jid(B), "no media", None))
    with pytest.raises(EngineError) as missing:
        net.do(B, lambda p: p.download_media(net.ref(B, text)))
    assert (missing.value.code, missing.value.status) == ("no_media", 404)
