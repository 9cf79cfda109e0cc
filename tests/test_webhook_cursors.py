"""Webhook cursors: what an instance did while its webhooks were off is never sent later."""

from __future__ import annotations

import sqlite3

import pytest

from app.storage import open_storage
from tests.places import Storage
from tests.receiver import Receiver
from tests.server import Api, Server, wait_until

ALL = {"notifyReceived": True, "notifySent": True, "notifyDelivery": True, "notifyRead": True}


@pytest.mark.sqlite_only("it reads the SQLite event store and cursor files directly")
def test_events_from_while_webhooks_were_off_are_not_sent_after_a_kill_9(
    fresh_server: Server,
) -> None:
    receiver = Receiver()
    try:
        admin = Api.login(fresh_server)
        quiet = admin.create_instance("Quiet")["id"]  # webhooks off
        peer = admin.create_instance("Quiet peer")["id"]
        admin.pair(quiet, "15553390001")
        admin.pair(peer, "15553390002")
        before = {admin.send(quiet, "15553390002", f"off {i}").json()["id"] for i in range(5)}
        data = fresh_server.root / "data"
        events = sqlite3.connect(data / "whatsapp-api.db")
        (last,) = events.execute(
            "SELECT MAX(rowid) FROM stored_events WHERE originator_id=?", [quiet.replace("-", "")]
        ).fetchone()
        events.close()

        def cursor() -> int:
            cursors = sqlite3.connect(data / "webhooks.db")
            try:
                row = cursors.execute(
                    "SELECT position FROM cursors WHERE instance_id=?", [quiet]
                ).fetchone()
            finally:
                cursors.close()
            return row[0] if row else 0

        changed = admin.http.put(
            f"/api/instances/{quiet}",
            json={"webhookUrl": receiver.url, "webhookEnabled": True, "webhookSettings": ALL},
        )
        assert changed.status_code == 200, changed.text
        # Turning webhooks on stores the skip past what happened while they were off
        # before the request is answered.
        assert cursor() >= last
        fresh_server.kill()  # webhooks now on: only the stored cursor keeps the old events back
        fresh_server.start()
        admin = Api.login(fresh_server)
        wait_until(lambda: admin.status(quiet)["ready"])
        after = admin.send(quiet, "15553390002", "on").json()["id"]

        def sent() -> set[str]:
            return {
                r.json["data"].get("messageId")
                for r in receiver.received
                if r.event == "message_sent"
            }

        wait_until(lambda: after in sent(), timeout=20)
        assert not sent() & before
    finally:
        receiver.close()


def test_cursors_only_move_forward(storage: Storage) -> None:
    cursors = storage.open().cursors()
    try:
        assert cursors.get("a") == 0
        cursors.set("a", 7)
        cursors.set("a", 5)  # a slower writer
        cursors.set("b", 2)
        assert (cursors.get("a"), cursors.get("b")) == (7, 2)
    finally:
        cursors.close()
    # Kept beside the event store, where another process (a restart) finds them.
    reopened = open_storage(storage.settings())
    try:
        assert (reopened.cursors().get("a"), reopened.cursors().get("b")) == (7, 2)
    finally:
        reopened.close()
