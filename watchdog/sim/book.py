"""Account book of the simulator: cash, positions, marks, P&L, orders and executions (pure state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from watchdog.sim.universe import Instrument, Universe

# Tags reqAccountSummary / reqAccountUpdates know; all are derived unless overridden.
SUMMARY_TAGS = (
    "AccountType",
    "NetLiquidation",
    "TotalCashValue",
    "SettledCash",
    "AccruedCash",
    "BuyingPower",
    "EquityWithLoanValue",
    "PreviousDayEquityWithLoanValue",
    "GrossPositionValue",
    "RegTEquity",
    "RegTMargin",
    "SMA",
    "InitMarginReq",
    "MaintMarginReq",
    "AvailableFunds",
    "ExcessLiquidity",
    "Cushion",
    "FullInitMarginReq",
    "FullMaintMarginReq",
    "FullAvailableFunds",
    "FullExcessLiquidity",
    "LookAheadNextChange",
    "LookAheadInitMarginReq",
    "LookAheadMaintMarginReq",
    "LookAheadAvailableFunds",
    "LookAheadExcessLiquidity",
    "HighestSeverity",
    "DayTradesRemaining",
    "Leverage",
)
# Tags IB reports without a currency.
NO_CURRENCY_TAGS = frozenset(
    {"AccountType", "Cushion", "LookAheadNextChange", "HighestSeverity", "DayTradesRemaining", "Leverage"}
)
CASH_TAGS = frozenset({"TotalCashValue", "CashBalance", "SettledCash"})
# Rough maintenance margin rates by security type (a simulator needs plausible, not exact, numbers).
MAINT_RATE = {"STK": 0.25, "OPT": 1.0, "FUT": 0.06, "CASH": 0.03}
INIT_FACTOR = 1.25


@dataclass(slots=True)
class PositionState:
    """One account's holding in one contract, with today's P&L bookkeeping."""

    account: str
    inst: Instrument
    qty: float = 0.0
    avg_price: float = 0.0  # per unit, without multiplier
    realized_today: float = 0.0
    # Market value the position had at the start of the day (or when it was set by hand).
    day_start_value: float = 0.0
    # Cash paid (-) or received (+) for today's trades, at trade prices.
    day_trade_cash: float = 0.0

    @property
    def avg_cost(self) -> float:
        """IB's avgCost: price times multiplier."""
        return self.avg_price * self.inst.multiplier


@dataclass(slots=True)
class AccountBook:
    name: str
    cash: float
    commissions_today: float = 0.0
    prev_day_equity: float | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    pnl_override: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class SimOrder:
    """A working or finished order, as the gateway tracks it."""

    order_id: int
    client_id: int
    perm_id: int
    account: str
    inst: Instrument
    action: str  # BUY / SELL
    total_qty: float
    order_type: str  # MKT LMT STP STP LMT
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    outside_rth: bool = False
    order_ref: str = ""
    exchange: str = "SMART"
    parent_id: int = 0
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    triggered: bool = False  # a stop that has been touched
    why_held: str = ""

    @property
    def remaining(self) -> float:
        return self.total_qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in ("PendingSubmit", "PreSubmitted", "Submitted", "ApiPending", "PendingCancel")

    @property
    def sign(self) -> int:
        return 1 if self.action == "BUY" else -1


@dataclass(frozen=True, slots=True)
class Execution:
    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    account: str
    inst: Instrument
    side: str  # BOT / SLD
    shares: float
    price: float
    time: float  # epoch seconds
    cum_qty: float
    avg_price: float
    order_ref: str
    exchange: str
    commission: float
    realized_pnl: float | None  # None on opening fills (IB sends the unset double)


class Book:
    """All simulated accounts; every number is derived from positions, marks, cash and fills."""

    def __init__(
        self, universe: Universe, accounts: tuple[str, ...], cash: float, clock: Callable[[], float]
    ) -> None:
        self.universe = universe
        self.clock = clock
        self.accounts: dict[str, AccountBook] = {a: AccountBook(a, cash) for a in accounts}
        self.marks: dict[int, float] = {i.con_id: i.price for i in universe.by_con_id.values()}
        self.positions: dict[tuple[str, int], PositionState] = {}
        self.orders: dict[int, SimOrder] = {}  # by permId
        self.executions: list[Execution] = []

    # --- marks and positions -------------------------------------------------------------

    def account(self, name: str) -> AccountBook:
        try:
            return self.accounts[name]
        except KeyError:
            raise KeyError(f"unknown account: {name!r} (have {sorted(self.accounts)})") from None

    def mark(self, con_id: int) -> float:
        return self.marks.get(con_id, self.universe.get(con_id).price)

    def set_mark(self, con_id: int, price: float) -> None:
        self.marks[con_id] = price

    def position(self, account: str, inst: Instrument) -> PositionState:
        key = (account, inst.con_id)
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = PositionState(account, inst)
        return pos

    def set_position(self, account: str, inst: Instrument, qty: float, avg_price: float) -> PositionState:
        """Replace a holding as if it had been there since the open: no P&L jump, cash untouched."""
        self.account(account)
        pos = self.position(account, inst)
        pos.day_start_value += (qty - pos.qty) * inst.multiplier * self.mark(inst.con_id)
        pos.qty = qty
        pos.avg_price = avg_price if qty else 0.0
        return pos

    def apply_fill(
        self, account: str, inst: Instrument, signed_qty: float, price: float, commission: float
    ) -> float | None:
        """Book a fill; returns the realized P&L of the closing part (None if it only opened)."""
        acct = self.account(account)
        pos = self.position(account, inst)
        mult = inst.multiplier
        realized: float | None = None
        if pos.qty and (pos.qty > 0) != (signed_qty > 0):
            closing = min(abs(signed_qty), abs(pos.qty))
            direction = 1.0 if pos.qty > 0 else -1.0
            realized = (price - pos.avg_price) * closing * direction * mult
            pos.realized_today += realized
        new_qty = pos.qty + signed_qty
        if abs(new_qty) < 1e-12:
            new_qty = 0.0
            pos.avg_price = 0.0
        elif pos.qty == 0 or (pos.qty > 0) != (new_qty > 0):
            pos.avg_price = price  # opened, or flipped through zero
        elif abs(new_qty) > abs(pos.qty):
            pos.avg_price = (pos.avg_price * pos.qty + price * signed_qty) / new_qty
        pos.qty = new_qty
        pos.day_trade_cash -= signed_qty * mult * price
        if inst.sec_type == "FUT":
            acct.cash += realized or 0.0  # futures settle variation, not notional
        else:
            acct.cash -= signed_qty * mult * price
        acct.cash -= commission
        acct.commissions_today += commission
        return None if realized is None else realized - commission

    def open_positions(self, account: str | None = None) -> list[PositionState]:
        return [p for p in self.positions.values() if p.qty and (account is None or p.account == account)]

    # --- P&L -----------------------------------------------------------------------------

    def _value(self, pos: PositionState) -> float:
        return pos.qty * pos.inst.multiplier * self.mark(pos.inst.con_id)

    def unrealized_of(self, pos: PositionState) -> float:
        return (
            (self.mark(pos.inst.con_id) - pos.avg_price) * pos.qty * pos.inst.multiplier if pos.qty else 0.0
        )

    def daily_of(self, pos: PositionState) -> float:
        return self._value(pos) - pos.day_start_value + pos.day_trade_cash

    def _account_positions(self, account: str) -> list[PositionState]:
        return [p for p in self.positions.values() if p.account == account]

    def pnl(self, account: str) -> tuple[float, float, float]:
        """(daily, unrealized, realized) with any direct override applied."""
        acct = self.account(account)
        ps = self._account_positions(account)
        unrealized = sum(self.unrealized_of(p) for p in ps)
        realized = sum(p.realized_today for p in ps) - acct.commissions_today
        daily = sum(self.daily_of(p) for p in ps) - acct.commissions_today
        o = acct.pnl_override
        return o.get("daily", daily), o.get("unrealized", unrealized), o.get("realized", realized)

    def pnl_single(self, account: str, con_id: int) -> tuple[float, float, float, float, float]:
        """(position, daily, unrealized, realized, value) for one contract."""
        pos = self.positions.get((account, con_id))
        if pos is None:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        return pos.qty, self.daily_of(pos), self.unrealized_of(pos), pos.realized_today, self._value(pos)

    def market_value(self, pos: PositionState) -> float:
        return self._value(pos)

    # --- account values --------------------------------------------------------------------

    def account_values(self, account: str) -> dict[str, str]:
        """Every summary tag -> value text; overrides win, derived tags follow an overridden NLV."""
        acct = self.account(account)
        ps = self._account_positions(account)
        gross = sum(abs(self._value(p)) for p in ps if p.inst.sec_type != "FUT")
        fut_unrealized = sum(self.unrealized_of(p) for p in ps if p.inst.sec_type == "FUT")
        non_fut_value = sum(self._value(p) for p in ps if p.inst.sec_type != "FUT")
        maint = sum(abs(self._value(p)) * MAINT_RATE.get(p.inst.sec_type, 0.25) for p in ps)
        init = maint * INIT_FACTOR
        o = acct.overrides
        nlv = _num(o.get("NetLiquidation"), acct.cash + non_fut_value + fut_unrealized)
        maint = _num(o.get("MaintMarginReq"), maint)
        init = _num(o.get("InitMarginReq"), init)
        daily = self.pnl(account)[0]
        prev = acct.prev_day_equity if acct.prev_day_equity is not None else nlv - daily
        excess = _num(o.get("ExcessLiquidity"), nlv - maint)
        available = _num(o.get("AvailableFunds"), nlv - init)
        values: dict[str, float | int | str] = {
            "AccountType": "INDIVIDUAL",
            "NetLiquidation": nlv,
            "TotalCashValue": acct.cash,
            "SettledCash": acct.cash,
            "AccruedCash": 0.0,
            "BuyingPower": max(available, 0.0) * 4,
            "EquityWithLoanValue": nlv,
            "PreviousDayEquityWithLoanValue": prev,
            "GrossPositionValue": gross,
            "RegTEquity": nlv,
            "RegTMargin": init,
            "SMA": max(nlv - init, 0.0),
            "InitMarginReq": init,
            "MaintMarginReq": maint,
            "AvailableFunds": available,
            "ExcessLiquidity": excess,
            "Cushion": f"{excess / nlv if nlv else 0.0:.4f}",
            "FullInitMarginReq": init,
            "FullMaintMarginReq": maint,
            "FullAvailableFunds": available,
            "FullExcessLiquidity": excess,
            "LookAheadNextChange": 0,
            "LookAheadInitMarginReq": init,
            "LookAheadMaintMarginReq": maint,
            "LookAheadAvailableFunds": available,
            "LookAheadExcessLiquidity": excess,
            "HighestSeverity": 0,
            "DayTradesRemaining": -1,
            "Leverage": f"{gross / nlv if nlv else 0.0:.4f}",
        }
        out = {k: _text(v) for k, v in values.items()}
        out.update(o)
        return out

    def set_account_value(self, account: str, tag: str, value: float | str) -> None:
        acct = self.account(account)
        if tag in CASH_TAGS and not isinstance(value, str):
            acct.cash = float(value)  # a real state change, everything else follows
        elif tag == "PreviousDayEquityWithLoanValue" and not isinstance(value, str):
            acct.prev_day_equity = float(value)
        else:
            acct.overrides[tag] = _text(value)

    # --- orders ----------------------------------------------------------------------------

    def find_order(self, client_id: int, order_id: int) -> SimOrder | None:
        for o in self.orders.values():
            if o.client_id == client_id and o.order_id == order_id:
                return o
        return None

    def open_orders(self, account: str | None = None) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.is_open and (account is None or o.account == account)]


def _num(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        return default


def _text(v: float | int | str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    return f"{round(v, 2):.2f}"
