"""Planning one closing order: a pure function of (need, contract details, quote, clock, kill config).

`plan_close` decides order type (market in the contract's own regular hours, else an aggressive limit
with `outsideRth`), the limit price on the contract's tick ladder, the whole-unit quantity and the
slices under the configured order precautions — or says why nothing can be sent. It sends nothing,
so readiness checks can call it on the live book.

Facts: IB rejects an off-ladder price with 110 (market rules, `reqMarketRule`); refuses fractional
API orders (10243); rejects an order above a precaution with 451 naming "Precautionary Settings".
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from watchdog.config.schema import KillConfig
from watchdog.kill.plan import CloseNeed, route_exchange, route_problem
from watchdog.market_hours import Session, next_open, session_at, zone
from watchdog.model import CloseOrderRequest, ContractDetails, Quote
from watchdog.readiness_model import PlanReason

Ladder = tuple[tuple[float, float], ...]
MAX_SLICES = 200  # per attempt; what is left goes in the next attempt
WHOLE_UNITS_ONLY = frozenset({"STK", "FUT", "OPT", "FOP", "WAR", "IND", "CFD", "FUND", "CONTFUT"})


@dataclass(frozen=True, slots=True)
class PlannedClose:
    """What to send for one need (possibly several slices), what to report now, or why not at all."""

    orders: tuple[CloseOrderRequest, ...] = ()
    notes: tuple[str, ...] = ()  # said at once, not blocking (hours fallback, quote age, a fraction)
    refusal: str = ""  # nothing sent: escalate at once with this reason
    manual: str = ""  # a part that needs a manual close (fractional shares), reported at once
    problem: str = ""  # the refusal as a bounded label for metrics: one of PROBLEMS
    hours_from_table: bool = False  # the contract's own hours did not cover now: the fallback table decided


PROBLEMS = (
    "no_route", "not_closable", "fraction", "market_closed",
    "stale_price", "no_price", "bad_price", "slice_limit",
)  # fmt: skip


NEGATIVE_PRICES = frozenset({"BAG", "FUT", "CONTFUT"})  # spreads and some futures trade below zero


def tick_decimals(increment: float) -> int:
    """Decimal places of a tick (0.01 → 2, 0.25 → 2, 1/64 → 6), at most 10."""
    exponent = Decimal(repr(increment)).normalize().as_tuple().exponent
    return min(10, max(0, -exponent)) if isinstance(exponent, int) else 10


def _snap(price: float, increment: float) -> float:
    # a multiple of the tick carries float noise (1e8 + 0.07 → 100000000.07000001): round it to the
    # tick's own decimals, so the price sent is exactly the one on the ladder
    return round(price, tick_decimals(increment)) + 0.0  # + 0.0: no "-0.0"


def _ticks(price: float, increment: float, up: bool) -> int:
    """How many ticks: rounded up (or down), but a price already on a tick stays there — with a
    tolerance relative to the size (1e-9 absolute is below float resolution at 1e8 / 0.01)."""
    q = price / increment
    nearest = round(q)
    if abs(q - nearest) <= 1e-9 * max(1.0, abs(q)):
        return nearest
    return math.ceil(q) if up else math.floor(q)


def on_ladder(raw: float, side: str, ladder: Ladder) -> float:
    """`raw` rounded onto the ladder away from the market side: BUY up, SELL down (stays marketable).

    A negative price (spreads, some futures) uses the ladder of its absolute value, rounded the same
    way: BUY up (towards zero), SELL down."""
    if raw < 0:
        return -on_ladder(-raw, "SELL" if side == "BUY" else "BUY", ladder) + 0.0
    bands = sorted(ladder)
    if side == "BUY":
        for i, (low, inc) in enumerate(bands):
            upper = bands[i + 1][0] if i + 1 < len(bands) else math.inf
            start = max(raw, low)
            if start >= upper:
                continue
            price = _ticks(start, inc, up=True) * inc
            if price < upper - 1e-9 or i + 1 == len(bands):
                return _snap(price, inc)
        low, inc = bands[-1]
        return _snap(_ticks(max(raw, low), inc, up=True) * inc, inc)
    for i in range(len(bands) - 1, -1, -1):
        low, inc = bands[i]
        if raw < low - 1e-9:
            continue
        price = _ticks(raw, inc, up=False) * inc
        if price >= low - 1e-9:
            return _snap(price, inc)
        raw = low - 1e-9  # fell below this band: the next band down, just under its edge
    return 0.0


def limit_for(
    price: float, side: str, collar: float, details: ContractDetails | None, sec_type: str
) -> float | None:
    """Aggressive limit: BUY at price + |price|×collar, SELL at price − |price|×collar, on the tick
    ladder. None when no valid limit exists: a price at or below zero, except for spreads and futures
    (NEGATIVE_PRICES), or one that rounds to zero."""
    signed = sec_type.upper() in NEGATIVE_PRICES
    if not math.isfinite(price) or (price <= 0 and not signed):
        return None
    raw = price + abs(price) * collar if side == "BUY" else price - abs(price) * collar
    ladder: Ladder = details.price_ladder if details is not None else ()
    if not ladder and details is not None and details.min_tick > 0:
        ladder = ((0.0, details.min_tick),)
    if not ladder:  # unknown: cents (FX: 1/100,000), the common case, rounded away from the market
        ladder = ((0.0, 0.00001),) if sec_type.upper() == "CASH" else ((0.0, 0.0001), (1.0, 0.01))
    out = on_ladder(raw, side, ladder)
    return out if out > 0 or signed else None


def contract_session(details: ContractDetails | None, now: float) -> Session | None:
    """The contract's own session now (regular / extended / closed), None when its hours are unknown."""
    if details is None:
        return None
    return session_at(details.hours_span, details.liquid_hours, details.trading_hours, now)


def collar_for(attempt: int, config: KillConfig) -> float:
    """The collar widens by `collar_step` per retry, up to `max_collar`."""
    return min(config.collar + config.collar_step * max(0, attempt - 1), config.max_collar)


def _when(epoch: float | None, details: ContractDetails) -> str:
    if epoch is None:
        return "no session listed"
    tz = zone(details.time_zone)
    return dt.datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M %Z") if tz else f"epoch {epoch:.0f}"


def plan_close(
    need: CloseNeed,
    details: ContractDetails | None,
    quote: Quote | None,
    now: float,
    config: KillConfig,
    *,
    attempt: int = 1,
    order_ref: str = "",
    force_limit: bool = False,
    fallback_regular: Callable[[str, float], bool] | None = None,
) -> PlannedClose:
    """The closing order(s) for one netted need, or why none can be sent. Never adds quantity."""
    pos = need.position
    c = pos.contract
    label = f"{pos.account} {c.label}"
    exchange = route_exchange(c)
    unroutable = route_problem(c)
    if exchange is None or unroutable is not None:
        detail = unroutable.detail if unroutable else f"no routable exchange known for {c.sec_type} {c.label}"
        kind = "not_closable" if unroutable and unroutable.reason is PlanReason.NOT_CLOSABLE else "no_route"
        return PlannedClose(refusal=detail, problem=kind)
    notes: list[str] = []
    manual = ""
    quantity = need.quantity
    if c.sec_type.upper() in WHOLE_UNITS_ONLY and not float(quantity).is_integer():
        whole = math.floor(quantity + 1e-9)
        fraction = round(quantity - whole, 6)
        if fraction > 1e-6:
            manual = (
                f"{label}: {fraction:g} of {quantity:g} is a fraction the API cannot close "
                f"(IB refuses fractional-sized API orders, 10243): needs a manual close"
            )
        quantity = float(whole)
        if quantity <= 0:
            return PlannedClose(refusal=manual, manual=manual, problem="fraction")
    # the contract's own hours first; the fixed table only when they do not cover now
    session = contract_session(details, now)
    from_table = session is None
    if session is None:
        regular = fallback_regular(c.sec_type, now) if fallback_regular is not None else False
        session = "regular" if regular else "extended"
        notes.append(f"{label}: no trading hours from contract details for now: judged by the built-in table")
    if session == "closed" and details is not None:
        tz = details.time_zone or "its time zone"
        opens = _when(next_open(details.trading_hours, now), details)
        return PlannedClose(
            refusal=f"{label}: market closed by the contract's own calendar ({tz}); next session {opens}",
            manual=manual,
            problem="market_closed",
        )
    use_market = session == "regular" and not force_limit
    price: float | None = None
    if quote is not None:
        age = quote.age(now)
        if age is not None and age > config.max_price_age:
            if not use_market:
                return PlannedClose(
                    refusal=(
                        f"{label}: the only price ({quote.describe(now)}) is over "
                        f"kill.max_price_age {config.max_price_age:g}s: not used"
                    ),
                    manual=manual,
                    problem="stale_price",
                )
            quote = None
        else:
            notes.append(f"{label}: priced from {quote.describe(now)}")
    if not use_market:
        if quote is None:
            return PlannedClose(
                refusal=(
                    f"{label}: no usable mark price (no quote, no portfolio mark) for a limit order "
                    "outside regular hours"
                ),
                manual=manual,
                problem="no_price",
            )
        price = limit_for(quote.price, need.action, collar_for(attempt, config), details, c.sec_type)
        if price is None:
            why = (
                f"a negative price ({quote.price:g}) for {c.sec_type}, which trades only above zero"
                if quote.price < 0
                else f"no valid limit price from {quote.price:g} on the tick ladder"
            )
            return PlannedClose(
                refusal=f"{label}: {why}",
                manual=manual,
                problem="bad_price",
            )
    sizes, why = slices(quantity, price or (quote.price if quote else None), c.multiplier, c.sec_type, config)
    if not sizes:
        return PlannedClose(refusal=f"{label}: {why}", manual=manual, problem="slice_limit")
    if why:
        notes.append(f"{label}: {why}")
    orders = tuple(
        CloseOrderRequest(
            account=pos.account,
            contract=c,
            action=need.action,
            quantity=q,
            order_type="MKT" if use_market else "LMT",
            limit_price=price,
            outside_rth=not use_market,
            order_ref=order_ref,
            exchange=exchange,
        )
        for q in sizes
    )
    return PlannedClose(
        orders=orders, notes=tuple(notes), manual=manual, problem="fraction" if manual else "",
        hours_from_table=from_table,
    )  # fmt: skip


def slices(
    quantity: float, price: float | None, multiplier: float, sec_type: str, config: KillConfig
) -> tuple[list[float], str]:
    """Quantities of the slices under kill.max_order_quantity / kill.max_order_value; ([], why) when
    not even one unit fits. At most MAX_SLICES per attempt (the rest in the next attempt)."""
    cap, bound = math.inf, ""
    if config.max_order_quantity is not None:
        cap, bound = config.max_order_quantity, f"kill.max_order_quantity {config.max_order_quantity:g}"
    if config.max_order_value is not None:
        unit = abs(price or 0.0) * (multiplier or 1.0)  # a negative price (spreads) still has a size
        if unit <= 0:
            return [], "no price to size slices under kill.max_order_value"
        if config.max_order_value / unit < cap:
            cap = config.max_order_value / unit
            bound = f"kill.max_order_value {config.max_order_value:g} at {unit:g} a unit"
    if math.isinf(cap):
        return [quantity], ""
    whole = sec_type.upper() in WHOLE_UNITS_ONLY
    step = math.floor(cap + 1e-9) if whole else math.floor(cap * 1e6) / 1e6
    if step <= 0:
        return [], f"{bound} leaves less than one unit per order: cannot slice"
    out: list[float] = []
    left = quantity
    while left > 1e-9 and len(out) < MAX_SLICES:
        q = min(step, left)
        out.append(float(q))
        left = round(left - q, 9)
    note = (
        f"{quantity:g} split into {len(out)} slice(s) of at most {step:g} ({bound})" if len(out) > 1 else ""
    )
    return out, note
