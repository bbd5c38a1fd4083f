"""Exchange rules of the simulator: tick ladders (market rules), trading calendars, order precautions,
fractional sizes and read-only mode — what a real gateway refuses a closing order for.

Facts reproduced (IB TWS API documentation, message codes page; reports from users):
- 110 "The price does not conform to the minimum price variation for this contract." A contract's
  price increments are market rules (`marketRuleIds` in contractDetails, `reqMarketRule` → message 93
  with (lowEdge, increment) pairs): the increment depends on the price level.
- 451 '... value estimate of 190,000 USD exceeds the Total Value Limit of 100,000 USD. Restriction is
  specified in Precautionary Settings of Global Configuration/Presets.' (order precautions).
- 10243 fractional-sized orders refused over the API.
- 321 "... The API interface is currently in Read-Only mode." for every write while the API is
  configured read-only (TWS: Global Configuration → API → Settings → Read-Only API).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from watchdog.sim.universe import Instrument

PRICE_VARIATION_TEXT = "The price does not conform to the minimum price variation for this contract."
READ_ONLY_TEXT = "Error validating request.-'bN' : cause - The API interface is currently in Read-Only mode."
FRACTIONAL_TEXT = "Fractional-sized order cannot be placed via API. Please use TWS or the IBKR mobile app."
PRECAUTION_SUFFIX = "Restriction is specified in Precautionary Settings of Global Configuration/Presets."

# market rule id -> ((lowEdge, increment), ...); ids as IB numbers them where known
MARKET_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.01),),  # US stocks
    32: ((0.0, 0.05), (3.0, 0.10)),  # US options: 0.05 below 3.00, 0.10 from 3.00 up
    67: ((0.0, 0.25),),  # CME equity index futures
    239: ((0.0, 0.00005),),  # IDEALPRO EUR.USD
    1650: ((0.0, 0.001), (10.0, 0.005), (50.0, 0.01), (100.0, 0.02), (200.0, 0.05)),  # XETRA stocks
}
DEFAULT_RULE = {"STK": 26, "OPT": 32, "FUT": 67, "CASH": 239}


@dataclass(frozen=True, slots=True)
class Calendar:
    """A weekly session per exchange plus holidays / early closes, in the exchange's own time zone."""

    time_zone: str  # as IB names it in contractDetails.timeZoneId
    zone: str  # the IANA zone behind it
    liquid: tuple[str, str]  # regular session "HHMM", "HHMM"
    trading: tuple[str, str]  # whole session incl. extended hours; end < start = over midnight
    weekdays: frozenset[int] = frozenset(range(5))  # days a session opens (Mon=0)
    holidays: frozenset[str] = frozenset()  # YYYYMMDD closed all day
    early_close: dict[str, str] = field(default_factory=dict)  # YYYYMMDD -> liquid end HHMM


CALENDARS: dict[str, Calendar] = {
    "US_EQUITY": Calendar(
        "US/Eastern",
        "America/New_York",
        ("0930", "1600"),
        ("0400", "2000"),
        holidays=frozenset({"20261126", "20261225"}),
        early_close={"20261127": "1300", "20261224": "1300"},
    ),
    "US_OPTIONS": Calendar(
        "US/Eastern",
        "America/New_York",
        ("0930", "1600"),
        ("0930", "1600"),
        holidays=frozenset({"20261126", "20261225"}),
        early_close={"20261127": "1315", "20261224": "1315"},
    ),
    "CME": Calendar(
        "US/Central",
        "America/Chicago",
        ("0830", "1500"),
        ("1700", "1600"),  # opens the evening before
        weekdays=frozenset({6, 0, 1, 2, 3}),
        holidays=frozenset({"20261126", "20261225"}),
    ),
    "IDEALPRO": Calendar(
        "US/Eastern",
        "America/New_York",
        ("1715", "1700"),
        ("1715", "1700"),
        weekdays=frozenset({6, 0, 1, 2, 3}),
    ),
    "XETRA": Calendar(
        "MET",
        "Europe/Berlin",
        ("0900", "1730"),
        ("0800", "2200"),
        holidays=frozenset({"20261224", "20261225", "20261231"}),
    ),
}
DEFAULT_CALENDAR = {"STK": "US_EQUITY", "OPT": "US_OPTIONS", "FUT": "CME", "CASH": "IDEALPRO"}


def market_rule_id(inst: Instrument) -> int:
    return inst.market_rule_id or DEFAULT_RULE.get(inst.sec_type, 26)


def on_ladder(price: float, rule: tuple[tuple[float, float], ...]) -> bool:
    """Whether `price` is a multiple of the increment that applies at its level (a negative price —
    spreads, some futures — at the level of its size)."""
    increment = rule[0][1]
    for low, inc in rule:
        if abs(price) >= low - 1e-9:
            increment = inc
    ratio = price / increment
    return abs(ratio - round(ratio)) < 1e-6


def calendar_of(inst: Instrument) -> Calendar:
    return CALENDARS[inst.calendar or DEFAULT_CALENDAR.get(inst.sec_type, "US_EQUITY")]


def _at(day: dt.date, hhmm: str, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, int(hhmm[:2]), int(hhmm[2:]), tzinfo=zone)


def sessions(
    cal: Calendar, kind: str, around: float, days: int = 7
) -> list[tuple[dt.date, float, float] | dt.date]:
    """Sessions ending on each day from yesterday for `days` days: (day, open, close) epochs, or the
    day alone when it is closed. `kind` is "liquid" or "trading"."""
    zone = ZoneInfo(cal.zone)
    today = dt.datetime.fromtimestamp(around, zone).date()
    out: list[tuple[dt.date, float, float] | dt.date] = []
    for n in range(-1, days - 1):
        day = today + dt.timedelta(days=n)
        key = day.strftime("%Y%m%d")
        start, end = cal.liquid if kind == "liquid" else cal.trading
        overnight = end <= start
        opens_on = day - dt.timedelta(days=1) if overnight else day
        session_day = opens_on if overnight else day
        # an overnight session belongs to the day it closes on; it opens on a weekday of the calendar
        if key in cal.holidays or session_day.weekday() not in cal.weekdays:
            out.append(day)
            continue
        if kind == "liquid" and key in cal.early_close:
            end = cal.early_close[key]
        elif kind == "trading" and key in cal.early_close and not overnight:
            end = min(end, f"{int(cal.early_close[key][:2]) + 4:02d}{cal.early_close[key][2:]}")
        out.append((day, _at(opens_on, start, zone).timestamp(), _at(day, end, zone).timestamp()))
    return out


def hours_text(cal: Calendar, kind: str, around: float) -> str:
    """IB's layout: `20261130:0930-20261130:1600;20261126:CLOSED` (exchange time zone)."""
    zone = ZoneInfo(cal.zone)
    parts = []
    for s in sessions(cal, kind, around):
        if isinstance(s, dt.date):
            parts.append(f"{s:%Y%m%d}:CLOSED")
            continue
        _, start, end = s
        a, b = dt.datetime.fromtimestamp(start, zone), dt.datetime.fromtimestamp(end, zone)
        parts.append(f"{a:%Y%m%d:%H%M}-{b:%Y%m%d:%H%M}")
    return ";".join(parts)


def session_at(cal: Calendar, now: float) -> str:
    """ "regular", "extended" or "closed" for the calendar at epoch `now`."""
    for kind, name in (("liquid", "regular"), ("trading", "extended")):
        for s in sessions(cal, kind, now, days=3):
            if not isinstance(s, dt.date) and s[1] <= now < s[2]:
                return name
    return "closed"


@dataclass(slots=True)
class ExchangeRules:
    """Switches tests flip: which refusals the simulated gateway applies to API orders."""

    publish_hours: bool = False  # contractDetails carry calendar hours (else one fixed sample day)
    calendar_sessions: bool = False  # order sessions follow each contract's calendar (else sim.session)
    enforce_ladder: bool = True
    refuse_fractional: bool = True  # API stock orders with a fractional size: 10243
    max_order_value: float | None = None  # precaution: Total Value Limit (in the contract currency)
    max_order_size: float | None = None  # precaution: Size Limit
    read_only: bool = False
    market_data: str = "live"  # live | delayed | none
    frozen_portfolio: dict[int, float] = field(default_factory=dict)  # conId -> stale portfolio price

    def refusal(
        self, inst: Instrument, order_id: int, qty: float, order_type: str, lmt: float | None, mark: float
    ) -> tuple[int, str] | None:
        """Why a gateway refuses this API order, or None. Order of checks as TWS applies them."""
        if self.read_only:
            return 321, READ_ONLY_TEXT
        if self.refuse_fractional and inst.sec_type == "STK" and not float(qty).is_integer():
            return 10243, FRACTIONAL_TEXT
        limit = lmt if order_type in ("LMT", "STP LMT") and lmt is not None and lmt > 0 else None
        if (
            self.enforce_ladder
            and limit is not None
            and not on_ladder(limit, MARKET_RULES[market_rule_id(inst)])
        ):
            return 110, PRICE_VARIATION_TEXT
        price = lmt if lmt else mark
        value = abs(qty) * price * inst.multiplier
        if self.max_order_value is not None and value > self.max_order_value:
            return 451, (
                f'The following order "ID:{order_id}" value estimate of {value:,.0f} {inst.currency} exceeds '
                f"the Total Value Limit of {self.max_order_value:,.0f} {inst.currency}. {PRECAUTION_SUFFIX}"
            )
        if self.max_order_size is not None and qty > self.max_order_size:
            return 451, (
                f'The following order "ID:{order_id}" size exceeds the Size Limit of '
                f"{self.max_order_size:g}. {PRECAUTION_SUFFIX}"
            )
        return None
