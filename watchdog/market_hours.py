"""Trading hours: each contract's own sessions from its contract details, and the fallback table.

IB gives every contract `tradingHours` / `liquidHours` in its `timeZoneId` (contract details; layout
since API 9.70: `20261130:0930-20261130:1600;20261126:CLOSED`, sessions may span midnight), holidays
and early closes included. `parse_hours` turns that into epoch intervals and `session_at` answers
"regular", "extended" or "closed" — or None when the text does not cover the moment, in which case the
kill switch falls back to the table below and says so.

The fallback table is deliberately simple and conservative (a "no" only means the kill switch uses an
aggressive limit order with `outsideRth` instead of a market order, which every session accepts):

| sec type | regular hours (America/New_York, DST-correct via zoneinfo) |
|---|---|
| STK, OPT, WAR, CFD, IND | Mon–Fri 09:30–16:00 |
| FUT, FOP, CONTFUT | Sun 18:00 – Fri 17:00, closed daily 17:00–18:00 (CME Globex) |
| CASH | Sun 17:00 – Fri 17:00, around the clock in between |
| anything else | never (limit orders only) |

The table knows no holidays, half days or non-US markets: it is used only when a contract's details
carry no hours for the moment in question. Outside its regular hours it knows one extended session,
US stocks' pre- and after-market (STK, Mon–Fri 04:00–20:00 New York); US options, warrants, indices,
futures and FX have none, so outside regular hours the table calls them closed (`table_session`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NEW_YORK = ZoneInfo("America/New_York")

_EQUITY_TYPES = frozenset({"STK", "OPT", "WAR", "CFD", "IND"})
_FUTURE_TYPES = frozenset({"FUT", "FOP", "CONTFUT"})
_FX_TYPES = frozenset({"CASH"})

_FRI, _SAT, _SUN = 4, 5, 6


def _minutes(t: dt.datetime) -> int:
    return t.hour * 60 + t.minute


def _equity_open(t: dt.datetime) -> bool:
    return t.weekday() <= _FRI and 9 * 60 + 30 <= _minutes(t) < 16 * 60


def _future_open(t: dt.datetime) -> bool:
    day, m = t.weekday(), _minutes(t)
    if day == _SAT:
        return False
    if day == _SUN:
        return m >= 18 * 60
    if day == _FRI:
        return m < 17 * 60
    # Mon–Thu: the daily maintenance break 17:00–18:00
    return not (17 * 60 <= m < 18 * 60)


def _fx_open(t: dt.datetime) -> bool:
    day, m = t.weekday(), _minutes(t)
    if day == _SAT:
        return False
    if day == _SUN:
        return m >= 17 * 60
    if day == _FRI:
        return m < 17 * 60
    return True


def is_regular_hours(sec_type: str, now: float) -> bool:
    """Whether a market order is accepted for `sec_type` at epoch `now` (see the module table)."""
    t = dt.datetime.fromtimestamp(now, NEW_YORK)
    kind = sec_type.upper()
    if kind in _EQUITY_TYPES:
        return _equity_open(t)
    if kind in _FUTURE_TYPES:
        return _future_open(t)
    if kind in _FX_TYPES:
        return _fx_open(t)
    return False


Session = Literal["regular", "extended", "closed"]


def table_session(sec_type: str, regular: bool, now: float) -> Session:
    """The session by the table, given its regular-hours answer `regular` (the calendar in use, which
    may be swapped): "extended" only for a US stock in the 04:00–20:00 New York weekday window."""
    if regular:
        return "regular"
    t = dt.datetime.fromtimestamp(now, NEW_YORK)
    if sec_type.upper() == "STK" and t.weekday() <= _FRI and 4 * 60 <= _minutes(t) < 20 * 60:
        return "extended"
    return "closed"


Intervals = tuple[tuple[float, float], ...]

# IB's timeZoneId values that are not (or no longer) IANA names on every system
IB_ZONES = {
    "US/Eastern": "America/New_York",
    "EST": "America/New_York",
    "EST5EDT": "America/New_York",
    "US/Central": "America/Chicago",
    "CST": "America/Chicago",
    "CST6CDT": "America/Chicago",
    "US/Pacific": "America/Los_Angeles",
    "MET": "Europe/Berlin",
    "CET": "Europe/Berlin",
    "GB": "Europe/London",
    "Hongkong": "Asia/Hong_Kong",
    "Japan": "Asia/Tokyo",
    "JST": "Asia/Tokyo",
    "Australia/NSW": "Australia/Sydney",
    "GMT": "UTC",
}


def zone(time_zone: str) -> ZoneInfo | None:
    """The zone of an IB timeZoneId, or None when unknown."""
    try:
        return ZoneInfo(IB_ZONES.get(time_zone, time_zone)) if time_zone else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


_DAY = re.compile(r"\d{8}")
_SEGMENT = re.compile(r"(\d{4})-(?:(\d{8}):)?(\d{4})")  # 0930-1600 (old) or 0930-20261130:1600 (current)


def _stamp(day: str, hhmm: str, tz: ZoneInfo) -> float:
    d = dt.datetime.strptime(day + hhmm, "%Y%m%d%H%M").replace(tzinfo=tz)
    return d.timestamp()


def _next_day(day: str) -> str:
    return (dt.datetime.strptime(day, "%Y%m%d") + dt.timedelta(days=1)).strftime("%Y%m%d")


def parse_hours(text: str, time_zone: str) -> tuple[Intervals, tuple[float, float] | None]:
    """(sessions, span) from an IB hours string; ((), None) — unknown, so the caller falls back to the
    table and says so — when the text or the zone cannot be read.

    Accepts the current layout (`20261130:1700-20261201:1600`) and the old one
    (`20261130:0930-1600,1700-1800`), where an end time before the start time means the session ends
    the next day (CME's `20261201:1700-1600` runs overnight). Every day must be `YYYYMMDD` followed by
    `:CLOSED` or sessions with both a start and an end; anything else (`20261201`, `20261201:0930-`)
    makes the whole text unknown rather than a bogus session. Never raises; never yields a session
    that ends before it starts. The span runs from the first listed day's midnight to the last listed
    day's end, closed days included."""
    tz = zone(time_zone)
    if tz is None or not text:
        return (), None
    sessions: list[tuple[float, float]] = []
    days: list[str] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(";"))):
            day, colon, rest = part.partition(":")
            if not colon or not _DAY.fullmatch(day) or not rest:
                return (), None
            days.append(day)
            if rest.strip().upper() == "CLOSED":
                _stamp(day, "0000", tz)  # a real date
                continue
            for segment in rest.split(","):
                found = _SEGMENT.fullmatch(segment.strip())
                if found is None:
                    return (), None
                start_time, end_day, end_time = found.groups()
                begin = _stamp(day, start_time, tz)
                if end_day is None:  # old layout: an end before the start is on the next day
                    end_day = day if end_time > start_time else _next_day(day)
                finish = _stamp(end_day, end_time, tz)
                if finish < begin:  # an explicit end day before the start, or a DST gap: unreadable
                    return (), None
                if finish > begin:
                    sessions.append((begin, finish))
                days.append(end_day)
    except (ValueError, OverflowError):
        return (), None
    if not days:
        return (), None
    first, last = min(days), max(days)
    try:
        begin = _stamp(first, "0000", tz)
        finish = (dt.datetime.strptime(last, "%Y%m%d").replace(tzinfo=tz) + dt.timedelta(days=1)).timestamp()
    except (ValueError, OverflowError):
        return (), None
    return tuple(sorted(sessions)), (begin, finish)


def session_at(
    span: tuple[float, float] | None, liquid: Intervals, trading: Intervals, now: float
) -> Session | None:
    """A contract's session at epoch `now` from its own parsed hours (`parse_hours`); None when the
    hours do not cover `now`."""
    if span is None or not span[0] <= now < span[1]:
        return None
    if any(a <= now < b for a, b in liquid):
        return "regular"
    if any(a <= now < b for a, b in trading):
        return "extended"
    return "closed"


def next_open(trading: Intervals, now: float) -> float | None:
    """Epoch of the next session start after `now`, if the hours list one."""
    later = [a for a, _ in trading if a > now]
    return min(later) if later else None


def next_change(
    is_open: Callable[[float], bool], now: float, *, horizon: float = 8 * 86400.0, step: float = 1800.0
) -> float | None:
    """Epoch of the next open↔closed change of a calendar after `now`, to the second; None within `horizon`.

    Looks every `step` seconds (sessions of the table above change on the half hour), then bisects
    the step where the answer flips: about 400 calls for a week, so callers cache the answer until then.
    """
    state = is_open(now)
    before = now
    t = (now // step + 1) * step
    while t <= now + horizon:
        if is_open(t) != state:
            low, high = before, t  # the change lies in (low, high]
            while high - low > 1.0:
                mid = (low + high) / 2
                if is_open(mid) == state:
                    low = mid
                else:
                    high = mid
            return float(math.ceil(high)) if is_open(math.ceil(high)) != state else high
        before = t
        t += step
    return None
