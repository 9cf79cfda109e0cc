from datetime import date

import pytest
from freezegun import freeze_time
from starlette.datastructures import QueryParams

from app import query
from app.errors import ApiError


@pytest.mark.parametrize(
    ("period", "start"),
    [
        ("today", date(2026, 3, 4)),
        ("week", date(2026, 3, 2)),  # the Monday of that week
        ("month", date(2026, 3, 1)),
        ("year", date(2026, 1, 1)),
        ("all", None),
    ],
)
def test_periods_are_calendar_aligned_in_utc(period: str, start: date | None) -> None:
    # 23:30 on a Wednesday in UTC is already Thursday in Tokyo: UTC decides.
    with freeze_time("2026-03-04T23:30:00Z"):
        assert query.period(QueryParams({"period": period}), query.PERIODS, "month") == (
            period,
            start,
        )


def test_a_week_starting_on_monday_includes_monday_itself() -> None:
    with freeze_time("2026-03-02T00:00:00Z"):
        assert query.period(QueryParams({"period": "week"}), query.PERIODS, "week")[1] == date(
            2026, 3, 2
        )


def test_new_year_boundary() -> None:
    with freeze_time("2027-01-01T00:00:01Z"):
        assert query.period(QueryParams({}), ("year",), "year")[1] == date(2027, 1, 1)
    with freeze_time("2026-12-31T23:59:59Z"):
        assert query.period(QueryParams({}), ("year",), "year")[1] == date(2026, 1, 1)


def test_bad_periods_and_paging_are_400() -> None:
    with pytest.raises(ApiError) as raised:
        query.period(QueryParams({"period": "decade"}), ("week", "month"), "month")
    assert raised.value.status == 400 and raised.value.code == "invalid_period"
    for bad in ({"limit": "0"}, {"limit": "x"}, {"skip": "-1"}, {"limit": "100000"}):
        with pytest.raises(ApiError):
            query.paging(QueryParams(bad), 50)
    with pytest.raises(ApiError):
        query.window_bounds(QueryParams({"startDate": "yesterday"}))


def test_dates_are_normalised_to_stored_form() -> None:
    def bounds(**given: str) -> tuple[str | None, str | None]:
        return query.window_bounds(QueryParams(given))

    # A date alone is the whole day: from its first millisecond to its last.
    assert bounds(startDate="2026-03-04", endDate="2026-03-04") == (
        "2026-03-04T00:00:00.000Z",
        "2026-03-04T23:59:59.999Z",
    )
    assert bounds(endDate="2026-03-04T10:00:00+02:00") == (None, "2026-03-04T08:00:00.000Z")
    assert bounds() == (None, None)
