"""Query-string parameters shared by list routes: paging, dates, periods."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from starlette.datastructures import QueryParams

from app.answers import Pagination
from app.errors import ApiError
from domain import timestamps

MAX_LIMIT = 1000
MAX_SKIP = 10**9
MAX_POSITION = 2**62  # event store positions are signed 64-bit integers (SQLite, MongoDB)
MAX_DIGITS = 20  # more digits than any 64-bit number: refused before int() reads them


def whole_number(raw: str) -> int | None:
    """`raw` as a whole number if it is one written in ASCII digits (an optional leading
    minus), else None. `int()` alone also takes '²'-like Unicode digits, underscores and
    spaces, and spends quadratic time on (or refuses) thousands of digits."""
    digits = raw[1:] if raw[:1] == "-" else raw
    if not digits or len(digits) > MAX_DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    return int(raw)


def integer(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    value = whole_number(raw)
    if value is None:
        raise ApiError(
            400, "invalid_query", f"'{name}' must be a whole number (got '{shorten(raw)}')"
        )
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"'{name}' must be between {low} and {high}")
    return value


def position(raw: str, name: str) -> int:
    """An event store position given in a header (Last-Event-ID); 400 unless 0..2^62."""
    value = whole_number(raw.strip())
    if value is None or not 0 <= value <= MAX_POSITION:
        raise ApiError(
            400,
            f"invalid_{name.lower().replace('-', '_')}",
            f"{name} must be an event position from 0 to {MAX_POSITION}",
        )
    return value


def shorten(text: str, limit: int = 40) -> str:
    """At most `limit` characters of something a client sent, for an error message."""
    return text if len(text) <= limit else text[:limit] + "…"


def paging(params: QueryParams, default_limit: int) -> tuple[int, int]:
    return (
        integer(params, "limit", default_limit, 1, MAX_LIMIT),
        integer(params, "skip", 0, 0, MAX_SKIP),
    )


def pagination(total: int, limit: int, skip: int) -> Pagination:
    return Pagination(total=total, limit=limit, skip=skip, hasMore=skip + limit < total)


def time_given(raw: str, name: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or time (`domain.timestamps.parse`), or a 400 that names `name`."""
    try:
        return timestamps.parse(raw, end_of_day=end_of_day)
    except timestamps.InvalidTime as error:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ApiError(400, "invalid_query", f"'{name}' {error} (got '{shown}')") from None


def window_bounds(params: QueryParams) -> tuple[str | None, str | None]:
    """`startDate` and `endDate` as the read models store times (UTC, ms, Z), both ends
    inclusive; a date alone is the whole of that day (start of it, end of it)."""
    start, end = params.get("startDate"), params.get("endDate")
    return (
        timestamps.iso_ms(time_given(start, "startDate")) if start else None,
        timestamps.iso_ms(time_given(end, "endDate", end_of_day=True)) if end else None,
    )


PERIODS = ("today", "week", "month", "year", "all")


def period_start(period: str, today: date) -> date | None:
    """First day of the calendar period (UTC) containing `today`; None for all time."""
    if period == "today":
        return today
    if period == "week":
        return today - timedelta(days=today.weekday())  # Monday
    if period == "month":
        return today.replace(day=1)
    if period == "year":
        return today.replace(month=1, day=1)
    return None


def period(params: QueryParams, allowed: tuple[str, ...], default: str) -> tuple[str, date | None]:
    value = params.get("period") or default
    if value not in allowed:
        raise ApiError(
            400, "invalid_period", f"'period' must be one of {', '.join(allowed)} (got '{value}')"
        )
    return value, period_start(value, datetime.now(UTC).date())
