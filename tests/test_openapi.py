from openapi_spec_validator import validate
from starlette.routing import Route

from app.config import Settings
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
