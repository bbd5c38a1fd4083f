"""Each contract's own hours from IB's `tradingHours` / `liquidHours` text (issue 13 review): the old
layout's overnight sessions, garbage read as unknown, and a property test of the parser."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.market_hours import parse_hours, session_at

CHICAGO = ZoneInfo("America/Chicago")


def chicago(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=CHICAGO).timestamp()


def test_an_old_layout_session_ending_before_its_start_ends_the_next_day() -> None:
    """CME's `20261201:1700-1600`: open overnight, not "closed" while Globex trades."""
    trading, span = parse_hours("20261201:1700-1600;20261202:1700-1600", "US/Central")
    assert trading[0] == (chicago(1, 17), chicago(2, 16))
    assert session_at(span, (), trading, chicago(2, 1)) == "extended"  # 01:00 the next morning
    assert session_at(span, (), trading, chicago(2, 16, 30)) == "closed"  # the daily break


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "20261201",  # a day without sessions or CLOSED
        "20261201:0930-",  # a session without an end
        "20261201:0930",
        "20261201:-1600",
        "20261201:2500-2600",
        "2026:0930-1600",
        "20261201:0930-20261201:1600;junk",
        "20261201:1700-20261130:1600",  # an explicit end day before the start
        ":",
    ],
)
def test_an_unreadable_hours_text_is_unknown_not_closed(text: str) -> None:
    assert parse_hours(text, "US/Eastern") == ((), None)


PART = st.one_of(
    st.text(alphabet="0123456789:-;,CLOSED ", max_size=40),
    st.builds(
        lambda d, a, b, e: f"202612{d:02d}:{a:04d}-" + (f"202612{e:02d}:" if e else "") + f"{b:04d}",
        st.integers(0, 32),
        st.integers(0, 2500),
        st.integers(0, 2500),
        st.one_of(st.none(), st.integers(0, 32)),
    ),
    st.builds(lambda d: f"202612{d:02d}:CLOSED", st.integers(0, 32)),
)
ZONES = st.sampled_from(["US/Eastern", "US/Central", "MET", "Hongkong", "Australia/NSW", "Nowhere", ""])


@settings(max_examples=400, deadline=None)
@given(st.lists(PART, max_size=6).map(";".join), ZONES)
def test_the_parser_never_raises_and_never_yields_a_session_ending_before_it_starts(
    text: str, time_zone: str
) -> None:
    sessions, span = parse_hours(text, time_zone)
    assert all(end >= start for start, end in sessions)
    if span is not None:
        assert span[0] < span[1]
    else:
        assert sessions == ()
