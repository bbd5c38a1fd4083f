"""Regular trading hours per security type, across DST changes (America/New_York)."""

from __future__ import annotations

import datetime as dt

import pytest

from watchdog.market_hours import NEW_YORK, is_regular_hours, next_change


def ny(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=NEW_YORK).timestamp()


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (ny(2025, 1, 15, 9, 29), False),  # Wednesday in winter (EST), one minute before the open
        (ny(2025, 1, 15, 9, 30), True),
        (ny(2025, 1, 15, 15, 59), True),
        (ny(2025, 1, 15, 16, 0), False),
        (ny(2025, 7, 15, 9, 30), True),  # summer (EDT): same wall-clock hours
        (ny(2025, 7, 15, 16, 0), False),
        (ny(2025, 1, 18, 12, 0), False),  # Saturday
        (ny(2025, 1, 19, 12, 0), False),  # Sunday
    ],
)
def test_stocks_trade_0930_to_1600_new_york_on_weekdays(when: float, expected: bool) -> None:
    assert is_regular_hours("STK", when) is expected
    assert is_regular_hours("OPT", when) is expected


def test_the_stock_open_follows_the_dst_switch_in_utc() -> None:
    # 2025-03-10 (Monday after the spring switch): 09:30 EDT = 13:30 UTC; a week earlier 14:30 UTC
    after = dt.datetime(2025, 3, 10, 13, 30, tzinfo=dt.UTC).timestamp()
    before = dt.datetime(2025, 3, 3, 13, 30, tzinfo=dt.UTC).timestamp()
    assert is_regular_hours("STK", after) is True
    assert is_regular_hours("STK", before) is False  # 08:30 EST


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (ny(2025, 1, 19, 17, 59), False),  # Sunday before the Globex open
        (ny(2025, 1, 19, 18, 0), True),
        (ny(2025, 1, 15, 3, 0), True),  # overnight
        (ny(2025, 1, 15, 17, 0), False),  # daily maintenance break
        (ny(2025, 1, 15, 17, 59), False),
        (ny(2025, 1, 15, 18, 0), True),
        (ny(2025, 1, 17, 16, 59), True),  # Friday before the weekend close
        (ny(2025, 1, 17, 17, 0), False),
        (ny(2025, 1, 18, 12, 0), False),  # Saturday
    ],
)
def test_futures_trade_nearly_around_the_clock(when: float, expected: bool) -> None:
    assert is_regular_hours("FUT", when) is expected
    assert is_regular_hours("FOP", when) is expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (ny(2025, 1, 19, 16, 59), False),
        (ny(2025, 1, 19, 17, 0), True),  # Sunday open
        (ny(2025, 1, 15, 17, 30), True),  # no daily break for FX
        (ny(2025, 1, 17, 17, 0), False),  # Friday close
    ],
)
def test_fx_trades_from_sunday_to_friday_1700(when: float, expected: bool) -> None:
    assert is_regular_hours("CASH", when) is expected


def test_unknown_security_types_never_count_as_regular_hours() -> None:
    # a "no" means a limit order with outsideRth, which every session accepts
    assert is_regular_hours("BOND", ny(2025, 1, 15, 12, 0)) is False


def _stocks(t: float) -> bool:
    return is_regular_hours("STK", t)


@pytest.mark.parametrize(
    ("now", "change"),
    [
        (ny(2025, 1, 15, 12, 0), ny(2025, 1, 15, 16, 0)),  # open: closes at 16:00
        (ny(2025, 1, 15, 16, 0), ny(2025, 1, 16, 9, 30)),  # just closed: opens tomorrow 09:30
        (ny(2025, 1, 17, 17, 0), ny(2025, 1, 20, 9, 30)),  # Friday evening: Monday's open
        (ny(2025, 3, 7, 17, 0), ny(2025, 3, 10, 9, 30)),  # across the DST change (EST → EDT)
        (
            ny(
                2025,
                1,
                15,
                9,
                29,
            )
            + 59,
            ny(2025, 1, 15, 9, 30),
        ),  # one second before the open
    ],
)
def test_next_change_finds_the_next_open_or_close_to_the_second(now: float, change: float) -> None:
    assert next_change(_stocks, now) == change


def test_next_change_is_none_for_a_calendar_that_never_changes() -> None:
    assert next_change(lambda _t: True, ny(2025, 1, 15, 12, 0)) is None
