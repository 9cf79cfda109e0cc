"""API fuzzing with schemathesis against the server's own /openapi.json, as a user and as an admin.

Every operation gets a bounded number of generated requests: no 5xx, and every answer
conforms to what the document says (status codes, content types, JSON bodies).
"Schema-valid data is accepted" is left out: rules no schema can say (the current
password must be right, a cloud instance needs credentials) rightly answer 400.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.drills import record
from tests.server import Api, running_server

EXAMPLES = 8


def fuzz(url: str, token: str, document: dict) -> tuple[int, int, list[str]]:
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=url, headers={"Authorization": f"Bearer {token}"})
    failures: list[str] = []
    operations = 0
    requests = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            nonlocal requests
            requests += 1
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        operations += 1
        try:
            check()
        except BaseException as failure:  # a FailureGroup describes every distinct failure
            if isinstance(failure, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(failure)[:1500]}")
    return operations, requests, failures


# Fuzzing runs on SQLite only: it is the suite's longest test, and what it finds is in the
# HTTP layer; the same routes run on MongoDB in the bad-input and security modules.
@pytest.mark.parametrize("role", ["user", "admin"])
def test_every_operation_survives_generated_requests(tmp_path: Path, role: str) -> None:
    with running_server(tmp_path) as server:
        admin = Api.login(server)
        api = admin
        if role == "user":
            admin.create_user("fuzz@example.com", password="fuzz-password")
            api = Api.login(server, "fuzz@example.com", "fuzz-password")
        # Something to find: one paired instance with a conversation.
        instance = api.create_instance("Fuzzed")["id"]
        api.pair(instance, "15550009001")
        api.send(instance, "15550009002", "hello")
        document = api.http.get("/openapi.json").json()
        token = api.http.headers["Authorization"].split(" ", 1)[1]
        operations, requests, failures = fuzz(server.url, token, document)
        record(
            "API fuzzing (schemathesis)",
            operations=operations,
            requests=requests,
            failures=len(failures),
        )
        assert operations >= 40
        assert "Traceback" not in server.log_text() or not failures
        assert not failures, "\n\n".join(failures)
