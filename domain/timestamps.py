"""ISO 8601 times, the one way the product writes and reads them.

Written: always UTC with a `Z`; with milliseconds in every answer, read model and webhook
(`iso_ms`), with microseconds in the event history, where two events of one millisecond
must still be told apart (`iso_us`). Read (`parse`): a date, or a date and time with or
without an offset (none means UTC); a date alone is the first instant of that day, or its
last with `end_of_day` (so `endDate=2026-12-02` takes in the whole of 2 December). Anything
else, including a time that falls outside the years 1 to 9999 once in UTC, is an
`InvalidTime` whose message says what is wrong.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

__all__ = ["InvalidTime", "iso_epoch", "iso_ms", "iso_seconds", "iso_us", "parse"]


class InvalidTime(ValueError):
    """Text that is not an ISO 8601 date or time this product can use; the message says
    why, to follow the name of what was given ("'endDate' " + message)."""


NOT_A_TIME = "must be an ISO 8601 date or time, e.g. 2026-12-02 or 2026-12-02T10:00:00Z"
OUT_OF_RANGE = "must fall within the years 1 to 9999 in UTC"


def iso_ms(ts: datetime) -> str:
    """`2026-12-02T18:15:44.631Z`: how every answer shows a time (a naive time is UTC)."""
    global _last
    last = _last
    if last[0] is ts:  # the projections format one event's time several times in a row
        return last[1]
    text = _utc(ts).isoformat(timespec="milliseconds") + "Z"
    _last = (ts, text)
    return text


_last: tuple[datetime | None, str] = (None, "")


def iso_seconds(seconds: int | None) -> str | None:
    """Seconds since the epoch as `iso_ms` writes times (0 or None: unknown, None)."""
    if not seconds:
        return None
    return iso_epoch(seconds)


def iso_epoch(seconds: float) -> str:
    """An epoch time in seconds (an engine's `retry_at`) as `iso_ms` writes it."""
    return iso_ms(datetime.fromtimestamp(seconds, UTC))


def iso_us(ts: datetime) -> str:
    """`2026-12-02T18:15:37.136412Z`: how the event history shows a time."""
    return _utc(ts).isoformat(timespec="microseconds") + "Z"


def _utc(ts: datetime) -> datetime:
    """`ts` in UTC, without its offset (so that isoformat writes none)."""
    if ts.tzinfo is not None and ts.utcoffset():
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None)


def parse(text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or time as an aware UTC datetime (see the module)."""
    if not text.isascii() or not text.strip():  # int() would take other scripts' digits
        raise InvalidTime(NOT_A_TIME)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max if end_of_day else time.min, UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTime(NOT_A_TIME) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidTime(OUT_OF_RANGE) from None
