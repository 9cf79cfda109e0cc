"""Events stored by an earlier version of the domain still load, with the fields added
since then at their defaults (each event class upcasts its older versions)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.config import Settings
from app.eventstore import open_store
from app.storage import open_storage
from domain.instance import Instance


def test_events_stored_before_fields_were_added_load_with_defaults(tmp_path: Path) -> None:
    settings = Settings(sqlite_path=tmp_path / "events.db")
    store = open_store(open_storage(settings))
    instance = Instance("user-1", "Shop", "", "cloud", {}, {})
    instance.open_connection("15550001111", "Shop")
    instance.record_received("wamid.1", "15550002222@s.whatsapp.net", "Zed", "text", "hi", None, 1)
    instance.record_status("wamid.0", "read", "15550002222@s.whatsapp.net", True)
    store.save(instance)
    # Rewrite the stored events as the earlier version wrote them: without the new fields
    # and without a class version.
    transcoder = store.mapper.transcoder
    added = {
        "ConnectionOpened": ("details",),
        "MessageReceived": ("data", "bsuid", "username"),
        "MessageStatusChanged": ("error",),
    }
    with sqlite3.connect(settings.sqlite_path) as db:
        rows = db.execute("SELECT rowid, topic, state FROM stored_events").fetchall()
        for rowid, topic, state in rows:
            name = topic.rsplit(".", 1)[-1]
            if name in added:
                decoded = transcoder.decode(state)
                assert decoded.pop("class_version") == 2
                for field in added[name]:
                    decoded.pop(field)
                db.execute(
                    "UPDATE stored_events SET state = ? WHERE rowid = ?",
                    (transcoder.encode(decoded), rowid),
                )
    store.close()

    store = open_store(open_storage(settings))
    try:
        events = list(store.events.get(instance.id))
    finally:
        store.close()
    opened, received, status = events[1:]
    assert (opened.phone, opened.details) == ("15550001111", None)
    assert (received.body, received.data, received.bsuid, received.username) == (
        "hi",
        None,
        None,
        None,
    )
    assert (status.status, status.error) == ("read", None)
