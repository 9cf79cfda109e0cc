"""Everything else WhatsApp does, on the whatsmeow child: neonize's events pushed through
neonize's own dispatch, and the messages and calls the child asks neonize for.

Events are built as whatsmeow fills them (types/events/events.go; message.go,
parseMessageSource) and as neonize's Go side encodes them (goneonize utils/encoder.go);
outgoing messages are compared with what whatsmeow's own builders make (send.go,
BuildReaction, BuildRevoke, BuildMessageKey; msgsecret.go, BuildPollCreation,
BuildPollVote), cited beside each test.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.engines import whatsmeow_frames as f
from actors.engines.frames import Channel
from actors.engines.whatsmeow_features import PollOptions, vcard_phone
from tests.whatsmeow import GROUP, LID, empty_jid, jid, message_event, push

neonize = pytest.importorskip("neonize")

ALICE = "15550007777"  # the other party (message_event's default sender)
ME = "15550001111"
GROUP_JID = "120363000000000001@g.us"


def hashes(*options: str) -> list[bytes]:
    """What a decrypted vote holds: SHA-256 of each option name (msgsecret.go,
    HashPollOptions)."""
    return [hashlib.sha256(o.encode()).digest() for o in options]


@pytest.fixture(scope="module")
def dispatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A neonize client (never connected) with our handlers; votes are decrypted by a
    stand-in for whatsmeow's DecryptPollVote, which needs the poll's secret from a real
    session: it answers the hashes the test put in the vote's payload."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from neonize.client import NewClient

    from actors.engines.whatsmeow_child import register

    root.handlers[:], root.level = handlers, level
    directory = tmp_path_factory.mktemp("features")
    client = NewClient(str(directory / "session.db"), uuid="features-test")
    frames: list[f.Frame] = []
    polls = PollOptions(directory / "polls.json")

    def decrypt(event: Any) -> list[bytes]:
        payload = event.Message.pollUpdateMessage.vote.encPayload
        return [payload[i : i + 32] for i in range(0, len(payload), 32)]

    register(client, frames.append, polls=polls, decrypt=decrypt)
    yield client, frames, polls


@pytest.fixture()
def client(dispatch: Any) -> Any:
    dispatch[1].clear()
    return dispatch[0]


@pytest.fixture()
def frames(dispatch: Any) -> list[f.Frame]:
    return dispatch[1]


# -- inbound: what a message carries --------------------------------------------------


def test_replies_and_mentions_are_kept(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, ExtendedTextMessage

    # A reply is an extendedTextMessage whose ContextInfo names the quoted message
    # (stanzaID) and its author; mentions are in mentionedJID (WAWebProtobufsE2E.proto).
    text = ExtendedTextMessage(
        text="agreed @15550002222",
        contextInfo=ContextInfo(
            stanzaID="3EB0QUOTED",
            participant=f"{ME}@s.whatsapp.net",
            mentionedJID=["15550002222@s.whatsapp.net"],
        ),
    )
    push(client, message_event("", extendedTextMessage=text))
    (frame,) = frames
    assert isinstance(frame, f.Message)
    assert (frame.body, frame.quoted, frame.mentions) == (
        "agreed @15550002222",
        "3EB0QUOTED",
        ["15550002222@s.whatsapp.net"],
    )


def test_locations_contacts_and_polls_arrive_as_structured_data(
    client: Any, frames: list[f.Frame], dispatch: Any
) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        ContactMessage,
        ContactsArrayMessage,
        LocationMessage,
        PollCreationMessage,
    )

    card = (
        "BEGIN:VCARD\nVERSION:3.0\nFN:Bea\n"
        "TEL;type=CELL;type=VOICE;waid=15550003333:+1 555-000-3333\nEND:VCARD"
    )
    push(
        client,
        message_event(
            "",
            message_id="LOC",
            locationMessage=LocationMessage(
                degreesLatitude=48.8584, degreesLongitude=2.2945, name="Tour Eiffel"
            ),
        ),
    )
    push(
        client,
        message_event(
            "", message_id="ONE", contactMessage=ContactMessage(displayName="Bea", vcard=card)
        ),
    )
    push(
        client,
        message_event(
            "",
            message_id="TWO",
            contactsArrayMessage=ContactsArrayMessage(
                contacts=[
                    ContactMessage(displayName="Bea", vcard=card),
                    ContactMessage(displayName="Cy", vcard="BEGIN:VCARD\nTEL:+44 20 7946 0000\n"),
                ]
            ),
        ),
    )
    push(
        client,
        message_event(
            "",
            message_id="POLL",
            pollCreationMessage=PollCreationMessage(
                name="Lunch?",
                options=[PollCreationMessage.Option(optionName=o) for o in ("pizza", "sushi")],
                selectableOptionsCount=1,
            ),
        ),
    )
    got = {m.id: (m.type, m.body, m.data) for m in frames if isinstance(m, f.Message)}
    assert got == {
        "LOC": (
            "location",
            "Tour Eiffel",
            {
                "location": {
                    "latitude": 48.8584,
                    "longitude": 2.2945,
                    "name": "Tour Eiffel",
                    "address": None,
                }
            },
        ),
        "ONE": ("contacts", "Bea", {"contacts": [{"name": "Bea", "phone": "15550003333"}]}),
        "TWO": (
            "contacts",
            "Bea, Cy",
            {
                "contacts": [
                    {"name": "Bea", "phone": "15550003333"},
                    {"name": "Cy", "phone": "442079460000"},
                ]
            },
        ),
        "POLL": (
            "poll",
            "Lunch?",
            {
                "poll": {
                    "question": "Lunch?",
                    "options": ["pizza", "sushi"],
                    "multipleAnswers": False,
                }
            },
        ),
    }
    # The poll's options are kept, so that votes (hashes only) can be named later.
    assert dispatch[2].names("POLL", hashes("sushi")) == ["sushi"]


def test_a_vcard_number_comes_from_its_waid() -> None:
    assert vcard_phone("TEL;waid=4915112345678:+49 151 12345678") == "4915112345678"
    assert vcard_phone("item1.TEL:+1 (555) 000-4444") == "15550004444"
    assert vcard_phone("FN:nobody") is None


# -- inbound: changes to earlier messages ---------------------------------------------


def test_reactions_edits_and_revocations(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        FutureProofMessage,
        Message,
        ProtocolMessage,
        ReactionMessage,
    )

    key = MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", fromMe=True, ID="3EB0MINE")
    push(
        client,
        message_event(
            "",
            message_id="R1",
            reactionMessage=ReactionMessage(
                key=key, text="👍", senderTimestampMS=1_700_000_100_000
            ),
        ),
    )
    push(client, message_event("", message_id="R2", reactionMessage=ReactionMessage(key=key)))
    # whatsmeow events.go, UnwrapRaw: an edit arrives unwrapped from editedMessage, a
    # MESSAGE_EDIT protocol message keyed by the edited message, with its new content.
    edit = ProtocolMessage(
        key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", ID="3EB0THEIRS"),
        type=ProtocolMessage.MESSAGE_EDIT,
        editedMessage=Message(conversation="fixed typo"),
        timestampMS=1_700_000_200_000,
    )
    push(client, message_event("", message_id="E1", protocolMessage=edit))
    revoke = ProtocolMessage(
        key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", ID="3EB0THEIRS"),
        type=ProtocolMessage.REVOKE,
    )
    push(client, message_event("", message_id="D1", protocolMessage=revoke))
    # Other protocol messages (app state keys, history sync notices) report nothing, and
    # neither does an edit still wrapped as whatsmeow never delivers it.
    push(
        client,
        message_event(
            "",
            message_id="X1",
            protocolMessage=ProtocolMessage(type=ProtocolMessage.APP_STATE_SYNC_KEY_SHARE),
        ),
    )
    push(
        client,
        message_event(
            "", message_id="X2", editedMessage=FutureProofMessage(message=Message(conversation=""))
        ),
    )
    alice = dict(chat=f"{ALICE}@s.whatsapp.net", sender=f"{ALICE}@s.whatsapp.net", phone=ALICE)
    assert frames == [
        f.Reacted(id="3EB0MINE", emoji="👍", timestamp=1_700_000_100, **alice),
        f.Reacted(id="3EB0MINE", emoji="", timestamp=1_700_000_000, **alice),
        f.Edited(id="3EB0THEIRS", body="fixed typo", timestamp=1_700_000_200, **alice),
        f.Revoked(id="3EB0THEIRS", timestamp=1_700_000_000, **alice),
    ]


def test_our_own_reaction_from_the_phone_names_no_sender(
    client: Any, frames: list[f.Frame]
) -> None:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ReactionMessage

    key = MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", ID="3EB0THEIRS")
    push(
        client,
        message_event(
            "",
            sender=jid(ME),
            chat=jid(ALICE),
            from_me=True,
            reactionMessage=ReactionMessage(key=key, text="❤️"),
        ),
    )
    (frame,) = frames
    assert isinstance(frame, f.Reacted)
    assert (frame.chat, frame.sender, frame.from_me) == (f"{ALICE}@s.whatsapp.net", None, True)


def test_poll_votes_are_reported_by_option_name(
    client: Any, frames: list[f.Frame], dispatch: Any
) -> None:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import PollEncValue, PollUpdateMessage

    dispatch[2].remember("3EB0POLL", ["red", "green", "blue"])

    def vote(poll: str, *options: str, voter: str = "15550002222") -> Any:
        update = PollUpdateMessage(
            pollCreationMessageKey=MessageKey(remoteJID=GROUP_JID, ID=poll, fromMe=True),
            vote=PollEncValue(encPayload=b"".join(hashes(*options)), encIV=b"\0" * 12),
        )
        return message_event(
            "",
            chat=jid("120363000000000001", GROUP),
            sender=jid(voter),
            sender_alt=jid("99887766", LID),
            group=True,
            message_id=f"V-{poll}-{len(options)}",
            pollUpdateMessage=update,
        )

    push(client, vote("3EB0POLL", "green", "blue"))
    push(client, vote("3EB0POLL"))  # no options: the vote is withdrawn
    push(client, vote("3EB0UNKNOWN", "green"))  # a poll never seen: nothing to name
    voter = dict(
        chat=GROUP_JID,
        sender="15550002222@s.whatsapp.net",
        phone="15550002222",
        lid="99887766@lid",
        timestamp=1_700_000_000,
    )
    assert frames == [
        f.Voted(id="3EB0POLL", options=["green", "blue"], **voter),
        f.Voted(id="3EB0POLL", options=[], **voter),
    ]


# -- inbound: receipts, presence, groups ----------------------------------------------


def test_group_receipts_name_the_participant(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import MessageSource, Receipt

    # whatsmeow receipt.go, parseReceipt: in a group, Chat is the group and Sender the
    # participant who read it (with SenderAlt, its other form).
    source = MessageSource(
        Chat=jid("120363000000000001", GROUP),
        Sender=jid("99887766", LID),
        SenderAlt=jid("15550002222"),
        IsGroup=True,
        IsFromMe=False,
    )
    push(client, Receipt(MessageSource=source, MessageIDs=["3EB0A"], Type=Receipt.READ))
    assert frames == [
        f.Receipt(
            ids=["3EB0A"],
            status="read",
            chat=GROUP_JID,
            participant="15550002222@s.whatsapp.net",
            phone="15550002222",
            lid="99887766@lid",
        )
    ]


def test_presence_and_typing(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import ChatPresence, MessageSource, Presence

    push(client, Presence(From=jid(ALICE), Unavailable=False))
    push(client, Presence(From=jid(ALICE), Unavailable=True, LastSeen=1_700_000_300))
    one_to_one = MessageSource(Chat=jid(ALICE), Sender=jid(ALICE), SenderAlt=empty_jid())
    in_group = MessageSource(Chat=jid("120363000000000001", GROUP), Sender=jid(ALICE), IsGroup=True)
    # whatsmeow: a chat state is composing or paused; composing with audio media is
    # recording a voice note.
    push(client, ChatPresence(MessageSource=one_to_one, State=ChatPresence.COMPOSING))
    push(
        client,
        ChatPresence(
            MessageSource=in_group, State=ChatPresence.COMPOSING, Media=ChatPresence.AUDIO
        ),
    )
    push(client, ChatPresence(MessageSource=one_to_one, State=ChatPresence.PAUSED))
    alice = dict(jid=f"{ALICE}@s.whatsapp.net", phone=ALICE)
    assert frames == [
        f.Seen(state="available", **alice),
        f.Seen(state="unavailable", last_seen=1_700_000_300, **alice),
        f.Seen(state="composing", **alice),
        f.Seen(state="recording", chat=GROUP_JID, **alice),
        f.Seen(state="paused", **alice),
    ]


def group_info(**extra: Any) -> Any:
    from neonize.proto.Neonize_pb2 import (
        GroupAnnounce,
        GroupInfo,
        GroupLocked,
        GroupName,
        GroupParticipant,
        GroupTopic,
    )

    return GroupInfo(
        JID=jid("120363000000000001", GROUP),
        OwnerJID=jid(ALICE),
        GroupName=GroupName(Name="Team"),
        GroupTopic=GroupTopic(Topic="Plans"),
        GroupLocked=GroupLocked(isLocked=False),
        GroupAnnounce=GroupAnnounce(IsAnnounce=True),
        GroupCreated=1_700_000_000,
        Participants=[
            GroupParticipant(JID=jid(ALICE), IsAdmin=True, IsSuperAdmin=True),
            GroupParticipant(JID=jid("99887766", LID), PhoneNumber=jid(ME)),
        ],
        **extra,
    )


TEAM = {
    "id": GROUP_JID,
    "subject": "Team",
    "description": "Plans",
    "owner": f"{ALICE}@s.whatsapp.net",
    "announce": True,
    "locked": False,
    "created_at": 1_700_000_000,
    "participants": [
        {"id": f"{ALICE}@s.whatsapp.net", "phone": ALICE, "lid": None, "role": "superadmin"},
        {"id": "99887766@lid", "phone": ME, "lid": "99887766@lid", "role": "member"},
    ],
}


def test_joining_a_group_reports_it_whole(client: Any, frames: list[f.Frame]) -> None:
    from neonize.proto.Neonize_pb2 import JoinedGroup

    push(client, JoinedGroup(Reason="invite", GroupInfo=group_info()))
    push(client, JoinedGroup(Sender=jid(ALICE), GroupInfo=group_info()))
    # A group we created ourselves carries our CreateKey (whatsmeow group.go): it was
    # recorded when the API created it.
    push(client, JoinedGroup(Type="new", CreateKey="3EB0KEY", GroupInfo=group_info()))
    assert frames == [
        f.GroupJoined(group=TEAM, reason="invite"),
        f.GroupJoined(group=TEAM, reason="added", by=f"{ALICE}@s.whatsapp.net"),
    ]


def test_group_notifications_become_settings_and_participant_changes(
    client: Any, frames: list[f.Frame]
) -> None:
    from neonize.proto.Neonize_pb2 import (
        Connected,
        GroupAnnounce,
        GroupInfoEvent,
        GroupName,
        GroupTopic,
    )

    client.me = type("Me", (), {"JID": jid(ME), "LID": jid("11112222", LID), "PushName": ""})()
    client.me.HasField = lambda name: True
    push(client, Connected())  # this account's JIDs are known from here
    frames.clear()
    by = jid(ALICE)
    push(
        client,
        GroupInfoEvent(
            JID=jid("120363000000000001", GROUP),
            Sender=by,
            Name=GroupName(Name="Team 2"),
            Topic=GroupTopic(TopicDeleted=True),
            Announce=GroupAnnounce(IsAnnounce=False),
        ),
    )
    push(
        client,
        GroupInfoEvent(
            JID=jid("120363000000000001", GROUP),
            Sender=by,
            Join=[jid("15550002222")],
            Promote=[jid("15550002222")],
        ),
    )
    push(client, GroupInfoEvent(JID=jid("120363000000000001", GROUP), Sender=by, Leave=[jid(ME)]))
    push(client, GroupInfoEvent(JID=jid("120363000000000001", GROUP)))  # nothing we keep
    alice = f"{ALICE}@s.whatsapp.net"
    bob = {"id": "15550002222@s.whatsapp.net", "phone": "15550002222", "lid": None}
    me = {"id": f"{ME}@s.whatsapp.net", "phone": ME, "lid": None}
    assert frames == [
        f.GroupChanged(
            group_id=GROUP_JID,
            changes={"subject": "Team 2", "description": "", "announce": False},
            by=alice,
        ),
        f.GroupChanged(group_id=GROUP_JID, moves={"add": [bob], "promote": [bob]}, by=alice),
        f.GroupChanged(group_id=GROUP_JID, moves={"remove": [me]}, left="removed", by=alice),
    ]


# -- outbound: what the child asks neonize for ------------------------------------------


class Recording:
    """A neonize client that records what it is asked instead of asking WhatsApp."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []


@pytest.fixture()
def child(tmp_path: Path) -> Iterator[Any]:
    from neonize.client import NewClient
    from neonize.proto.Neonize_pb2 import (
        GroupParticipant,
        SendResponse,
    )
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message, PollUpdateMessage

    from actors.engines.whatsmeow_child import Child

    calls: list[tuple[str, Any]] = []
    downloads: list[Any] = []  # what each download_any answers, in turn

    class Client(NewClient):  # type: ignore[misc]
        def send_message(self, to: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(("send", (f"{to.User}@{to.Server}", message)))
            return SendResponse(ID=f"3EB0SENT{len(calls)}", Timestamp=1_700_000_500)

        def build_poll_vote(self, poll_info: Any, options: list[str]) -> Any:
            calls.append(("build_poll_vote", (poll_info, options)))
            return Message(pollUpdateMessage=PollUpdateMessage())

        def send_presence(self, presence: Any) -> None:
            calls.append(("send_presence", presence))

        def send_chat_presence(self, to: Any, state: Any, media: Any) -> None:
            calls.append(("send_chat_presence", (f"{to.User}@{to.Server}", state, media)))

        def mark_read(self, *ids: str, chat: Any, sender: Any, receipt: Any) -> None:
            calls.append(("mark_read", (ids, chat.User, sender.User, receipt)))

        def create_group(self, name: str, participants: list[Any]) -> Any:
            calls.append(("create_group", (name, [p.User for p in participants])))
            return group_info()

        def get_group_info(self, group: Any) -> Any:
            calls.append(("get_group_info", group.User))
            return group_info()

        def set_group_name(self, group: Any, name: str) -> None:
            calls.append(("set_group_name", name))

        def set_group_topic(self, group: Any, previous: str, new: str, topic: str) -> None:
            calls.append(("set_group_topic", (previous, new, topic)))

        def set_group_announce(self, group: Any, announce: bool) -> None:
            calls.append(("set_group_announce", announce))

        def set_group_locked(self, group: Any, locked: bool) -> None:
            calls.append(("set_group_locked", locked))

        def update_group_participants(self, group: Any, jids: list[Any], action: Any) -> Any:
            calls.append(("participants", ([j.User for j in jids], action)))
            return [GroupParticipant(JID=j, Error=409 if n else 0) for n, j in enumerate(jids)]

        def get_group_invite_link(self, group: Any, revoke: bool = False) -> str:
            calls.append(("invite", revoke))
            return "https://chat.whatsapp.com/AbCdEf123"

        def leave_group(self, group: Any) -> None:
            calls.append(("leave", group.User))

        def get_lid_from_pn(self, jid_: Any) -> Any:
            return jid("99887766", LID)

        def get_pn_from_lid(self, jid_: Any) -> Any:
            return jid("15550002222")

        def download_any(self, message: Any, path: str | None = None) -> bytes:
            calls.append(("download_any", message.imageMessage.mimetype))
            outcome = downloads.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return bytes(outcome)

    client = Client(str(tmp_path / "s.db"), uuid="features-out")
    made = Child(
        Channel(io.BytesIO(), io.BytesIO(), f.Command), tmp_path, tmp_path / "u", 10, client
    )
    made._connection = threading.current_thread()  # as if connected
    made._go_client.set()
    made.report(f.Connected(phone=ME, lid="11112222@lid"))
    made.calls = calls
    made.downloads = downloads
    yield made
    made.spool.close()


def sent(child: Any) -> tuple[str, Any]:
    kind, (to, message) = child.calls[-1]
    assert kind == "send"
    return to, message


def test_a_reply_quotes_its_message_and_mentions(child: Any) -> None:
    quoted = f.Quoted(id="3EB0Q", author=f"{ALICE}@s.whatsapp.net", body="lunch?")
    answer = child.op_SendText(
        f.SendText(
            id=1,
            to=f"{ALICE}@s.whatsapp.net",
            text="yes @15550002222",
            quoted=quoted,
            mentions=["15550002222@s.whatsapp.net"],
        )
    )
    to, message = sent(child)
    context = message.extendedTextMessage.contextInfo
    # neonize client.py, _make_quoted_message: stanzaID, the author as participant, the
    # quoted message; mentions in mentionedJID.
    assert to == f"{ALICE}@s.whatsapp.net"
    assert message.extendedTextMessage.text == "yes @15550002222"
    assert (context.stanzaID, context.participant) == ("3EB0Q", f"{ALICE}@s.whatsapp.net")
    assert context.quotedMessage.conversation == "lunch?"
    assert list(context.mentionedJID) == ["15550002222@s.whatsapp.net"]
    assert answer["type"] == "text"
    # Without either, text goes as a plain conversation, as before.
    child.op_SendText(f.SendText(id=2, to=f"{ALICE}@s.whatsapp.net", text="plain"))
    assert sent(child)[1].conversation == "plain"


def test_locations_contact_cards_and_polls_go_out_as_whatsapp_builds_them(child: Any) -> None:
    to = f"{ALICE}@s.whatsapp.net"
    child.op_SendLocation(
        f.SendLocation(id=1, to=to, latitude=-33.8568, longitude=151.2153, name="Opera")
    )
    place = sent(child)[1].locationMessage
    assert (place.degreesLatitude, place.degreesLongitude, place.name) == (
        -33.8568,
        151.2153,
        "Opera",
    )
    child.op_SendContacts(
        f.SendContacts(id=2, to=to, cards=[f.Card(name="Bea", phone="15550003333")])
    )
    card = sent(child)[1].contactMessage
    assert card.displayName == "Bea" and vcard_phone(card.vcard) == "15550003333"
    child.op_SendContacts(
        f.SendContacts(
            id=3, to=to, cards=[f.Card(name="Bea", phone="1555"), f.Card(name="Cy", phone="4420")]
        )
    )
    assert [c.displayName for c in sent(child)[1].contactsArrayMessage.contacts] == ["Bea", "Cy"]
    answer = child.op_SendPoll(
        f.SendPoll(id=4, to=GROUP_JID, question="Lunch?", options=["pizza", "sushi"])
    )
    to_group, poll = sent(child)
    # msgsecret.go, BuildPollCreation: options, SelectableOptionsCount (1: one answer), and
    # a random 32-byte MessageSecret that the votes' keys derive from.
    assert to_group == GROUP_JID
    assert [o.optionName for o in poll.pollCreationMessage.options] == ["pizza", "sushi"]
    assert poll.pollCreationMessage.selectableOptionsCount == 1
    assert len(poll.messageContextInfo.messageSecret) == 32
    # The child remembers the options of its own poll, to name the votes that come back.
    assert child.polls.names(answer["id"], hashes("pizza")) == ["pizza"]


def test_reactions_edits_revocations_and_votes_name_their_message(child: Any) -> None:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ProtocolMessage
    from neonize.utils.enum import ReceiptType

    theirs = f.Target(id="3EB0T", chat=GROUP_JID, author="15550002222@s.whatsapp.net")
    mine = f.Target(id="3EB0M", chat=f"{ALICE}@s.whatsapp.net", from_me=True)
    child.op_React(f.React(id=1, target=theirs, emoji="🎉"))
    to, message = sent(child)
    key = message.reactionMessage.key
    # send.go, BuildMessageKey: someone else's message in a group is keyed with fromMe
    # false and its author as participant.
    assert to == GROUP_JID and message.reactionMessage.text == "🎉"
    assert (key.ID, key.remoteJID, key.fromMe, key.participant) == (
        "3EB0T",
        GROUP_JID,
        False,
        "15550002222@s.whatsapp.net",
    )
    child.op_React(f.React(id=2, target=mine, emoji=""))
    key = sent(child)[1].reactionMessage.key
    assert (key.fromMe, key.participant, sent(child)[1].reactionMessage.text) == (True, "", "")
    child.op_Edit(f.Edit(id=3, target=mine, text="better"))
    edit = sent(child)[1].editedMessage.message.protocolMessage
    assert edit.type == ProtocolMessage.MESSAGE_EDIT and edit.key.ID == "3EB0M"
    assert edit.key.fromMe and edit.editedMessage.conversation == "better"
    child.op_Revoke(f.Revoke(id=4, target=mine))
    revoke = sent(child)[1].protocolMessage
    assert revoke.type == ProtocolMessage.REVOKE
    assert (revoke.key.ID, revoke.key.fromMe) == ("3EB0M", True)
    # A vote: whatsmeow's BuildPollVote encrypts with the poll's secret, from the poll's
    # MessageInfo (who sent it, where, whether it was us).
    child.op_Vote(f.Vote(id=5, poll=theirs, options=["sushi"]))
    (_, (info, options)), (_, (to, vote)) = child.calls[-2:]
    assert options == ["sushi"] and to == GROUP_JID and vote.HasField("pollUpdateMessage")
    assert (info.ID, info.MessageSource.Sender.User, info.MessageSource.IsGroup) == (
        "3EB0T",
        "15550002222",
        True,
    )
    assert not info.MessageSource.IsFromMe
    child.op_MarkRead(
        f.MarkRead(id=6, chat=GROUP_JID, sender="15550002222@s.whatsapp.net", ids=["A", "B"])
    )
    assert child.calls[-1] == (
        "mark_read",
        (("A", "B"), "120363000000000001", "15550002222", ReceiptType.READ),
    )


def test_presence_goes_out_as_whatsmeow_takes_it(child: Any) -> None:
    from neonize.utils.enum import ChatPresence, ChatPresenceMedia, Presence

    child.op_SendPresence(f.SendPresence(id=1, state="available"))
    child.op_SendPresence(f.SendPresence(id=2, state="unavailable"))
    child.op_SendPresence(f.SendPresence(id=3, state="recording", to=f"{ALICE}@s.whatsapp.net"))
    child.op_SendPresence(f.SendPresence(id=4, state="paused", to=f"{ALICE}@s.whatsapp.net"))
    alice = f"{ALICE}@s.whatsapp.net"
    assert child.calls == [
        ("send_presence", Presence.AVAILABLE),
        ("send_presence", Presence.UNAVAILABLE),
        (
            "send_chat_presence",
            (
                alice,
                ChatPresence.CHAT_PRESENCE_COMPOSING,
                ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO,
            ),
        ),
        (
            "send_chat_presence",
            (alice, ChatPresence.CHAT_PRESENCE_PAUSED, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT),
        ),
    ]


def test_groups_identities_and_their_refusals(child: Any) -> None:
    from neonize.utils.enum import ParticipantChange

    from actors.engines.whatsmeow_features import error_code

    assert child.op_CreateGroup(f.CreateGroup(id=1, subject="Team", participants=[ALICE])) == TEAM
    assert child.calls[-1] == ("create_group", ("Team", [ALICE]))
    child.op_UpdateGroup(f.UpdateGroup(id=2, group_id=GROUP_JID, description="New", locked=True))
    # Only what changes is asked for; the topic ids are left to whatsmeow (SetGroupTopic).
    assert child.calls[-3:] == [
        ("set_group_topic", ("", "", "New")),
        ("set_group_locked", True),
        ("get_group_info", "120363000000000001"),
    ]
    results = child.op_ChangeParticipants(
        f.ChangeParticipants(id=3, group_id=GROUP_JID, action="add", participants=[ALICE, ME])
    )
    assert child.calls[-1] == ("participants", ([ALICE, ME], ParticipantChange.ADD))
    assert results == [
        {"id": f"{ALICE}@s.whatsapp.net", "status": "ok"},
        {"id": f"{ME}@s.whatsapp.net", "status": "already_participant"},
    ]
    assert child.op_InviteCode(f.InviteCode(id=4, group_id=GROUP_JID, reset=True)) == "AbCdEf123"
    assert child.calls[-1] == ("invite", True)
    child.op_LeaveGroup(f.LeaveGroup(id=5, group_id=GROUP_JID))
    assert child.calls[-1] == ("leave", "120363000000000001")
    assert child.op_LookupIdentity(f.LookupIdentity(id=6, jid="15550002222@s.whatsapp.net")) == {
        "phone": "15550002222",
        "lid": "99887766@lid",
    }
    assert child.op_LookupIdentity(f.LookupIdentity(id=7, jid="99887766@lid")) == {
        "phone": "15550002222",
        "lid": "99887766@lid",
    }
    # whatsmeow errors.go: what a group call answers when it is refused.
    assert error_code("info query returned status 403: forbidden") == "not_group_admin"
    assert error_code("failed to get group info: that group does not exist") == "group_not_found"
    assert error_code("that group invite link has been revoked") == "invalid_invite"
    assert error_code("websocket not connected") == ""


def test_our_own_api_changes_are_not_reported_twice() -> None:
    """What the API changed was recorded when it did; WhatsApp's notification of the same
    change (sent by this account) is not reported again, but a change this account made
    from its phone is, and so is anyone else's."""
    from neonize.proto.Neonize_pb2 import GroupInfoEvent, GroupName, JoinedGroup

    from actors.engines.whatsmeow_child import People
    from actors.engines.whatsmeow_features import Requested, map_group_info, map_joined

    people, me = People(), {f"{ME}@s.whatsapp.net"}
    requested = Requested()
    renamed = GroupInfoEvent(
        JID=jid("120363000000000001", GROUP), Sender=jid(ME), Name=GroupName(Name="Ours")
    )
    assert map_group_info(renamed, people, me, requested) is not None  # from the phone
    requested.mark(GROUP_JID)
    assert map_group_info(renamed, people, me, requested) is None  # through the API
    renamed.Sender.CopyFrom(jid(ALICE))
    assert map_group_info(renamed, people, me, requested) is not None  # someone else
    joined = JoinedGroup(Reason="invite", GroupInfo=group_info())
    assert map_joined(joined, people, requested) is not None
    requested.mark(Requested.JOINING)
    assert map_joined(joined, people, requested) is None


# -- the engine: each capability is one request to the child ----------------------------


class Scripted(threading.Thread):
    """A child that connects, knows every number, records each request and answers it as
    the real child would (refusing the group `refused`, as whatsmeow answers a 403)."""

    def __init__(self, process: Any) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.requests: list[f.Frame] = []

    def run(self) -> None:
        channel: Channel[f.Command] = Channel(
            self.process.theirs_r, self.process.theirs_w, f.Command
        )
        channel.send(f.Ready(pid=0, neonize="test"))
        while (command := channel.receive()) is not None:
            if isinstance(command, f.Stop):
                return
            if isinstance(command, f.Connect):
                channel.send(f.Connected(phone=ME))
                continue
            if isinstance(command, f.Committed):
                continue
            self.requests.append(command)
            channel.send(self.answer(command))

    def answer(self, command: Any) -> f.Reply:
        result: Any = None
        if isinstance(command, f.Resolve):
            result = [
                {"query": p, "jid": f"{p}@s.whatsapp.net", "exists": True} for p in command.phones
            ]
        elif isinstance(command, (f.Send, f.Vote, f.React, f.Edit, f.Revoke)):
            result = {"id": f"3EB0{command.id}", "timestamp": 1_700_000_900, "type": "x"}
        elif isinstance(command, (f.CreateGroup, f.GetGroup, f.UpdateGroup, f.JoinGroup)):
            if getattr(command, "group_id", "") == "120363000000000404@g.us":
                return f.Reply(
                    re=command.id,
                    ok=False,
                    error="info query returned status 403: forbidden",
                    code="not_group_admin",
                )
            result = TEAM
        elif isinstance(command, f.ChangeParticipants):
            result = [{"id": p, "status": "ok"} for p in command.participants]
        elif isinstance(command, f.InviteCode):
            result = "AbCdEf123"
        elif isinstance(command, f.LookupIdentity):
            result = {"phone": "15550002222", "lid": "99887766@lid"}
        elif isinstance(command, f.FetchMedia):
            if command.message_id != "3EB0IMG":
                return f.Reply(re=command.id, ok=False, error="gone", code="no_media")
            result = {"status": "saved", "path": "/u/abc-3EB0IMG", "size": 4, "mimetype": None}
        return f.Reply(re=command.id, ok=True, result=result)


def test_the_engine_asks_its_child_for_each_capability(tmp_path: Path) -> None:
    from actors.engines.base import EngineError, Location, Poll, SendOptions
    from actors.engines.whatsmeow import WhatsmeowEngine
    from domain.groups import GroupChanges
    from domain.messages import MessageRef
    from tests.server import wait_until
    from tests.test_whatsmeow_engine import SocketChild

    process = SocketChild()
    child = Scripted(process)
    child.start()

    class Launcher:
        def spawn(self, *args: Any) -> SocketChild:
            return process

    engine = WhatsmeowEngine(tmp_path / "i", tmp_path / "u", 1000, None, lambda r: None, Launcher())
    engine.connect()
    wait_until(lambda: engine.connected)
    alice = f"{ALICE}@s.whatsapp.net"
    theirs = MessageRef("3EB0T", GROUP_JID, "15550002222@s.whatsapp.net", False, "text", "hi", 1.0)
    mine = MessageRef("3EB0M", alice, None, True, "text", "see you", 1.0)
    engine.send_text(alice, "yes", SendOptions(quoted=theirs, mentions=("15550002222@lid",)))
    engine.send_location(alice, Location(1.5, 2.5, "Here"), SendOptions(quoted=mine))
    engine.send_poll(GROUP_JID, Poll("Lunch?", ("a", "b"), True), SendOptions())
    sent = engine.react(theirs, "👍")
    engine.edit(mine, "see you later")
    engine.revoke(mine)
    engine.vote(theirs, ("a",))
    engine.mark_read(GROUP_JID, (theirs, mine))
    engine.send_presence("composing", alice)
    assert engine.update_group(GROUP_JID, GroupChanges(subject="New")).subject == "Team"
    assert engine.invite_code(GROUP_JID, True) == "AbCdEf123"
    identity = engine.lookup_identity("15550002222@s.whatsapp.net")
    assert (identity.phone, identity.lid) == ("15550002222", "99887766@lid")
    picture = MessageRef(
        "3EB0IMG", alice, alice, False, "image", "", 1.0, media={"mimetype": "image/jpeg"}
    )
    fetched = engine.download(picture)
    assert (fetched.path, fetched.mimetype, fetched.size) == ("/u/abc-3EB0IMG", "image/jpeg", 4)
    with pytest.raises(EngineError) as missing:
        engine.download(MessageRef("3EB0OLD", alice, alice, False, "image", "", 1.0))
    assert (missing.value.code, missing.value.status) == ("no_media", 404)
    with pytest.raises(EngineError) as refused:
        engine.group_info("120363000000000404@g.us")
    # whatsmeow's 403 on a group is the API's 409 not_group_admin.
    assert (refused.value.code, refused.value.status) == ("not_group_admin", 409)
    assert (sent.message_id, sent.chat) == ("3EB0" + str(child.requests[4].id), GROUP_JID)
    requests = [r for r in child.requests if not isinstance(r, f.Resolve)]
    assert requests[0] == f.SendText(
        id=requests[0].id,
        to=alice,
        text="yes",
        quoted=f.Quoted(id="3EB0T", author="15550002222@s.whatsapp.net", body="hi"),
        mentions=["15550002222@lid"],
    )
    # Our own message is quoted without an author: the child names us.
    assert requests[1].quoted == f.Quoted(id="3EB0M", body="see you")
    assert (requests[2].to, requests[2].multiple) == (GROUP_JID, True)
    author = f.Target(id="3EB0T", chat=GROUP_JID, author="15550002222@s.whatsapp.net")
    ours = f.Target(id="3EB0M", chat=alice, from_me=True)
    assert requests[3:7] == [
        f.React(id=requests[3].id, target=author, emoji="👍"),
        f.Edit(id=requests[4].id, target=ours, text="see you later"),
        f.Revoke(id=requests[5].id, target=ours),
        f.Vote(id=requests[6].id, poll=author, options=["a"]),
    ]
    # Read receipts go to the authors of the messages read, not for our own.
    assert requests[7] == f.MarkRead(
        id=requests[7].id, chat=GROUP_JID, sender="15550002222@s.whatsapp.net", ids=["3EB0T"]
    )
    assert requests[8] == f.SendPresence(id=requests[8].id, state="composing", to=alice)
    assert requests[9] == f.UpdateGroup(id=requests[9].id, group_id=GROUP_JID, subject="New")
    engine.disconnect()


def test_a_file_not_fetched_on_arrival_is_fetched_when_asked(child: Any) -> None:
    """A download that failed (or never ran) keeps the media message, so that the file can
    be fetched later from its keys (whatsmeow DownloadAny); once fetched it is kept like
    any other, and the message is told (a media result)."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ImageMessage, Message

    from actors.engines.whatsmeow_child import _Refused

    image = Message(imageMessage=ImageMessage(mimetype="image/jpeg", fileLength=4))
    job = f.PendingDownload(
        id="3EB0IMG", message=image.SerializeToString(), mimetype="image/jpeg", claimed=4
    )
    child.downloads[:] = [OSError("media server unreachable"), b"\xff\xd8\xff\xd9"]
    loop = threading.Thread(target=child._download_loop, daemon=True)
    loop.start()
    child._downloads.put(job)
    child._downloads.put(None)
    loop.join(5)
    assert child.calls[-1] == ("download_any", "image/jpeg")
    answer = child.op_FetchMedia(f.FetchMedia(id=1, message_id="3EB0IMG"))
    assert (answer["status"], answer["size"], answer["mimetype"]) == ("saved", 4, "image/jpeg")
    assert Path(answer["path"]).read_bytes() == b"\xff\xd8\xff\xd9"
    assert Path(answer["path"]).parent == child.uploads_dir
    # Fetched: nothing is kept for it any more.
    with pytest.raises(_Refused) as gone:
        child.op_FetchMedia(f.FetchMedia(id=2, message_id="3EB0IMG"))
    assert gone.value.code == "no_media"
    with pytest.raises(_Refused):
        child.op_FetchMedia(f.FetchMedia(id=3, message_id="NEVER-SEEN"))
