"""Meta's Cloud API error codes, and what each becomes in this API.

From Meta's error code reference
(https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes/)
and the grouping a widely used client library makes of them (pywa, `pywa/errors.py`:
authorization, throttling, integrity, sending). Meta asks clients to act on `code`
(and the `details` of webhooks), not on message text; a Graph answer may also come
from whatever host `graphBaseUrl` names, so its free text is never repeated: the
answer keeps the HTTP status, Meta's numeric code and subcode, a well-formed trace id
and the title below, which is ours.

What each kind of error becomes:

| kind | status, code | why |
|---|---|---|
| auth | 502 `cloud_auth_failed` | the token is expired, revoked or lacks a permission; the instance disconnects until its settings change |
| rate | 429 `rate_limited` / `recipient_rate_limited`, `Retry-After` per code | 130429 (throughput) passes within a second; 131056 is per recipient; 4 and 80007 per app and account |
| restricted | 403 `cloud_restricted` | 131048 (spam rate limit), blocks and locks: retrying does not help |
| temporary | 503 `cloud_unavailable`, `Retry-After` | 1, 2, 131000, 131016, 133004, 131057: Meta's side; retry later |
| window | 400 `outside_24h_window` | 131047: more than 24 hours since the customer last wrote; only a template may start again |
| rejected | 400 `cloud_rejected` | anything else Meta refuses in the request |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from actors.engines.base import EngineError

_FBTRACE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # Meta's are 11-23 such characters


@dataclass(frozen=True)
class MetaCode:
    """What Meta says a code means (`title`, Meta's own words) and how to treat it."""

    title: str
    kind: str  # auth, rate, restricted, temporary, window, rejected
    retry_after: int | None = None


CODES: dict[int, MetaCode] = {
    # Authorization
    0: MetaCode("AuthException", "auth"),
    3: MetaCode("API method", "auth"),
    10: MetaCode("Permission denied", "auth"),
    190: MetaCode("Access token has expired", "auth"),
    # Throttling
    4: MetaCode("Too many calls", "rate", 60),
    80007: MetaCode("Rate limit issues", "rate", 60),
    130429: MetaCode("Rate limit hit", "rate", 1),
    131056: MetaCode("(Business Account, Consumer Account) pair rate limit hit", "rate", 6),
    131048: MetaCode("Spam rate limit hit", "restricted"),
    # Integrity
    368: MetaCode("Temporarily blocked for policies violations", "restricted"),
    130497: MetaCode(
        "Business account is restricted from messaging users in this country", "restricted"
    ),
    131031: MetaCode("Account has been locked", "restricted"),
    131042: MetaCode("Business eligibility payment issue", "restricted"),
    # Temporary
    1: MetaCode("API Unknown", "temporary", 5),
    2: MetaCode("API Service", "temporary", 5),
    131000: MetaCode("Something went wrong", "temporary", 5),
    131016: MetaCode("Service unavailable", "temporary", 5),
    131057: MetaCode("Account in maintenance mode", "temporary", 60),
    133004: MetaCode("Server temporarily unavailable", "temporary", 5),
    # Sending
    100: MetaCode("Invalid parameter", "rejected"),
    131005: MetaCode("Access denied", "rejected"),
    131008: MetaCode("Required parameter is missing", "rejected"),
    131009: MetaCode("Parameter value is not valid", "rejected"),
    131021: MetaCode("Recipient cannot be sender", "rejected"),
    131026: MetaCode("Message undeliverable", "rejected"),
    131030: MetaCode("Recipient phone number not in allowed list", "rejected"),
    131045: MetaCode("Incorrect certificate", "rejected"),
    131047: MetaCode("Re-engagement message", "window"),
    131049: MetaCode("Meta chose not to deliver", "rejected"),
    131050: MetaCode("User has stopped receiving marketing messages", "rejected"),
    131051: MetaCode("Unsupported message type", "rejected"),
    131052: MetaCode("Media download error", "rejected"),
    131053: MetaCode("Media upload error", "rejected"),
    131062: MetaCode("Business-scoped user ID recipients are not supported", "rejected"),
    132000: MetaCode("Template param count mismatch", "rejected"),
    132001: MetaCode("Template does not exist", "rejected"),
    132005: MetaCode("Template hydrated text too long", "rejected"),
    132007: MetaCode("Template format character policy violated", "rejected"),
    132012: MetaCode("Template parameter format mismatch", "rejected"),
    132015: MetaCode("Template is paused", "rejected"),
    132016: MetaCode("Template is disabled", "rejected"),
    135000: MetaCode("Generic user error", "rejected"),
}
API_PERMISSION = MetaCode("API permission", "auth")  # 200-299


def meta_code(code: int | None) -> MetaCode | None:
    """Meta's meaning of a code, if it is one this table knows."""
    if code is None:
        return None
    if 200 <= code <= 299:
        return API_PERMISSION
    return CODES.get(code)


def whole_number(value: Any) -> int | None:
    """A code as Meta sends it: a whole number of sane size, else nothing."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    return None


def graph_error(status: int, body: Any) -> EngineError:
    """A Graph API error answer (`status`, its JSON `body`) as an API error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code, subcode = whole_number(error.get("code")), whole_number(error.get("error_subcode"))
    trace = error.get("fbtrace_id")
    known = meta_code(code)
    details: dict[str, Any] = {"httpStatus": status}
    if code is not None:
        details["code"] = code
    if subcode is not None:
        details["subcode"] = subcode
    if known is not None:
        details["title"] = known.title
    if isinstance(trace, str) and _FBTRACE.match(trace):
        details["fbtraceId"] = trace
    said = f"code {code}" if code is not None else f"HTTP {status}"
    kind = known.kind if known is not None else _kind_of_status(status)
    what = f"{known.title} ({said})" if known is not None else said
    if kind == "auth":
        return EngineError(
            f"Meta refused the access token: {what}", "cloud_auth_failed", 502, details
        )
    if kind == "rate":
        retry = known.retry_after if known is not None else 60
        per_recipient = code == 131056
        return EngineError(
            f"Meta's rate limit was hit: {what}"
            + ("; this recipient gets no more for a moment" if per_recipient else ""),
            "recipient_rate_limited" if per_recipient else "rate_limited",
            429,
            details,
            retry_after=retry,
        )
    if kind == "restricted":
        return EngineError(
            f"Meta restricts this account's sending: {what}; retrying does not help",
            "cloud_restricted",
            403,
            details,
        )
    if kind == "temporary":
        retry = known.retry_after if known is not None else 5
        return EngineError(
            f"The Graph API failed for now: {what}",
            "cloud_unavailable",
            503,
            details,
            retry_after=retry,
        )
    if kind == "window":
        return EngineError(
            "More than 24 hours have passed since the customer last wrote: only a template "
            f"message can reach them now ({said})",
            "outside_24h_window",
            400,
            details,
        )
    return EngineError(f"The Graph API refused the request: {what}", "cloud_rejected", 400, details)


def _kind_of_status(status: int) -> str:
    if status == 429:
        return "rate"
    if status in (401, 403):
        return "auth"
    if status >= 500:
        return "temporary"
    return "rejected"


def unreachable() -> EngineError:
    # Fixed text: the connection error's own (host, port, errno) would tell an open port
    # from a closed one.
    return EngineError(
        "The Graph API could not be reached", "cloud_unavailable", 503, retry_after=5
    )


def bad_answer() -> EngineError:
    return EngineError("The Graph API's answer was not understood", "cloud_bad_answer", 502)


def is_auth(error: EngineError) -> bool:
    return error.code == "cloud_auth_failed"


def is_temporary(error: EngineError) -> bool:
    """Whether trying again later may succeed (outages, rate limits, no answer)."""
    return error.status in (429, 503) or error.code == "cloud_bad_answer"
