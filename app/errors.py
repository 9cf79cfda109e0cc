"""Every error leaves the API as {"error", "code"[, "details"]} with the right status."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError, PersistenceError
from msgspec import UNSET
from pykka import ActorDeadError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from actors.bridge import ActorTimeout
from actors.engines.base import EngineError
from app.answers import Error, ErrorDetails, JSONAnswer
from domain.groups import GroupNotFound, NotGroupAdmin, NotGroupParticipant
from domain.instance import (
    IdempotencyKeyReused,
    InstanceDeleted,
    InstanceDisabled,
    InstanceNotConnected,
    SendOutcomeUnknown,
)
from domain.messages import (
    EditWindowClosed,
    InvalidVote,
    MessageNotFound,
    NotAPoll,
    NotEditable,
    NotOwnMessage,
)
from domain.phone import InvalidPhoneNumber
from domain.user import UserDeactivated
from storage.cluster import LeaseLost

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success, for a person and for a program."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: ErrorDetails | None = None,
        retry_after: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after  # seconds, said with 429 and 503


def not_found(what: str = "instance") -> ApiError:
    return ApiError(404, f"{what}_not_found", f"{what.capitalize()} not found")


def invalid(message: str, field: str | None, problem: str | None = None) -> ApiError:
    """A 400 `validation_error`: `message` for a person; `details` say which field (dotted
    for nested JSON fields, None for the body as a whole) and what is wrong with it."""
    return ApiError(
        400, "validation_error", message, ErrorDetails(field=field, problem=problem or message)
    )


def request_id(request: Request) -> str:
    """The id the access log gave this request (also its X-Request-Id answer header)."""
    return str(request.scope.get("request_id", "-"))


def error_response(
    status: int,
    code: str,
    message: str,
    details: ErrorDetails | None = None,
    headers: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
) -> Response:
    body = Error(
        error=message,
        code=code,
        details=UNSET if details is None else details,
        idempotencyKey=UNSET if idempotency_key is None else idempotency_key,
    )
    response = JSONAnswer(body, status_code=status, headers=headers)
    response.error_code = code  # type: ignore[attr-defined]
    return response


_HTTP_CODES = {
    404: ("not_found", "No such route"),
    405: ("method_not_allowed", "Method not allowed on this route"),
}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"Retry-After": str(exc.retry_after)} if exc.status in (429, 503) else None
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    return error_response(exc.status_code, code, message, headers=exc.headers)


def _mapped(status: int, code: str) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return error_response(status, code, str(exc))

    return handler


async def _invalid_vote(request: Request, exc: Exception) -> Response:
    return error_response(
        400, "validation_error", str(exc), details=ErrorDetails(field="options", problem=str(exc))
    )


async def _engine(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    retry = exc.retry_after if exc.retry_after is not None else 60 if exc.status == 429 else None
    headers = {"Retry-After": str(retry)} if retry is not None else None
    # Engines say their details as a dict (actors do not know the answer types); only the
    # fields ErrorDetails declares are answered, so the document stays true.
    details = msgspec.convert(exc.details, ErrorDetails) if exc.details else None
    return error_response(exc.status, exc.code, str(exc), details, headers)


async def _timeout(request: Request, exc: Exception) -> Response:
    log.warning(
        "%s %s: actor timeout: %s request=%s",
        request.method,
        request.url.path,
        exc,
        request_id(request),
    )
    return error_response(
        503,
        "actor_timeout",
        f"The instance did not answer in time ({exc}); try again",
        headers={"Retry-After": "1"},
    )


async def _outcome_unknown(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SendOutcomeUnknown)
    log.warning("%s %s: send outcome unknown: %s", request.method, request.url.path, exc)
    key = exc.idempotency_key
    return error_response(202, "send_outcome_unknown", str(exc), idempotency_key=key)


async def _conflict(request: Request, exc: Exception) -> Response:
    return error_response(409, "conflict", "Someone changed this at the same time; try again")


async def _storage(request: Request, exc: Exception) -> Response:
    log.error(
        "%s %s: storage failure: %s request=%s",
        request.method,
        request.url.path,
        exc,
        request_id(request),
    )
    return error_response(
        503,
        "storage_unavailable",
        "The server cannot write its data right now (disk full or read-only?); "
        "nothing was recorded, try again later",
        headers={"Retry-After": "5"},
    )


async def _actor_gone(request: Request, exc: Exception) -> Response:
    log.warning(
        "%s %s: the instance stopped before answering: %s request=%s",
        request.method,
        request.url.path,
        exc,
        request_id(request),
    )
    return error_response(
        503,
        "instance_unavailable",
        "The instance is restarting; try again in a moment",
        headers={"Retry-After": "1"},
    )


async def _not_connected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InstanceNotConnected)
    node = getattr(getattr(request.app.state, "ctx", None), "cluster", None)
    instance_id = request.path_params.get("instanceId")
    if node is not None and exc.status == "connecting" and node.settling(instance_id):
        # It has just moved to this node and is connecting again: a move, not a state.
        return error_response(
            503,
            "instance_moving",
            "The instance has just moved to another node and is connecting; try again in a moment",
            headers={"Retry-After": "1"},
        )
    return error_response(409, "instance_not_connected", str(exc))


async def _lease_lost(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: %s request=%s", request.method, request.url.path, exc, request_id(request))
    return error_response(
        503,
        "instance_moving",
        "The instance moved to another node before this was stored; nothing was recorded, "
        "try again in a moment",
        headers={"Retry-After": "1"},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    log.exception("%s %s failed request=%s", request.method, request.url.path, rid)
    # Starlette re-raises it for the server to log again: once, with the request id, is enough.
    with contextlib.suppress(AttributeError):
        setattr(exc, LOGGED, True)
    return error_response(
        500, "internal_error", "Something went wrong on the server", headers={REQUEST_ID: rid}
    )


LOGGED = "_whatsapp_api_logged"
REQUEST_ID = "X-Request-Id"


def not_logged_yet(record: logging.LogRecord) -> bool:
    """A logging filter for the server's "Exception in ASGI application" lines: drops those
    whose exception `_unexpected` has logged already, with its request id."""
    error = record.exc_info[1] if record.exc_info else None
    return not getattr(error, LOGGED, False)


def _noting_the_code(handler: Any) -> Any:
    """The access log line names the error code of the answer (scope["error_code"])."""

    async def noted(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        request.scope["error_code"] = getattr(response, "error_code", None)
        return response

    return noted


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http,
    InvalidPhoneNumber: _mapped(400, "invalid_phone"),
    InstanceNotConnected: _not_connected,
    InstanceDeleted: _mapped(404, "instance_not_found"),
    SendOutcomeUnknown: _outcome_unknown,
    InstanceDisabled: _mapped(409, "instance_disabled"),
    IdempotencyKeyReused: _mapped(422, "idempotency_key_reused"),
    UserDeactivated: _mapped(401, "unauthorized"),
    MessageNotFound: _mapped(404, "message_not_found"),
    NotOwnMessage: _mapped(409, "not_own_message"),
    NotEditable: _mapped(409, "not_editable"),
    EditWindowClosed: _mapped(409, "edit_window_closed"),
    NotAPoll: _mapped(409, "not_a_poll"),
    InvalidVote: _invalid_vote,
    GroupNotFound: _mapped(404, "group_not_found"),
    NotGroupAdmin: _mapped(409, "not_group_admin"),
    NotGroupParticipant: _mapped(409, "not_group_participant"),
    EngineError: _engine,
    ActorTimeout: _timeout,
    ActorDeadError: _actor_gone,
    IntegrityError: _conflict,
    LeaseLost: _lease_lost,
    PersistenceError: _storage,
    Exception: _unexpected,
}
EXCEPTION_HANDLERS = {kind: _noting_the_code(h) for kind, h in EXCEPTION_HANDLERS.items()}
