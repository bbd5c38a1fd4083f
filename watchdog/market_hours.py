"""Regular trading hours by security type: may a market order be sent for this contract now?

Deliberately simple and conservative (a "no" only means the kill switch uses an aggressive limit
order with `outsideRth` instead of a market order, which every session accepts):

| sec type | regular hours (America/New_York, DST-correct via zoneinfo) |
|---|---|
| STK, OPT, WAR, CFD, IND | Mon–Fri 09:30–16:00 |
| FUT, FOP, CONTFUT | Sun 18:00 – Fri 17:00, closed daily 17:00–18:00 (CME Globex) |
| CASH | Sun 17:00 – Fri 17:00, around the clock in between |
| anything else | never (limit orders only) |

Exchange holidays and half days are out of scope: on such a day a market order may be rejected
and the kill switch retries with a limit order.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

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
