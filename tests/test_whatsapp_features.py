"""Everything else WhatsApp does, end to end on a real server with sandbox instances:
replies, locations, contact cards, polls and votes, reactions, edits, revocations, media,
presence, read marks, the chat list, groups and phone/LID identity (SPEC §4, "Everything
else WhatsApp does"), with the bad input of each route.

Three instances of one user talk to each other: A (15552220001), B (15552220002, paired
with a LID of its own) and C (15552220003).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.server import Api, Server, wait_until

A, B, C = "15552220001", "15552220002", "15552220003"
B_LID = "246800000000002@lid"


class Party:
    """One instance, as its owner's API client sees it."""

    def __init__(self, api: Api, instance_id: str, phone: str) -> None:
        self.api, self.id, self.phone = api, instance_id, phone
        self.jid = f"{phone}@s.whatsapp.net"

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.api.http.post(f"/api/whatsapp/{self.id}/{path}", json=body, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.api.http.get(f"/api/whatsapp/{self.id}/{path}", **kw)

    def send(self, to: str, text: str, **extra: Any) -> str:
        answer = self.post("send", {"phone": to, "message": text, **extra})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    def history(self, chat: str) -> list[dict[str, Any]]:
        answer = self.api.http.get(f"/api/instances/{self.id}/chats/{chat}/messages")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["messages"])

    def message(self, chat: str, message_id: str, ready: Callable[[dict[str, Any]], Any]) -> Any:
        """The history row of a message once `ready` holds for it (other instances' events
        are projected a moment after the command that caused them is answered)."""

        def probe() -> Any:
            found = [m for m in self.history(chat) if m["messageId"] == message_id]
            return found[0] if found and ready(found[0]) else None

        return wait_until(probe)

    def chats(self) -> list[dict[str, Any]]:
        answer = self.api.http.get(f"/api/instances/{self.id}/chats")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["chats"])


def refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def people(server: Server, admin: Api) -> dict[str, Party]:
    admin.create_user("features@example.com", password="features-password")
    api = Api.login(server, "features@example.com", "features-password")
    found = {}
    for phone in (A, B, C):
        instance = api.create_instance(f"I{phone[-1]}")["id"]
        api.wait_for_qr(instance)
        scan: dict[str, str] = {"phone": phone}
        if phone == B:
            scan["lid"] = B_LID
        answer = api.http.post(f"/api/sandbox/instances/{instance}/scan", json=scan)
        assert answer.status_code == 200, answer.text
        wait_until(lambda i=instance: api.status(i)["ready"])
        found[phone] = Party(api, instance, phone)
    return found


# -- replies and the structured sends --------------------------------------------------------


def test_a_reply_quotes_a_message_of_the_chat_and_mentions(people: dict[str, Party]) -> None:
    a, b = people[A], people[B]
    asked = a.send(B, "ready?")
    b.message(A, asked, lambda m: True)  # B has it (another instance's events come a moment later)
    answer = b.send(A, "yes!", quotedMessageId=asked, mentions=[A])
    row = b.message(A, answer, lambda m: True)
    assert row["quotedMessageId"] == asked
    assert a.message(B, answer, lambda m: True)["quotedMessageId"] == asked
    # A quote must be a message of that chat, and one the instance has.
    refused(b.post("send", {"phone": C, "message": "x", "quotedMessageId": asked}), 404,
            "message_not_found")  # fmt: skip
    refused(b.post("send", {"phone": A, "message": "x", "quotedMessageId": "NOPE"}), 404,
            "message_not_found")  # fmt: skip
    refused(b.post("send", {"phone": A, "message": "x", "mentions": ["not a number"]}), 400,
            "invalid_phone")  # fmt: skip


def test_locations_and_contact_cards(people: dict[str, Party]) -> None:
    a, b = people[A], people[B]
    place = {"phone": B, "latitude": 52.52, "longitude": 13.405, "name": "Berlin"}
    sent = a.post("send-location", place)
    assert sent.status_code == 200, sent.text
    row = b.message(A, sent.json()["id"], lambda m: True)
    assert (row["messageType"], row["content"]) == ("location", "Berlin")
    assert row["location"] == {"latitude": 52.52, "longitude": 13.405, "name": "Berlin",
                               "address": None}  # fmt: skip
    cards = {"phone": B, "contacts": [{"name": "Ann", "phone": "+1 555 000 9999"}]}
    sent = a.post("send-contact", cards)
    assert sent.status_code == 200, sent.text
    row = b.message(A, sent.json()["id"], lambda m: True)
    assert row["contacts"] == [{"name": "Ann", "phone": "15550009999"}]

    bad = refused(a.post("send-location", {**place, "latitude": 91}), 400, "validation_error")
    assert bad["details"]["field"] == "latitude"
    bad = refused(a.post("send-contact", {"phone": B, "contacts": []}), 400, "validation_error")
    assert bad["details"]["field"] == "contacts"
    eleven = [{"name": f"P{n}", "phone": "15550009999"} for n in range(11)]
    refused(a.post("send-contact", {"phone": B, "contacts": eleven}), 400, "validation_error")
    bad = refused(
        a.post("send-contact", {"phone": B, "contacts": [{"name": "X", "phone": "12"}]}),
        400,
        "validation_error",
    )
    assert bad["details"]["field"] == "contacts.0.phone"


def test_polls_votes_and_live_tallies(people: dict[str, Party]) -> None:
    a, b, c = people[A], people[B], people[C]
    poll = {"phone": B, "question": "Lunch?", "options": ["pizza", "sushi", "salad"],
            "multipleAnswers": False}  # fmt: skip
    sent = a.post("send-poll", poll)
    assert sent.status_code == 200, sent.text
    poll_id = sent.json()["id"]
    b.message(A, poll_id, lambda m: True)
    voted = b.post(f"messages/{poll_id}/vote", {"options": ["sushi"]})
    assert voted.status_code == 200, voted.text
    row = a.message(B, poll_id, lambda m: m["poll"]["options"][1]["votes"])
    assert row["poll"] == {
        "question": "Lunch?",
        "multipleAnswers": False,
        "options": [
            {"name": "pizza", "votes": []},
            {"name": "sushi", "votes": [f"{B}@s.whatsapp.net"]},
            {"name": "salad", "votes": []},
        ],
    }
    # The voter's own history shows its own vote.
    assert b.message(A, poll_id, lambda m: True)["poll"]["options"][1]["votes"] == ["me"]
    # A new vote replaces the old one; [] withdraws it.
    b.post(f"messages/{poll_id}/vote", {"options": ["pizza"]})
    a.message(B, poll_id, lambda m: m["poll"]["options"][0]["votes"] and not m["poll"]["options"][1]["votes"])  # fmt: skip
    b.post(f"messages/{poll_id}/vote", {"options": []})
    a.message(B, poll_id, lambda m: not any(o["votes"] for o in m["poll"]["options"]))

    bad = refused(b.post(f"messages/{poll_id}/vote", {"options": ["curry"]}), 400,
                  "validation_error")  # fmt: skip
    assert bad["details"]["field"] == "options"
    refused(b.post(f"messages/{poll_id}/vote", {"options": ["pizza", "sushi"]}), 400,
            "validation_error")  # fmt: skip
    text = a.send(C, "not a poll")
    c.message(A, text, lambda m: True)
    refused(c.post(f"messages/{text}/vote", {"options": ["x"]}), 409, "not_a_poll")
    refused(b.post("messages/NOPE/vote", {"options": []}), 404, "message_not_found")
    thirteen = {**poll, "options": [f"o{n}" for n in range(13)]}
    assert refused(a.post("send-poll", thirteen), 400, "validation_error")["details"]["field"] == "options"  # fmt: skip
    refused(a.post("send-poll", {**poll, "options": ["one"]}), 400, "validation_error")
    refused(a.post("send-poll", {**poll, "options": ["a", "a"]}), 400, "validation_error")


def test_templates_are_for_the_cloud_api(people: dict[str, Party]) -> None:
    answer = people[A].post(
        "send-template", {"phone": B, "name": "hello_world", "language": "en_US"}
    )
    assert refused(answer, 400, "unsupported_by_engine")["error"] == (
        "The sandbox engine cannot send message templates"
    )


# -- reactions, edits, revocations -------------------------------------------------------------


def test_reactions_current_per_reactor(people: dict[str, Party]) -> None:
    a, b = people[A], people[B]
    message = a.send(B, "react to me")
    b.message(A, message, lambda m: True)
    assert b.post(f"messages/{message}/reaction", {"emoji": "👍🏽"}).status_code == 200
    assert a.post(f"messages/{message}/reaction", {"emoji": "❤️"}).status_code == 200
    row = a.message(B, message, lambda m: len(m["reactions"]) == 2)
    assert sorted((r["from"], r["emoji"]) for r in row["reactions"]) == [
        (f"{B}@s.whatsapp.net", "👍🏽"),
        ("me", "❤️"),
    ]
    b.post(f"messages/{message}/reaction", {"emoji": ""})  # removed
    a.message(B, message, lambda m: [r["from"] for r in m["reactions"]] == ["me"])

    for emoji in ("ab", "👍👍", ":)", "x" * 33):
        bad = refused(b.post(f"messages/{message}/reaction", {"emoji": emoji}), 400,
                      "validation_error")  # fmt: skip
        assert bad["details"]["field"] == "emoji"
    refused(b.post("messages/NOPE/reaction", {"emoji": "👍"}), 404, "message_not_found")


def test_edits_and_revocations(people: dict[str, Party]) -> None:
    a, b = people[A], people[B]
    message = a.send(B, "see you at 5")
    b.message(A, message, lambda m: True)
    edited = a.api.http.put(f"/api/whatsapp/{a.id}/messages/{message}", json={"message": "at 6"})
    assert edited.status_code == 200, edited.text
    row = b.message(A, message, lambda m: m["edited"])
    assert row["content"] == "at 6"
    assert a.message(B, message, lambda m: m["edited"])["content"] == "at 6"

    # Someone else's message, or not a text: 409; no such message: 404.
    theirs = b.send(A, "mine")
    a.message(B, theirs, lambda m: True)
    refused(a.api.http.put(f"/api/whatsapp/{a.id}/messages/{theirs}", json={"message": "x"}),
            409, "not_own_message")  # fmt: skip
    place = a.post("send-location", {"phone": B, "latitude": 1, "longitude": 2}).json()["id"]
    refused(a.api.http.put(f"/api/whatsapp/{a.id}/messages/{place}", json={"message": "x"}),
            409, "not_editable")  # fmt: skip
    refused(a.api.http.put(f"/api/whatsapp/{a.id}/messages/NOPE", json={"message": "x"}), 404,
            "message_not_found")  # fmt: skip
    refused(a.api.http.put(f"/api/whatsapp/{a.id}/messages/{message}", json={"message": ""}),
            400, "validation_error")  # fmt: skip

    revoked = a.api.http.delete(f"/api/whatsapp/{a.id}/messages/{message}")
    assert (revoked.status_code, revoked.json()) == (200, {"success": True})
    row = b.message(A, message, lambda m: m["revoked"])
    assert row["content"] == ""  # the placeholder: the text is gone from the read model
    assert a.message(B, message, lambda m: m["revoked"])["content"] == ""
    refused(a.api.http.delete(f"/api/whatsapp/{a.id}/messages/{theirs}"), 409, "not_own_message")
    refused(a.api.http.delete(f"/api/whatsapp/{a.id}/messages/NOPE"), 404, "message_not_found")


def test_the_revoked_text_stays_in_the_event_history(
    server: Server, people: dict[str, Party]
) -> None:
    a = people[A]
    message = a.send(B, "oops, wrong chat")
    assert a.api.http.delete(f"/api/whatsapp/{a.id}/messages/{message}").status_code == 200
    sent = [e for e in server.stored_events(a.id, "MessageSent") if e.message_id == message]
    assert sent[0].body == "oops, wrong chat"
    assert [e.message_id for e in server.stored_events(a.id, "MessageRevoked")][-1] == message


# -- media, presence, read marks, the chat list ----------------------------------------------------


def test_media_of_sent_and_received_messages(people: dict[str, Party]) -> None:
    a, b = people[A], people[B]
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    sent = a.api.http.post(
        f"/api/whatsapp/{a.id}/send-file",
        data={"phone": B, "caption": "a picture"},
        files={"file": ("dot.png", picture, "image/png")},
    )
    assert sent.status_code == 200, sent.text
    message = sent.json()["id"]
    b.message(A, message, lambda m: True)
    for party in (a, b):
        got = party.get(f"messages/{message}/media")
        assert got.status_code == 200, got.text
        assert got.content == picture
        assert got.headers["content-type"] == "image/png"
        assert "dot.png" in got.headers["content-disposition"]
    text = a.send(B, "no picture")
    refused(a.get(f"messages/{text}/media"), 404, "no_media")
    refused(a.get("messages/NOPE/media"), 404, "message_not_found")


def test_a_declared_type_that_is_not_a_media_type_is_not_kept(people: dict[str, Party]) -> None:
    # A part's Content-Type is the sender's to write. One with a control character was kept
    # as the file's type, and no answer header can carry it: the server dropped every
    # download of that file without an answer, the recipient's (another user's) too.
    a, b = people[A], people[B]
    sent = a.api.http.post(
        f"/api/whatsapp/{a.id}/send-file",
        data={"phone": B},
        files={"file": ("note.txt", b"plain words", "text/plain\x01")},
    )
    assert sent.status_code == 200, sent.text
    message = sent.json()["id"]
    b.message(A, message, lambda m: True)
    for party in (a, b):
        got = party.get(f"messages/{message}/media")
        assert (got.status_code, got.content) == (200, b"plain words"), got.text
        assert got.headers["content-type"].startswith("text/plain")  # the name's type


def test_presence(people: dict[str, Party]) -> None:
    a = people[A]
    for body in ({"phone": B, "state": "composing"}, {"state": "available"}):
        answer = a.post("presence", body)
        assert (answer.status_code, answer.json()) == (200, {"success": True}), answer.text
    refused(a.post("presence", {"state": "composing"}), 400, "validation_error")
    refused(a.post("presence", {"state": "available", "phone": B}), 400, "validation_error")
    refused(a.post("presence", {"state": "dancing"}), 400, "validation_error")


def test_read_marks_turn_the_status_read_and_clear_the_unread_count(
    people: dict[str, Party],
) -> None:
    a, c = people[A], people[C]
    first, second = a.send(C, "one"), a.send(C, "two")
    wait_until(lambda: next(ch for ch in c.chats() if ch["id"] == a.jid)["unreadCount"] >= 2)
    for received in (first, second):  # the chats list and the history are read models apart
        c.message(A, received, lambda m: True)
    assert a.message(C, second, lambda m: m["status"] == "delivered")
    done = c.post("read", {"chatId": A, "messageIds": [first, second]})
    assert (done.status_code, done.json()) == (200, {"success": True}), done.text
    a.message(C, second, lambda m: m["status"] == "read")
    assert next(ch for ch in c.chats() if ch["id"] == a.jid)["unreadCount"] == 0
    refused(c.post("read", {"chatId": A, "messageIds": ["NOPE"]}), 404, "message_not_found")
    refused(c.post("read", {"chatId": A, "messageIds": []}), 400, "validation_error")


def test_the_chat_list_is_most_recent_first_with_the_last_message(
    people: dict[str, Party],
) -> None:
    a, b, c = people[A], people[B], people[C]
    a.send(B, "to B")
    last = c.send(A, "latest, from C")
    chats = wait_until(lambda: (found := a.chats()) and found[0]["id"] == c.jid and found)
    top = chats[0]
    assert (top["name"], top["isGroup"], top["lastMessage"]["id"]) == ("I3", False, last)
    assert top["lastMessage"]["content"] == "latest, from C" and top["unreadCount"] >= 1
    assert [ch["updatedAt"] for ch in chats] == sorted(
        (ch["updatedAt"] for ch in chats), reverse=True
    )
    page = a.api.http.get(f"/api/instances/{a.id}/chats", params={"limit": 1, "skip": 1}).json()
    assert len(page["chats"]) == 1 and page["pagination"]["total"] == len(chats)
    assert page["chats"][0]["id"] == chats[1]["id"]
    assert b.chats()  # B has A's chat


# -- groups ------------------------------------------------------------------------------------


def test_a_group_story(people: dict[str, Party]) -> None:
    a, b, c = people[A], people[B], people[C]
    created = a.post("groups", {"subject": "Team", "participants": [B, "15559990000"]})
    assert created.status_code == 201, created.text
    group = created.json()
    gid = group["id"]
    assert gid.endswith("@g.us") and group["owner"] == a.jid
    roles = {p["phone"]: p["role"] for p in group["participants"]}
    assert roles == {A: "superadmin", B: "member", "15559990000": "member"}
    lids = {p["phone"]: p["lid"] for p in group["participants"]}
    assert lids[B] == B_LID and lids["15559990000"] is None

    # B was added: it sees the group too.
    seen = wait_until(lambda: [g for g in b.get("groups").json()["groups"] if g["id"] == gid])
    assert seen[0]["subject"] == "Team"
    digits = gid.split("@")[0]
    assert b.get(f"groups/{digits}").json()["id"] == gid  # by its digits
    refused(c.get(f"groups/{digits}"), 404, "group_not_found")
    refused(c.get("groups/not-a-group"), 404, "group_not_found")

    # A message to the group reaches every member, with the sender in the history.
    hello = a.send(gid, "hello team")
    row = b.message(gid, hello, lambda m: True)
    assert (row["sender"], row["phone"], row["fromMe"]) == (a.jid, A, False)
    group_chat = wait_until(lambda: [ch for ch in b.chats() if ch["id"] == gid])
    assert (group_chat[0]["name"], group_chat[0]["isGroup"]) == ("Team", True)

    # Settings: any member while unlocked; admins only once locked.
    changed = b.api.http.put(f"/api/whatsapp/{b.id}/groups/{gid}", json={"description": "ours"})
    assert changed.status_code == 200 and changed.json()["description"] == "ours"
    refused(b.api.http.put(f"/api/whatsapp/{b.id}/groups/{gid}", json={"locked": True}), 409,
            "not_group_admin")  # fmt: skip
    locked = a.api.http.put(f"/api/whatsapp/{a.id}/groups/{gid}", json={"locked": True, "subject": "Team!"})  # fmt: skip
    assert (locked.json()["locked"], locked.json()["subject"]) == (True, "Team!")
    refused(b.api.http.put(f"/api/whatsapp/{b.id}/groups/{gid}", json={"subject": "mine"}), 409,
            "not_group_admin")  # fmt: skip
    refused(b.post(f"groups/{gid}/participants", {"action": "add", "participants": [C]}), 409,
            "not_group_admin")  # fmt: skip
    wait_until(lambda: b.get(f"groups/{gid}").json()["subject"] == "Team!")

    # Participants: outcomes one by one.
    done = a.post(f"groups/{gid}/participants",
                  {"action": "remove", "participants": ["15559990000", C, A]})  # fmt: skip
    assert done.json()["participants"] == [
        {"id": "15559990000@s.whatsapp.net", "status": "ok"},
        {"id": c.jid, "status": "not_participant"},
        {"id": a.jid, "status": "not_allowed"},
    ]
    promoted = a.post(f"groups/{gid}/participants", {"action": "promote", "participants": [B]})
    assert promoted.json()["participants"] == [{"id": b.jid, "status": "ok"}]
    wait_until(lambda: {p["phone"]: p["role"] for p in b.get(f"groups/{gid}").json()["participants"]} == {A: "superadmin", B: "admin"})  # fmt: skip
    refused(a.post(f"groups/{gid}/participants", {"action": "kick", "participants": [B]}), 400,
            "validation_error")  # fmt: skip

    # Invites: C joins by the link; a reset code no longer works.
    invite = b.get(f"groups/{gid}/invite").json()
    assert invite["inviteLink"] == "https://chat.whatsapp.com/" + invite["inviteCode"]
    joined = c.post("groups/join", {"inviteCode": invite["inviteLink"]})
    assert joined.status_code == 200 and joined.json()["id"] == gid
    wait_until(lambda: any(g["id"] == gid for g in c.get("groups").json()["groups"]))
    fresh = a.api.http.delete(f"/api/whatsapp/{a.id}/groups/{gid}/invite").json()
    assert fresh["inviteCode"] != invite["inviteCode"]
    left = c.post(f"groups/{gid}/leave")
    assert (left.status_code, left.json()) == (200, {"success": True})
    wait_until(lambda: not any(g["id"] == gid for g in c.get("groups").json()["groups"]))
    refused(c.post("groups/join", {"inviteCode": invite["inviteCode"]}), 404, "group_not_found")
    refused(c.post(f"groups/{gid}/leave"), 409, "not_group_participant")

    refused(a.post("groups", {"subject": "", "participants": [B]}), 400, "validation_error")
    refused(a.post("groups", {"subject": "x", "participants": []}), 400, "validation_error")
    refused(a.post("groups", {"subject": "x", "participants": [gid]}), 400, "invalid_phone")


def test_group_receipts_count_every_participant(people: dict[str, Party]) -> None:
    a, b, c = people[A], people[B], people[C]
    gid = a.post("groups", {"subject": "Pair", "participants": [B, C]}).json()["id"]
    message = a.send(gid, "read by all?")
    a.message(gid, message, lambda m: m["status"] == "delivered")
    b.message(gid, message, lambda m: True)
    c.message(gid, message, lambda m: True)
    assert b.post("read", {"chatId": gid, "messageIds": [message]}).status_code == 200
    # Read by one of two: still delivered.
    wait_until(lambda: b.history(gid)[0]["messageId"] == message)
    assert a.message(gid, message, lambda m: True)["status"] == "delivered"
    assert c.post("read", {"chatId": gid, "messageIds": [message]}).status_code == 200
    a.message(gid, message, lambda m: m["status"] == "read")


# -- identity: phone numbers and LIDs ------------------------------------------------------------


def test_a_chat_by_lid_and_by_number_is_one_chat(people: dict[str, Party]) -> None:
    a, b = people[A], people[B]
    a_new = people[C]  # C has never written to B
    by_lid = a_new.send(B_LID, "hi B, by your LID")
    row = a_new.message(B_LID, by_lid, lambda m: True)
    assert (row["remoteJid"], row["lid"]) == (B_LID, B_LID)
    # Then by number: WhatsApp tells C both names, and the two are one chat.
    by_number = a_new.send(B, "and by your number")
    history = wait_until(lambda: len(h := a_new.history(B)) >= 2 and h)
    assert {m["messageId"] for m in history} >= {by_lid, by_number}
    assert all((m["phone"], m["lid"]) == (B, B_LID) for m in history if m["fromMe"])
    assert a_new.history(B_LID) == history  # either name opens the same chat
    chats = [ch for ch in a_new.chats() if ch["id"] in (b.jid, B_LID)]
    assert len(chats) == 1 and chats[0]["lastMessage"]["id"] == by_number

    person = a_new.get(f"contacts/{B_LID}").json()
    assert person == {"id": B_LID, "phone": B, "lid": B_LID, "name": None, "isGroup": False}
    by_phone = a_new.get(f"contacts/{B}").json()
    assert (by_phone["id"], by_phone["phone"], by_phone["lid"]) == (b.jid, B, B_LID)
    refused(a_new.get("contacts/not-a-number"), 400, "invalid_phone")
    assert a.get(f"contacts/{B}").json()["lid"] == B_LID  # A learnt it when it wrote to B


# -- webhooks ------------------------------------------------------------------------------------

NEW_EVENTS = {"message_reaction", "message_edited", "message_revoked", "poll_vote", "group_update",
              "presence_update"}  # fmt: skip


def test_webhooks_for_updates_groups_and_presence_only_when_asked(
    server: Server, people: dict[str, Party]
) -> None:
    from tests.receiver import Receiver

    api = people[A].api
    asked, quiet = Receiver(), Receiver()
    try:
        flags = {"notifyMessageUpdates": True, "notifyGroups": True, "notifyPresence": True}
        parties = {}
        for phone, receiver, extra in (
            ("15552220011", asked, flags),
            ("15552220012", quiet, {}),
        ):
            made = api.create_instance(f"W{phone[-1]}", webhookUrl=receiver.url, **extra)
            assert made["webhookSettings"]["notifyGroups"] is bool(extra)
            api.pair(made["id"], phone)
            parties[phone] = Party(api, made["id"], phone)
        peer = people[B]
        for phone, party in parties.items():
            # The peer writes; reacts to, edits and revokes its message; answers a poll; makes
            # a group with the instance; shows that it is typing.
            said = peer.send(phone, "hello")
            party.message(B, said, lambda m: True)
            peer.post(f"messages/{said}/reaction", {"emoji": "🎉"})
            peer.api.http.put(f"/api/whatsapp/{peer.id}/messages/{said}", json={"message": "hi"})
            peer.api.http.delete(f"/api/whatsapp/{peer.id}/messages/{said}")
            poll = party.post("send-poll", {"phone": B, "question": "Q?", "options": ["x", "y"]})
            peer.message(phone, poll.json()["id"], lambda m: True)
            peer.post(f"messages/{poll.json()['id']}/vote", {"options": ["y"]})
            peer.post("groups", {"subject": f"G{phone[-1]}", "participants": [phone]})
            peer.post("presence", {"phone": phone, "state": "composing"})
            party.send(B, "last")  # message_sent: always after the rest, in order

        wait_until(lambda: "message_sent" in asked.events() and "message_sent" in quiet.events())
        assert set(asked.events()) >= NEW_EVENTS
        assert not NEW_EVENTS & set(quiet.events())
        by_event = {r.event: r.json["data"] for r in asked.received}
        who = {"phone": B, "lid": B_LID}
        me = parties["15552220011"]
        assert by_event["message_received"]["phone"] == B
        assert by_event["message_reaction"] == {
            "instanceId": me.id, "messageId": by_event["message_reaction"]["messageId"],
            "chat": peer.jid, "from": peer.jid, "fromMe": False, "emoji": "🎉", **who,
        }  # fmt: skip
        assert (by_event["message_edited"]["body"], by_event["message_edited"]["lid"]) == (
            "hi",
            B_LID,
        )
        assert by_event["message_revoked"]["from"] == peer.jid
        assert (by_event["poll_vote"]["voter"], by_event["poll_vote"]["options"]) == (
            peer.jid,
            ["y"],
        )
        group = by_event["group_update"]
        assert (group["action"], group["reason"], group["by"], group["subject"]) == (
            "joined",
            "added",
            peer.jid,
            "G1",
        )
        assert (by_event["presence_update"]["jid"], by_event["presence_update"]["state"]) == (
            peer.jid,
            "composing",
        )
        assert set(by_event["message_sent"]) >= {"phone", "lid"}
    finally:
        asked.close()
        quiet.close()
