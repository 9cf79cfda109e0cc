"""A client generated from the served /openapi.json runs the README's sandbox story.

`openapi-python-client` (what NOTES.md says API users reach for) turns the document into a
package of typed models and one function per operation. Every answer of the story must come
back as its generated model, not as a dict: that only happens when the document declares a
schema for each answer, so this fails if a route's answer loses its type.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.server import ADMIN_EMAIL, ADMIN_PASSWORD, Server, wait_until

pytestmark = pytest.mark.sqlite_only("the generated client tests the HTTP layer, not storage")

PACKAGE = "whatsapp_api_client"


@pytest.fixture(scope="module")
def client_package(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Generate the client from the document the server serves, and make it importable."""
    root = tmp_path_factory.mktemp("generated")
    document = root / "openapi.json"
    document.write_bytes(server.client().get("/openapi.json").content)
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatting pass: nothing here needs it
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator, "openapi-python-client is in the test extras"
    done = subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(root / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # A warning means an operation or a model was left out of the client.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield PACKAGE
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def load(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


def typed(value: Any, model: type) -> Any:
    """`value` is the generated model (an attrs class), not a dict or an Error."""
    assert not isinstance(value, dict), value
    assert isinstance(value, model), f"{type(value).__name__} is not {model.__name__}"
    return value


def test_the_sandbox_story_through_a_generated_client(server: Server, client_package: str) -> None:
    api = load(client_package, "api")
    models = load(client_package, "models")
    generated = load(client_package, "client")
    auth = importlib.import_module(f"{api.__name__}.auth.post_api_auth_login")

    # Sign in: the answer is the SignedIn model, with the signed-in user inside.
    anonymous = generated.Client(base_url=server.url)
    signed_in = typed(
        auth.sync(client=anonymous, body=models.Login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)),
        models.SignedIn,
    )
    typed(signed_in.user, models.SignedInUser)
    assert signed_in.user.email == ADMIN_EMAIL and signed_in.user.role == "admin"
    client = generated.AuthenticatedClient(base_url=server.url, token=signed_in.token)

    def call(group: str, operation: str, *args: Any, **kwargs: Any) -> Any:
        module = importlib.import_module(f"{api.__name__}.{group}.{operation}")
        return module.sync(*args, client=client, **kwargs)

    # Create a sandbox instance: it starts connecting and shows a QR code.
    instance = typed(
        call(
            "instances",
            "post_api_instances",
            body=models.InstanceCreate(name="Shop", engine="sandbox"),
        ),
        models.InstanceView,
    )
    typed(instance.connection_status, models.ConnectionStatus)
    typed(instance.webhook_settings, models.WebhookSettingsView)

    def shown_qr() -> Any:
        answer = call("instances", "get_api_instances_instanceid_qr", instance.id)
        return answer if not isinstance(answer, models.Error) else None  # 404 until shown

    qr = wait_until(shown_qr, timeout=10)
    assert typed(qr, models.QrCodeView).qr_code.startswith("sandbox@")

    # The phone scans; the instance is connected under that number.
    paired = call(
        "sandbox",
        "post_api_sandbox_instances_instanceid_scan",
        instance.id,
        body=models.SandboxScan(phone="15550000001"),
    )
    assert typed(paired, models.SandboxPaired).phone == "15550000001"
    status = call("whatsapp", "get_api_whatsapp_instanceid_status", instance.id)
    assert typed(status, models.ConnectionStatus).ready is True

    # Send, and a message arrives from an outside number.
    sent = call(
        "whatsapp",
        "post_api_whatsapp_instanceid_send",
        instance.id,
        body=models.SendText(phone="15550000002", message="hi"),
    )
    assert typed(sent, models.SentMessage).id
    inbound = call(
        "sandbox",
        "post_api_sandbox_instances_instanceid_inbound",
        instance.id,
        body=models.SandboxInbound(from_="15557770000", message="hello", push_name="Zed"),
    )
    assert typed(inbound, models.SandboxInboundSent).id

    # Contacts, the chat history both ways, and the statistics.
    contacts = typed(
        call("whatsapp", "get_api_whatsapp_instanceid_contacts", instance.id), models.ContactList
    )
    zed = [typed(c, models.ContactView) for c in contacts.contacts if c.number == "15557770000"]
    assert [c.name for c in zed] == ["Zed"] and zed[0].is_group is False
    chat = typed(
        call(
            "history",
            "get_api_instances_instanceid_chats_chatid_messages",
            instance.id,
            "15557770000",
        ),
        models.ChatHistory,
    )
    typed(chat.pagination, models.Pagination)
    (received,) = chat.messages
    assert typed(received, models.MessageView).content == "hello" and received.from_me is False
    outgoing = typed(
        call(
            "history",
            "get_api_instances_instanceid_chats_chatid_messages",
            instance.id,
            "15550000002",
        ),
        models.ChatHistory,
    )
    assert [(m.message_id, m.from_me) for m in outgoing.messages] == [(sent.id, True)]
    stats = typed(
        call("statistics", "get_api_stats_instances_instanceid", instance.id), models.InstanceStats
    )
    usage = typed(stats.usage, models.InstanceUsage)
    assert (usage.messages_sent, usage.messages_received) == (1, 1)
    assert [typed(day, models.DailyUsage).messages_sent for day in usage.daily_stats] == [1]
    mine = typed(call("statistics", "get_api_stats_user"), models.UserStats)
    assert typed(mine.total, models.UserTotals).instance_count >= 1
    assert instance.id in [typed(i, models.InstanceUsageTotal).instance_id for i in mine.instances]

    # An error is a model too: the Error schema every route declares.
    missing = call(
        "instances", "get_api_instances_instanceid", "00000000-0000-0000-0000-000000000000"
    )
    assert typed(missing, models.Error).code == "instance_not_found"
