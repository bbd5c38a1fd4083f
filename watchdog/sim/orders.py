"""Order engine of the simulator: validation, lifecycle, fills, cancels, global cancel and sessions."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from watchdog.sim.book import Book, Execution, SimOrder
from watchdog.sim.universe import Instrument

Session = Literal["regular", "extended", "closed"]
SESSIONS: tuple[Session, ...] = ("regular", "extended", "closed")
ORDER_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT"})
# Direct-routing venues the simulator accepts besides SMART; a stock's primary listing (NASDAQ, as a
# position contract carries it) is deliberately absent so a close order built from a position fails.
DIRECT_STOCK_VENUES = frozenset({"ISLAND", "IEX", "CBOE", "BATS"})


@dataclass(slots=True)
class FillConfig:
    """How orders fill: delay before each fill, number of partial fills, stock MKT outside RTH."""

    fill_delay: float = 0.0
    partial_fills: int = 1
    stock_mkt_outside_rth: Literal["reject", "hold"] = "reject"


class OrderEvents(Protocol):
    """What the engine tells the wire layer; the server turns each into messages for the right clients."""

    def order_changed(self, order: SimOrder) -> None: ...
    def order_cancelled(self, order: SimOrder) -> None: ...
    def order_error(self, client_id: int, order_id: int, code: int, message: str) -> None: ...
    def executed(self, order: SimOrder, execution: Execution) -> None: ...
    def commission(self, order: SimOrder, execution: Execution) -> None: ...
    def book_changed(self, account: str, con_ids: Iterable[int] = ()) -> None: ...


Scheduler = Callable[[float, Callable[[], None]], None]


def commission_for(inst: Instrument, qty: float) -> float:
    """IBKR Pro fixed-rate-like commissions, enough to make commission reports non-trivial."""
    q = abs(qty)
    if inst.sec_type == "STK":
        return round(max(1.0, 0.005 * q), 2)
    if inst.sec_type == "FUT":
        return round(2.25 * q, 2)
    if inst.sec_type == "OPT":
        return round(max(1.0, 0.65 * q), 2)
    return 2.0


def _venue(inst: Instrument) -> str:
    """Where a fill is reported to have happened."""
    return {"STK": "ISLAND", "OPT": "CBOE", "FUT": "CME", "CASH": "IDEALPRO"}.get(
        inst.sec_type, inst.exchange
    )


def is_routable(inst: Instrument, exchange: str) -> bool:
    if inst.sec_type == "FUT":
        return exchange in ("CME", "GLOBEX", inst.exchange)
    if inst.sec_type == "CASH":
        return exchange == "IDEALPRO"
    return exchange == "SMART" or exchange in DIRECT_STOCK_VENUES


class OrderEngine:
    """Keeps every order of every client; fills against the book's marks under the current session."""

    def __init__(self, book: Book, events: OrderEvents, schedule: Scheduler, config: FillConfig) -> None:
        self.book = book
        self.events = events
        self.schedule = schedule
        self.config = config
        self.session: Session = "regular"
        self._perm_ids = itertools.count(1_000_001)
        self._exec_seq = itertools.count(1)
        self._manual_ids = itertools.count(-1, -1)
        self._filling: set[int] = set()  # permIds with a fill scheduled
        # the contract's own session from its calendar (None: the global `session`)
        self.session_of: Callable[[Instrument], str | None] = lambda inst: None

    def session_for(self, inst: Instrument) -> str:
        return self.session_of(inst) or self.session

    # --- placing -------------------------------------------------------------------------

    def next_manual_id(self) -> int:
        """TWS binds manual orders to negative ids for client 0 (reqAutoOpenOrders)."""
        return next(self._manual_ids)

    def place(
        self,
        *,
        client_id: int,
        order_id: int,
        account: str,
        inst: Instrument,
        action: str,
        qty: float,
        order_type: str,
        lmt_price: float | None,
        aux_price: float | None,
        tif: str = "DAY",
        outside_rth: bool = False,
        order_ref: str = "",
        exchange: str = "SMART",
        parent_id: int = 0,
    ) -> SimOrder | None:
        """Validate and accept (or modify) an order; returns it, or None after sending the reject."""
        err = self._validate(account, inst, action, qty, order_type, lmt_price, aux_price, exchange)
        if err is not None:
            self.events.order_error(client_id, order_id, err[0], err[1])
            return None
        existing = self.book.find_order(client_id, order_id)
        if existing is not None and existing.is_open:
            return self._modify(existing, qty, lmt_price, aux_price, outside_rth, order_ref, tif)
        if existing is not None:
            self.events.order_error(client_id, order_id, 103, "Duplicate order id")
            return None
        order = SimOrder(
            order_id=order_id,
            client_id=client_id,
            perm_id=next(self._perm_ids),
            account=account,
            inst=inst,
            action=action,
            total_qty=qty,
            order_type=order_type,
            lmt_price=lmt_price,
            aux_price=aux_price,
            tif=tif or "DAY",
            outside_rth=outside_rth,
            order_ref=order_ref,
            exchange=exchange,
            parent_id=parent_id,
        )
        if self._outside_rth_market_stock(order):
            if self.config.stock_mkt_outside_rth == "reject":
                self.events.order_error(
                    client_id,
                    order_id,
                    201,
                    "Order rejected - reason:Market orders are not accepted outside "
                    "regular trading hours for this contract.",
                )
                return None
            order.why_held = "trading hours"
            if order.outside_rth:
                self.events.order_error(
                    client_id,
                    order_id,
                    2109,
                    "Order Event Warning:Attribute 'Outside Regular Trading Hours' is "
                    "ignored based on the order type and destination. PlaceOrder is now "
                    "being processed.",
                )
        self.book.orders[order.perm_id] = order
        order.status = "PreSubmitted"
        self.events.order_changed(order)
        self.evaluate(order)
        return order

    def _validate(
        self,
        account: str,
        inst: Instrument,
        action: str,
        qty: float,
        order_type: str,
        lmt: float | None,
        aux: float | None,
        exchange: str,
    ) -> tuple[int, str] | None:
        if account not in self.book.accounts:
            return 321, f"Error validating request.-'bN' : cause - The account code {account!r} is invalid"
        if not exchange:
            return 321, "Error validating request.-'bW' : cause - Missing order exchange"
        if not is_routable(inst, exchange):
            return 321, (
                f"Error validating request.-'bW' : cause - Missing order exchange: {exchange!r} is "
                f"not a routable destination for {inst.symbol} {inst.sec_type}"
            )
        if action not in ("BUY", "SELL"):
            return 321, f"Error validating request.-'bP' : cause - Invalid side: {action!r}"
        if not qty > 0:
            return 321, "Error validating request.-'bQ' : cause - The order size must be positive"
        if order_type not in ORDER_TYPES:
            return 387, f"Unsupported order type {order_type!r}"
        if order_type in ("LMT", "STP LMT") and (lmt is None or lmt <= 0):
            return 321, "Error validating request.-'bR' : cause - Invalid limit price"
        if order_type in ("STP", "STP LMT") and (aux is None or aux <= 0):
            return 321, "Error validating request.-'bS' : cause - Invalid stop price"
        return None

    def _modify(
        self,
        order: SimOrder,
        qty: float,
        lmt: float | None,
        aux: float | None,
        outside_rth: bool,
        order_ref: str,
        tif: str,
    ) -> SimOrder:
        order.total_qty = max(qty, order.filled)
        order.lmt_price, order.aux_price = lmt, aux
        order.outside_rth, order.order_ref, order.tif = outside_rth, order_ref, tif or order.tif
        self.events.order_changed(order)
        self.evaluate(order)
        return order

    def _outside_rth_market_stock(self, order: SimOrder) -> bool:
        return (
            order.inst.sec_type == "STK"
            and order.order_type == "MKT"
            and self.session_for(order.inst) != "regular"
        )

    # --- matching ------------------------------------------------------------------------

    def can_trade(self, order: SimOrder) -> bool:
        session = self.session_for(order.inst)
        if session == "closed":
            return False
        if session == "regular":
            return True
        if order.inst.trades_extended_hours:
            return True
        if order.inst.sec_type == "OPT" or order.order_type == "MKT":
            return False
        return order.outside_rth

    def marketable(self, order: SimOrder) -> bool:
        mark = self.book.mark(order.inst.con_id)
        if order.order_type in ("STP", "STP LMT") and not order.triggered:
            return False
        if order.order_type in ("MKT", "STP"):
            return True
        lmt = order.lmt_price or 0.0
        return mark <= lmt if order.action == "BUY" else mark >= lmt

    def _check_trigger(self, order: SimOrder) -> bool:
        if order.order_type not in ("STP", "STP LMT") or order.triggered:
            return False
        mark, aux = self.book.mark(order.inst.con_id), order.aux_price or 0.0
        if (order.action == "BUY" and mark >= aux) or (order.action == "SELL" and mark <= aux):
            order.triggered = True
            return True
        return False

    def evaluate(self, order: SimOrder) -> None:
        """Move an open order along: Submitted when it can work, triggered stops, fills when marketable."""
        if not order.is_open or order.perm_id in self._filling or order.status == "PendingCancel":
            return
        tradable = self.can_trade(order)
        if tradable and order.why_held:
            order.why_held = ""
        changed = tradable and self._check_trigger(order)
        working_status = (
            "PreSubmitted"
            if order.order_type in ("STP", "STP LMT") and not order.triggered
            else ("Submitted")
        )
        if tradable and order.status != working_status:
            order.status = working_status
            changed = True
        if changed:
            self.events.order_changed(order)
        if tradable and self.marketable(order):
            self._filling.add(order.perm_id)
            if self.config.fill_delay > 0:
                self.schedule(self.config.fill_delay, lambda: self._fill_step(order))
            else:
                self._fill_step(order)

    def _fill_step(self, order: SimOrder) -> None:
        self._filling.discard(order.perm_id)
        if not order.is_open or not self.can_trade(order) or not self.marketable(order):
            return
        parts = max(1, self.config.partial_fills)
        chunk = order.total_qty / parts
        if order.inst.sec_type != "CASH":
            chunk = max(1.0, float(round(chunk)))
        qty = min(order.remaining, chunk)
        self._fill(order, qty, self.book.mark(order.inst.con_id))
        if order.is_open:
            self._filling.add(order.perm_id)
            if self.config.fill_delay > 0:
                self.schedule(self.config.fill_delay, lambda: self._fill_step(order))
            else:
                self._fill_step(order)

    def _fill(self, order: SimOrder, qty: float, price: float) -> None:
        commission = commission_for(order.inst, qty)
        realized = self.book.apply_fill(order.account, order.inst, qty * order.sign, price, commission)
        total_cost = order.avg_fill_price * order.filled + price * qty
        order.filled += qty
        order.avg_fill_price = total_cost / order.filled
        order.last_fill_price = price
        if order.remaining <= 1e-9:
            order.status = "Filled"
        seq = next(self._exec_seq)
        execution = Execution(
            exec_id=f"0000e0d5.{order.perm_id:08x}.{seq:02d}.01",
            order_id=order.order_id,
            client_id=order.client_id,
            perm_id=order.perm_id,
            account=order.account,
            inst=order.inst,
            side="BOT" if order.action == "BUY" else "SLD",
            shares=qty,
            price=price,
            time=self.book.clock(),
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            order_ref=order.order_ref,
            exchange=_venue(order.inst),
            commission=commission,
            realized_pnl=realized,
        )
        self.book.executions.append(execution)
        self.events.executed(order, execution)
        self.events.order_changed(order)
        self.events.commission(order, execution)
        self.events.book_changed(order.account, (order.inst.con_id,))

    def on_price(self, con_id: int) -> None:
        for order in list(self.book.orders.values()):
            if order.is_open and order.inst.con_id == con_id:
                self.evaluate(order)

    def set_session(self, session: Session) -> None:
        if session not in SESSIONS:
            raise ValueError(f"session must be one of {SESSIONS}, got: {session!r}")
        self.session = session
        for order in list(self.book.orders.values()):
            self.evaluate(order)

    # --- cancelling ----------------------------------------------------------------------

    def cancel(self, client_id: int, order_id: int) -> SimOrder | None:
        """Owner-only cancel; a foreign or unknown id gets 10147 like a gateway answers it."""
        order = self.book.find_order(client_id, order_id)
        if order is None:
            self.events.order_error(
                client_id, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."
            )
            return None
        if order.status == "PendingCancel":
            self.events.order_error(
                client_id, order_id, 161, "Cancel attempted when order is not in a cancellable state."
            )
            return None
        if not order.is_open:
            self.events.order_error(
                client_id,
                order_id,
                10148,
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}.",
            )
            return None
        self._cancel(order)
        return order

    def _cancel(self, order: SimOrder) -> None:
        order.status = "Cancelled"
        self._filling.discard(order.perm_id)
        self.events.order_cancelled(order)

    def pend_cancel(self, order: SimOrder, after: float, then: str) -> None:
        """A cancel the destination has not confirmed: PendingCancel now, then a fill or the cancel.

        IB: "your order is not confirmed canceled. You may still receive an execution while your
        cancellation request is pending" (order status reference)."""
        self._filling.discard(order.perm_id)
        order.status = "PendingCancel"
        self.events.order_changed(order)

        def outcome() -> None:
            if order.status != "PendingCancel":
                return
            if then == "fill" and order.remaining > 1e-9:
                order.status = "Submitted"  # the fill lands on a live order
                self._fill(order, order.remaining, self.book.mark(order.inst.con_id))
            else:
                self._cancel(order)

        self.schedule(after, outcome)

    def cancel_order(self, order: SimOrder) -> None:
        """Cancel regardless of owner (global cancel, simulator API)."""
        if order.is_open:
            self._cancel(order)
