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
    "ConnectionOpened": {2: ("details",)},
    "ConnectionClosed": {2: ("retry_at",)},
    "LoggedOut": {2: ("unlinked",)},
    "MessageSent": {2: ("idempotency_fingerprint",), 3: ("origin", "spool_seq")},
    "MessageReceived": {
        2: ("data", "bsuid", "username"),
        3: ("participant", "phone", "lid", "spool_seq"),
    },
    "MessageStatusChanged": {2: ("error",), 3: ("spool_seq",)},
}


# The class versions earlier releases stored: the first, the one with the Cloud API's
# fields, and the one with idempotency fingerprints (before the whatsmeow engine's).
RELEASES = {
    "first": {},
    "cloud": {"ConnectionOpened": 2, "MessageReceived": 2, "MessageStatusChanged": 2},
    "fingerprints": {
        "ConnectionOpened": 2,
        "MessageReceived": 2,
        "MessageStatusChanged": 2,
        "MessageSent": 2,
    },
}


@pytest.mark.parametrize("release", RELEASES)
def test_events_stored_before_fields_were_added_load_with_defaults(
    tmp_path: Path, release: str
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
    # Rewrite the stored events as an earlier release wrote them: without the fields added
    # since, and with the class version it wrote (none at all for a first version).
    transcoder = store.mapper.transcoder
    with sqlite3.connect(settings.sqlite_path) as db:
        rows = db.execute("SELECT rowid, topic, state FROM stored_events").fetchall()
        rewritten = set()
        for rowid, topic, state in rows:
            name = topic.rsplit(".", 1)[-1]
            if name not in ADDED:
                continue
            decoded = transcoder.decode(state)
            assert decoded.pop("class_version") == max(ADDED[name])
            version = RELEASES[release].get(name, 1)
            for added_in, fields in ADDED[name].items():
                if added_in > version:
                    for field in fields:
                        decoded.pop(field)
            if version > 1:
                decoded["class_version"] = version
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
    assert (opened.phone, opened.details) == ("15550001111", None)
    assert (received.body, received.data, received.bsuid, received.username) == (
        "hi",
        None,
        None,
        None,
    )
    assert (received.participant, received.phone, received.lid, received.spool_seq) == (
        None,
        None,
        None,
        None,
    )
    assert (sent.body, sent.origin, sent.spool_seq) == ("yo", "api", None)
    fingerprinted = RELEASES[release].get("MessageSent", 1) >= 2
    assert sent.idempotency_fingerprint == ("print-1" if fingerprinted else None)
    assert (status.status, status.error, status.spool_seq) == ("read", None, None)
    assert (closed.reason, closed.will_reconnect, closed.retry_at) == ("stream_error", True, None)
    assert (logged_out.reason, logged_out.unlinked) == ("logged_out", None)
