"""One module writes and reads ISO 8601 times (domain/timestamps.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import cli_events
from domain.instance import Instance
from domain.timestamps import InvalidTime, iso_ms, iso_us, parse
from tests.places import Storage

MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
AT = datetime(2026, 12, 2, 18, 15, 44, 631_904, tzinfo=UTC)


def test_answers_show_milliseconds_and_the_history_microseconds() -> None:
    assert iso_ms(AT) == "2026-12-02T18:15:44.631Z"
    assert iso_us(AT) == "2026-12-02T18:15:44.631904Z"
    # Whole seconds keep their fraction (isoformat alone would drop it).
    whole = AT.replace(microsecond=0)
    assert (iso_ms(whole), iso_us(whole)) == (
        "2026-12-02T18:15:44.000Z",
        "2026-12-02T18:15:44.000000Z",
    )
    # Another offset is written in UTC; a naive time is taken as UTC.
    plus_two = AT.astimezone(timezone(timedelta(hours=2)))
    assert iso_ms(plus_two) == "2026-12-02T18:15:44.631Z"
    assert iso_us(AT.replace(tzinfo=None)) == "2026-12-02T18:15:44.631904Z"


@given(st.datetimes(timezones=st.just(UTC)))
def test_every_time_is_written_in_one_shape_and_reads_back(ts: datetime) -> None:
    assert MS.match(iso_ms(ts)) and US.match(iso_us(ts))
    assert parse(iso_us(ts)) == ts
    assert parse(iso_ms(ts)) == ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def test_a_date_alone_is_the_start_or_the_end_of_that_day() -> None:
    assert parse("2026-12-02") == datetime(2026, 12, 2, tzinfo=UTC)
    end = parse("2026-12-02", end_of_day=True)
    assert end == datetime(2026, 12, 2, 23, 59, 59, 999_999, tzinfo=UTC)
    assert iso_ms(end) == "2026-12-02T23:59:59.999Z"  # every stored time of that day is <=
    # A time is what it says, end of day or not.
    assert parse("2026-12-02T10:00:00Z", end_of_day=True) == datetime(2026, 12, 2, 10, tzinfo=UTC)


def test_offsets_and_missing_offsets() -> None:
    assert parse("2026-12-02T10:00:00+02:00") == datetime(2026, 12, 2, 8, tzinfo=UTC)
    assert parse("2026-12-02T10:00:00") == datetime(2026, 12, 2, 10, tzinfo=UTC)
    assert parse("2026-12-02T10:00:00.5Z").microsecond == 500_000


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC
    ],
)
def test_times_outside_the_calendar_in_utc_are_refused(text: str) -> None:
    with pytest.raises(InvalidTime, match="years 1 to 9999"):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "yesterday",
        "2026-02-30",
        "2026-12-02T25:00:00Z",
        "²⁰²⁶-12-02",  # digits of other scripts
        "\uff12\uff10\uff12\uff16-12-02",  # fullwidth digits
        "2026-12-02T10:00:00+24:00",
        "9" * 5000,
    ],
)
def test_what_is_not_a_date_or_time_is_refused(text: str) -> None:
    with pytest.raises(InvalidTime, match="ISO 8601"):
        parse(text)


@given(st.text(max_size=60))
def test_any_text_is_a_time_or_refused_with_a_reason(text: str) -> None:
    try:
        parsed = parse(text)
    except InvalidTime:
        return
    assert parsed.tzinfo is UTC


# Fixed offsets, from -23:59 to +23:59 (a zone's folds and gaps would not round-trip).
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(timezones=OFFSETS))
def test_a_time_at_any_offset_reads_as_the_same_instant_or_is_refused(ts: datetime) -> None:
    try:
        parsed = parse(ts.isoformat())
    except InvalidTime as error:
        # Only where the instant falls outside the calendar once in UTC.
        assert "years 1 to 9999" in str(error)
        assert ts.year in (1, 9999)
        return
    assert parsed == ts and parsed.tzinfo is UTC


def test_events_since_prints_the_events_at_or_after_that_time(
    storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    instance = Instance(
        user_id="u", name="I", description="", engine="sandbox", webhook={}, engine_settings={}
    )
    # Three QR codes: 09:59:59.9, 10:00:00.5 and 10:00:01 (the stored times of the events).
    for code, at in (
        ("one", datetime(2026, 12, 2, 9, 59, 59, 900_000, tzinfo=UTC)),
        ("two", datetime(2026, 12, 2, 10, 0, 0, 500_000, tzinfo=UTC)),
        ("three", datetime(2026, 12, 2, 10, 0, 1, tzinfo=UTC)),
    ):
        instance.trigger_event(Instance.QrReceived, qr_code=code, timestamp=at)
    storage.event_store().save(instance)
    settings = storage.settings()

    def since(text: str) -> list[str]:
        assert cli_events.run(settings, str(instance.id), 0, text, False, True) == 0
        shown = [line for line in capsys.readouterr().out.splitlines() if "QrReceived" in line]
        return [code for code in ("one", "two", "three") for line in shown if code in line]

    # A whole second takes in the events within it; an offset is the same instant in UTC.
    assert since("2026-12-02T10:00:00Z") == ["two", "three"]
    assert since("2026-12-02T12:00:00.6+02:00") == ["three"]
    assert since("2026-12-02") == ["one", "two", "three"]
    assert cli_events.run(settings, None, 0, "9999-12-31T23:59:59-14:00", False, True) == 2
    assert "years 1 to 9999" in capsys.readouterr().err
