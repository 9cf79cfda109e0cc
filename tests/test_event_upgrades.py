"""Events stored by an earlier version of the domain still load, with the fields added
since then at their defaults (each event class upcasts its older versions)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.config import Settings
from app.eventstore import open_store
from app.storage import open_storage
from domain.instance import Instance

# The fields each event gained, by the class version that added them.
ADDED: dict[str, dict[int, tuple[str, ...]]] = {
    "ConnectionOpened": {2: ("details",), 3: ("lid",)},
    "ConnectionClosed": {2: ("retry_at",)},
    "LoggedOut": {2: ("unlinked",)},
    "MessageSent": {
        2: ("idempotency_fingerprint",),
        3: ("quoted_message_id", "mentions", "data", "phone", "lid", "recipients"),
        4: ("origin", "spool_seq"),
    },
    "MessageReceived": {
        2: ("data", "bsuid", "username"),
        3: ("chat", "quoted_message_id", "mentions", "phone", "lid"),
        4: ("spool_seq",),
    },
    "MessageStatusChanged": {2: ("error",), 3: ("participant", "phone", "lid"), 4: ("spool_seq",)},
}


@pytest.mark.parametrize("written_as", [1, 2, 3])
def test_events_stored_before_fields_were_added_load_with_defaults(
    tmp_path: Path, written_as: int
) -> None:
    settings = Settings(sqlite_path=tmp_path / "events.db")
    store = open_store(open_storage(settings))
    instance = Instance("user-1", "Shop", "", "whatsmeow", {}, {})
    instance.open_connection("15550001111", "Shop")
    instance.record_received("wamid.1", "15550002222@s.whatsapp.net", "Zed", "text", "hi", None, 1)
    instance.record_sent(
        "wamid.0", "15550002222@s.whatsapp.net", "text", "yo", None, 2, "k1", "print-1"
    )
    instance.record_status("wamid.0", "read", "15550002222@s.whatsapp.net", True)
    instance.close_connection("stream_error", True, 1_900_000_000.0)
    instance.log_out("logged_out")
    store.save(instance)
    # Rewrite the stored events as an earlier version wrote them: without the fields added
    # since, and with that class version (none for the first).
    transcoder = store.mapper.transcoder
    with sqlite3.connect(settings.sqlite_path) as db:
        rows = db.execute("SELECT rowid, topic, state FROM stored_events").fetchall()
        rewritten = set()
        for rowid, topic, state in rows:
            name = topic.rsplit(".", 1)[-1]
            if name not in ADDED:
                continue
            decoded = transcoder.decode(state)
            current = getattr(Instance, name).class_version
            assert decoded.pop("class_version") == current == max(ADDED[name])
            for version, fields in ADDED[name].items():
                if version > written_as:
                    for field in fields:
                        decoded.pop(field)
            if 1 < written_as < current:
                decoded["class_version"] = written_as
            elif written_as >= current:
                decoded["class_version"] = current
            db.execute(
                "UPDATE stored_events SET state = ? WHERE rowid = ?",
                (transcoder.encode(decoded), rowid),
            )
            rewritten.add(name)
        assert rewritten == set(ADDED)
    store.close()

    store = open_store(open_storage(settings))
    try:
        events = list(store.events.get(instance.id))
    finally:
        store.close()
    opened, received, sent, status, closed, logged_out = events[1:]
    assert (opened.phone, opened.details, opened.lid) == ("15550001111", None, None)
    assert (received.body, received.data, received.bsuid, received.username) == (
        "hi",
        None,
        None,
        None,
    )
    # A message from before chats had their own field is in its sender's chat.
    assert (received.chat, received.quoted_message_id, received.mentions) == (
        "15550002222@s.whatsapp.net",
        None,
        [],
    )
    assert (received.phone, received.lid, received.spool_seq) == (None, None, None)
    assert (sent.body, sent.quoted_message_id, sent.mentions, sent.data) == ("yo", None, [], None)
    assert (sent.phone, sent.lid, sent.recipients) == (None, None, [])
    assert (sent.origin, sent.spool_seq) == ("api", None)
    assert sent.idempotency_fingerprint == ("print-1" if written_as >= 2 else None)
    assert (status.status, status.error, status.participant, status.spool_seq) == (
        "read",
        None,
        None,
        None,
    )
    retry_at = 1_900_000_000.0 if written_as >= 2 else None
    assert (closed.reason, closed.will_reconnect, closed.retry_at) == (
        "stream_error",
        True,
        retry_at,
    )
    assert (logged_out.reason, logged_out.unlinked) == ("logged_out", None)
