"""The product's main story against a real server process, across a restart."""

from __future__ import annotations

from tests.server import Api, Server, wait_until


def stored_topics(server: Server, instance_id: str) -> list[str]:
    return [type(event).__name__ for event in server.stored_events(instance_id)]


def test_two_users_instances_message_each_other_and_survive_a_restart(fresh_server: Server) -> None:
    admin = Api.login(fresh_server)
    admin.create_user("alice@example.com", password="alice-password", firstName="Alice")
    alice = Api.login(fresh_server, "alice@example.com", "alice-password")

    # Alice creates two sandbox instances; each starts connecting and shows a QR code.
    a = alice.create_instance("Shop")
    b = alice.create_instance("Support")
    assert a["status"] == "connecting"
    assert alice.wait_for_qr(a["id"]).startswith("sandbox@")
    assert alice.http.get(
        f"/api/instances/{a['id']}/qr", params={"format": "png"}
    ).content.startswith(b"\x89PNG")

    # The phones scan: both are connected under their numbers.
    alice.pair(a["id"], "15550000001")
    alice.pair(b["id"], "15550000002")
    assert alice.status(a["id"]) == {"ready": True, "status": "connected", "hasQr": False}
    listed = alice.http.get("/api/instances").json()["instances"]
    assert {i["id"]: i["phone"] for i in listed} == {a["id"]: "15550000001", b["id"]: "15550000002"}

    # A sends text to B: B receives it, and A gets a delivered receipt, then a read receipt
    # once B reads it.
    answer = alice.send(a["id"], "+1 555 000 0002", "Hello from the shop")
    assert answer.status_code == 200, answer.text
    message_id = answer.json()["id"]
    wait_until(lambda: "MessageReceived" in stored_topics(fresh_server, b["id"]))
    alice.read(b["id"], "15550000001", [message_id])
    wait_until(lambda: stored_topics(fresh_server, a["id"]).count("MessageStatusChanged") == 2)
    topics = stored_topics(fresh_server, a["id"])
    assert topics.index("MessageSent") < topics.index("MessageStatusChanged")

    # B's contacts show A with its name; A's show B.
    contacts = wait_until(
        lambda: alice.http.get(f"/api/whatsapp/{b['id']}/contacts").json()["contacts"]
    )
    assert contacts == [
        {
            "id": "15550000001@s.whatsapp.net",
            "name": "Shop",
            "number": "15550000001",
            "isGroup": False,
        }
    ]
    assert [
        c["number"] for c in alice.http.get(f"/api/whatsapp/{a['id']}/contacts").json()["contacts"]
    ] == ["15550000002"]

    # After a restart both instances come back connected, with their settings and history.
    fresh_server.restart()
    alice = Api.login(fresh_server, "alice@example.com", "alice-password")
    wait_until(lambda: alice.status(a["id"])["ready"] and alice.status(b["id"])["ready"])
    assert alice.http.get(f"/api/instances/{a['id']}").json()["name"] == "Shop"
    assert stored_topics(fresh_server, a["id"]).count("MessageSent") == 1
    again = alice.send(b["id"], "15550000001", "Back online")
    assert again.status_code == 200 and again.json()["id"] != message_id
    wait_until(lambda: stored_topics(fresh_server, a["id"]).count("MessageReceived") == 1)


def test_drop_reconnects_by_itself_and_logout_needs_a_new_qr(server: Server, admin: Api) -> None:
    instance = admin.create_instance("Dropper")
    admin.pair(instance["id"], "15550000101")

    assert admin.http.post(f"/api/sandbox/instances/{instance['id']}/drop").status_code == 200
    wait_until(lambda: admin.status(instance["id"])["ready"])

    assert admin.http.post(f"/api/instances/{instance['id']}/logout").json()["success"] is True
    assert admin.status(instance["id"])["status"] == "logged_out"
    refused = admin.send(instance["id"], "15550000001", "hello?")
    assert refused.status_code == 409 and refused.json()["code"] == "instance_not_connected"

    # Reconnecting after a logout starts a new pairing with a new QR code.
    assert admin.http.post(f"/api/instances/{instance['id']}/reconnect").status_code == 200
    admin.wait_for_qr(instance["id"])
    admin.pair(instance["id"], "15550000101")


def test_inbound_from_an_outside_number_adds_a_named_contact(server: Server, admin: Api) -> None:
    instance = admin.create_instance("Inbox")
    admin.pair(instance["id"], "15550000201")
    answer = admin.http.post(
        f"/api/sandbox/instances/{instance['id']}/inbound",
        json={"from": "15557770000", "message": "hi", "pushName": "Zed"},
    )
    assert answer.status_code == 200, answer.text
    contacts = admin.http.get(f"/api/whatsapp/{instance['id']}/contacts").json()["contacts"]
    assert contacts == [
        {
            "id": "15557770000@s.whatsapp.net",
            "name": "Zed",
            "number": "15557770000",
            "isGroup": False,
        }
    ]


def test_update_and_delete_an_instance(server: Server, admin: Api) -> None:
    instance = admin.create_instance("Old name", webhookUrl="http://127.0.0.1:9/hook")
    changed = admin.http.put(
        f"/api/instances/{instance['id']}",
        json={
            "name": "New name",
            "webhookEnabled": True,
            "webhookSettings": {"notifyRead": True, "maxRetries": 5, "secret": "s3cret"},
        },
    )
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert view["name"] == "New name" and view["webhookEnabled"] is True
    assert view["webhookSettings"]["notifyRead"] is True
    assert view["webhookSettings"]["maxRetries"] == 5
    assert view["webhookSettings"]["hasSecret"] is True
    assert "s3cret" not in changed.text

    deleted = admin.http.delete(f"/api/instances/{instance['id']}")
    assert deleted.json() == {
        "success": True,
        "message": f"Instance {instance['id']} deleted successfully",
    }
    assert admin.http.get(f"/api/instances/{instance['id']}").status_code == 404
    assert instance["id"] not in [
        i["id"] for i in admin.http.get("/api/instances").json()["instances"]
    ]


def test_health_reports_storage_and_actors(server: Server) -> None:
    answer = server.client().get("/health")
    assert answer.status_code == 200
    checks = answer.json()["checks"]
    assert checks["eventStore"]["ok"] and checks["readModels"]["ok"] and checks["actors"]["ok"]
