"""What whatsmeow reports about earlier messages, groups and people, inside a real server.

The instance connects through a `HangingProxy` (nothing leaves the machine) and the test
pushes neonize events into its child through the child's test FIFO, as whatsmeow would
dispatch them (see tests/whatsmeow.py); what the API shows is what a user would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.server import Api, Server, running_server, wait_until
from tests.whatsmeow import GROUP, LID, HangingProxy, children, hanging_proxy, inject, jid, listens
from tests.whatsmeow import message_event as event

neonize = pytest.importorskip("neonize")
pytestmark = pytest.mark.sqlite_only("the mapping does not depend on storage; SQLite is enough")

ALICE = "15550007777"
GROUP_JID = "120363000000000009@g.us"


@pytest.fixture(scope="module")
def proxy() -> Iterator[HangingProxy]:
    with hanging_proxy() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("whatsmeow-features"), WHATSMEOW_TEST_EVENTS="1"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: Server) -> Api:
    return Api.login(server)


@pytest.fixture(scope="module")
def instance(server: Server, api: Api, proxy: HangingProxy) -> str:
    created = api.create_instance("Features", engine="whatsmeow", proxy=proxy.url)
    return str(created["id"])


def push(server: Server, instance_id: str, neonize_event: Any) -> None:
    directory = server.root / "instances" / instance_id
    pid: int = wait_until(lambda: len(found := children(directory)) == 1 and found[0], 30)
    wait_until(lambda: listens(directory, pid), 30)
    inject(directory, pid, neonize_event)


def history_row(api: Api, instance_id: str, chat: str, message_id: str, ready: Any) -> Any:
    def probe() -> Any:
        answer = api.http.get(f"/api/instances/{instance_id}/chats/{chat}/messages")
        rows = [m for m in answer.json()["messages"] if m["messageId"] == message_id]
        return rows[0] if rows and ready(rows[0]) else None

    return wait_until(probe, 30)


def test_reactions_edits_and_revocations_change_the_history(
    server: Server, api: Api, instance: str
) -> None:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        Message,
        ProtocolMessage,
        ReactionMessage,
    )

    push(server, instance, event("lunch at noon?", message_id="3EB0LUNCH"))
    history_row(api, instance, ALICE, "3EB0LUNCH", lambda m: True)
    key = MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", ID="3EB0LUNCH")
    push(
        server,
        instance,
        event("", message_id="R", reactionMessage=ReactionMessage(key=key, text="🍕")),
    )
    edit = ProtocolMessage(
        key=key, type=ProtocolMessage.MESSAGE_EDIT, editedMessage=Message(conversation="at one?")
    )
    push(server, instance, event("", message_id="E", protocolMessage=edit))
    row = history_row(api, instance, ALICE, "3EB0LUNCH", lambda m: m["edited"] and m["reactions"])
    assert row["content"] == "at one?"
    assert [(r["from"], r["emoji"]) for r in row["reactions"]] == [
        (f"{ALICE}@s.whatsapp.net", "🍕")
    ]
    revoke = ProtocolMessage(key=key, type=ProtocolMessage.REVOKE)
    push(server, instance, event("", message_id="D", protocolMessage=revoke))
    assert history_row(api, instance, ALICE, "3EB0LUNCH", lambda m: m["revoked"])["content"] == ""
    # None of the three is a message of its own.
    answer = api.http.get(f"/api/instances/{instance}/chats/{ALICE}/messages")
    ids = [m["messageId"] for m in answer.json()["messages"]]
    assert ids == ["3EB0LUNCH"]


def test_only_the_author_edits_or_revokes_a_message(
    server: Server, api: Api, instance: str
) -> None:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        Message,
        ProtocolMessage,
        ReactionMessage,
    )

    # An edit or a revocation names its message by id alone, and whoever was sent a
    # message knows its id; WhatsApp's apps take one only from the message's author.
    # Alice tries to rewrite what the instance sent her (from its phone) and what Bob
    # wrote in his own chat, then to delete both.
    bob = "15550006666"
    ours = event("the price is 100", chat=jid(ALICE), sender=jid("15550001111"),
                 from_me=True, message_id="3EB0OURS")  # fmt: skip
    push(server, instance, ours)
    push(server, instance, event("see you", sender=jid(bob), message_id="3EB0BOBS"))
    for chat, message_id in ((ALICE, "3EB0OURS"), (bob, "3EB0BOBS")):
        key = MessageKey(remoteJID=f"{chat}@s.whatsapp.net", ID=message_id, fromMe=chat == ALICE)
        edit = ProtocolMessage(
            key=key, type=ProtocolMessage.MESSAGE_EDIT, editedMessage=Message(conversation="1000")
        )
        push(server, instance, event("", message_id=f"E{chat}", protocolMessage=edit))
        revoke = ProtocolMessage(key=key, type=ProtocolMessage.REVOKE)
        push(server, instance, event("", message_id=f"D{chat}", protocolMessage=revoke))
    # Then Alice reacts in her chat: once it is seen, the edits and revocations before it were.
    key = MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", ID="3EB0OURS", fromMe=True)
    push(server, instance, event("", message_id="R", reactionMessage=ReactionMessage(key=key, text="👀")))  # fmt: skip
    history_row(api, instance, ALICE, "3EB0OURS", lambda m: m["reactions"])
    for chat, message_id, text in ((ALICE, "3EB0OURS", "the price is 100"), (bob, "3EB0BOBS", "see you")):  # fmt: skip
        row = history_row(api, instance, chat, message_id, lambda m: True)
        assert (row["content"], row["edited"], row["revoked"]) == (text, False, False), row
    chats = api.http.get(f"/api/instances/{instance}/chats").json()["chats"]
    last = {c["id"]: c["lastMessage"]["content"] for c in chats}
    assert (last[f"{ALICE}@s.whatsapp.net"], last[f"{bob}@s.whatsapp.net"]) == (
        "the price is 100",
        "see you",
    )


def test_a_reaction_counts_only_in_the_chat_it_came_from(
    server: Server, api: Api, instance: str
) -> None:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ReactionMessage

    # A reaction too names its message by id alone: Alice's to a message of Carol's chat
    # is not shown there. Carol's own comes after it: once hers is seen, Alice's was.
    carol = "15550005555"
    push(server, instance, event("dinner?", sender=jid(carol), message_id="3EB0CAROL"))
    key = MessageKey(remoteJID=f"{carol}@s.whatsapp.net", ID="3EB0CAROL")
    for sender, emoji in ((ALICE, "🙃"), (carol, "🍲")):
        reaction = ReactionMessage(key=key, text=emoji)
        push(server, instance, event("", sender=jid(sender), message_id=f"R{sender}", reactionMessage=reaction))  # fmt: skip
    row = history_row(api, instance, carol, "3EB0CAROL", lambda m: m["reactions"])
    assert [(r["from"], r["emoji"]) for r in row["reactions"]] == [
        (f"{carol}@s.whatsapp.net", "🍲")
    ]


def test_a_group_joined_and_a_location_written_in_it(
    server: Server, api: Api, instance: str
) -> None:
    from neonize.proto.Neonize_pb2 import GroupInfo, GroupName, GroupParticipant, JoinedGroup
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import LocationMessage

    group = jid("120363000000000009", GROUP)
    info = GroupInfo(
        JID=group,
        OwnerJID=jid(ALICE),
        GroupName=GroupName(Name="Lunch club"),
        Participants=[GroupParticipant(JID=jid(ALICE), IsSuperAdmin=True)],
    )
    push(server, instance, JoinedGroup(Sender=jid(ALICE), GroupInfo=info))

    def listed() -> list[Any]:
        answer = api.http.get(f"/api/whatsapp/{instance}/groups").json()
        return [g for g in answer["groups"] if g["id"] == GROUP_JID]

    groups = wait_until(listed, 30)
    assert groups[0]["subject"] == "Lunch club"
    push(
        server,
        instance,
        event(
            "",
            chat=group,
            sender=jid(ALICE),
            sender_alt=jid("99887766", LID),
            group=True,
            message_id="3EB0PLACE",
            locationMessage=LocationMessage(degreesLatitude=1.5, degreesLongitude=2.5),
        ),
    )
    row = history_row(api, instance, GROUP_JID, "3EB0PLACE", lambda m: True)
    assert row["location"] == {"latitude": 1.5, "longitude": 2.5, "name": None, "address": None}
    # In a group the author is the participant, with both of its names.
    assert (row["sender"], row["phone"], row["lid"]) == (
        f"{ALICE}@s.whatsapp.net",
        ALICE,
        "99887766@lid",
    )

    # In a group, Alice's own edit changes her message, whichever of her two names she
    # writes by; another member's edit after it changes nothing.
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        Message,
        ProtocolMessage,
        ReactionMessage,
    )

    alice = {"sender": jid(ALICE), "sender_alt": jid("99887766", LID)}
    push(server, instance, event("lunch at 12", chat=group, group=True, message_id="3EB0NOON", **alice))  # fmt: skip
    key = MessageKey(remoteJID=GROUP_JID, ID="3EB0NOON", participant=f"{ALICE}@s.whatsapp.net")
    for text, author in (("lunch at 1", {"sender": jid("99887766", LID), "sender_alt": jid(ALICE)}),
                         ("lunch at 3", {"sender": jid("15550006666")})):  # fmt: skip
        edit = ProtocolMessage(
            key=key, type=ProtocolMessage.MESSAGE_EDIT, editedMessage=Message(conversation=text)
        )
        push(server, instance, event("", chat=group, group=True, message_id=f"E{text[-1]}",
                                     protocolMessage=edit, **author))  # fmt: skip
    # Alice reacts last: once her reaction is seen, both edits were.
    reaction = ReactionMessage(key=key, text="🍝")
    push(server, instance, event("", chat=group, group=True, message_id="R2", reactionMessage=reaction, **alice))  # fmt: skip
    row = history_row(api, instance, GROUP_JID, "3EB0NOON", lambda m: m["reactions"])
    assert (row["content"], row["edited"]) == ("lunch at 1", True)
    chats = api.http.get(f"/api/instances/{instance}/chats").json()["chats"]
    assert next(c for c in chats if c["id"] == GROUP_JID)["lastMessage"]["content"] == "lunch at 1"
