import msgspec
import pytest
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.routing import Route

from app.answers import ConnectionStatus, Done, InstanceView, SentMessage, answer
from app.config import Settings
from app.openapi import doc
from app.schemas import InstanceCreate, SendText
from app.server import create_app
from tests.server import Server


def test_the_document_is_valid_and_lists_every_route() -> None:
    app = create_app(Settings())
    document = app.state.openapi
    validate(document)
    expected = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.include_in_schema
        for method in route.methods or ()
        if method != "HEAD"
    }
    listed = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert listed == expected
    assert len(listed) > 40


def test_bodies_come_from_the_types_the_routes_decode() -> None:
    document = create_app(Settings()).state.openapi
    schemas = document["components"]["schemas"]
    send = document["paths"]["/api/whatsapp/{instanceId}/send"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendText"
    }
    assert set(schemas["SendText"]["properties"]) == set(SendText.__struct_fields__)
    assert schemas["InstanceCreate"]["required"] == ["name"]
    assert set(schemas["InstanceCreate"]["properties"]) == set(InstanceCreate.__struct_fields__)
    assert schemas["SendText"]["additionalProperties"] is False


def test_every_answer_has_a_schema_of_its_own() -> None:
    """Every JSON answer of every operation names its type (none is a bare object), so a
    client generated from the document gets a typed model for each one."""
    document = create_app(Settings()).state.openapi
    schemas = document["components"]["schemas"]
    answered = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                json_schema = response["content"].get("application/json", {}).get("schema")
                if json_schema is None:
                    # Not JSON at all: text, or a file's bytes (a message's media).
                    assert set(response["content"]) & {"text/plain", "application/octet-stream"}, (
                        path,
                        method,
                        status,
                    )
                    continue
                assert set(json_schema) == {"$ref"}, (path, method, status, json_schema)
                name = json_schema["$ref"].rsplit("/", 1)[1]
                assert schemas[name]["type"] == "object" and schemas[name]["properties"]
                if status.startswith("2"):
                    answered += 1
                elif (path, status) != ("/health", "503"):  # unhealthy: the same Health
                    assert name == "Error", (path, method, status)
    assert answered > 40
    assert schemas["Error"]["required"] == ["error", "code"]
    assert set(schemas["Error"]["properties"]) == {"error", "code", "details", "idempotencyKey"}
    send = document["paths"]["/api/whatsapp/{instanceId}/send"]["post"]["responses"]
    assert send["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SentMessage"
    }
    # A send whose outcome is unknown: 202 send_outcome_unknown, an Error with the key.
    assert send["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    # Fields that are sometimes left out (UNSET) are not required.
    assert "webhookSettings" not in schemas["InstanceView"]["required"]
    assert "phone" in schemas["InstanceView"]["required"]  # always there, maybe null


def _request_to(endpoint: object) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/x", "headers": [], "endpoint": endpoint}
    )


def test_a_route_can_only_answer_the_type_it_documents() -> None:
    @doc("A test route", "test", answer=SentMessage)
    async def route(request: Request) -> None: ...

    sent = answer(_request_to(route), SentMessage(id="ABC"))
    assert sent.status_code == 200 and sent.body == b'{"id":"ABC"}'
    with pytest.raises(RuntimeError, match="documents"):
        answer(_request_to(route), Done(success=True))

    @doc("Answers one of two", "test", answer=SentMessage | Done, ok=201)
    async def either(request: Request) -> None: ...

    assert answer(_request_to(either), Done(success=True)).status_code == 201


def test_answers_leave_out_unset_fields_and_keep_nulls() -> None:
    listed = InstanceView(
        id="i",
        name="n",
        description="",
        userId="u",
        engine="sandbox",
        status="connecting",
        phone=None,
        webhookUrl=None,
        webhookEnabled=False,
        createdAt="2026-01-01T00:00:00.000Z",
        updatedAt="2026-01-01T00:00:00.000Z",
        connectionStatus=ConnectionStatus(ready=False, status="connecting", hasQr=False),
    )
    shown = msgspec.json.decode(msgspec.json.encode(listed))
    assert "webhookSettings" not in shown and "engineSettings" not in shown
    assert shown["phone"] is None and shown["webhookUrl"] is None


def test_the_server_serves_the_document_and_a_page_to_browse_it(server: Server) -> None:
    client = server.client()
    assert client.get("/openapi.json").json()["openapi"] == "3.1.0"
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_metrics_need_an_admin_or_the_token(server: Server) -> None:
    from tests.server import Api

    admin = Api.login(server)
    assert server.client().get("/metrics").status_code == 401
    admin.create_user("metrics-user@example.com", password="metrics-password")
    user = Api.login(server, "metrics-user@example.com", "metrics-password")
    assert user.http.get("/metrics").status_code == 403
    text = admin.http.get("/metrics").text
    for name in (
        "whatsapp_instances",
        "whatsapp_messages_sent_total",
        "whatsapp_event_store_position",
        "whatsapp_projection_lag_events",
        "whatsapp_actor_mailbox",
        "process_resident_memory_bytes",
        'whatsapp_http_requests_total{method="POST",route="/api/auth/login",status="200"}',
    ):
        assert name in text, name
