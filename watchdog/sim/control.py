"""State-setting half of the Simulator API: prices, positions, account values, P&L, sessions, orders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from watchdog.sim.book import Book
from watchdog.sim.orders import OrderEngine, Session
from watchdog.sim.server import ReceivedFrame, SimServer
from watchdog.sim.universe import Instrument, Universe


class SimulatorError(ValueError):
    """A simulator API call was refused (unknown symbol, rejected order, ...)."""


class ControlMixin:
    """Methods tests and scenarios call to drive the simulated gateway; every change is pushed at once."""

    universe: Universe
    book: Book
    engine: OrderEngine
    server: SimServer
    last_error: tuple[int, int, str] | None
    unpriced: set[int]  # conIds without market data: no price in portfolio rows or P&L values
    undefined: set[int]  # conIds reqContractDetails does not know (error 200)

    # Provided by Simulator (declared here so the mixin type-checks on its own).
    book_changed: Callable[..., None]
    next_order_id: Callable[[int], int]
    _note_order_id: Callable[[int, int], None]

    def instrument(self, key: int | str) -> Instrument:
        inst = self.universe.find(key)
        if inst is None:
            known = sorted({i.symbol for i in self.universe.by_con_id.values()})
            raise SimulatorError(f"unknown instrument {key!r}; known: {known}")
        return inst

    def set_price(self, symbol: int | str, price: float) -> None:
        """New mark: P&L and account values move, subscribers are told, resting orders may fill."""
        if not price > 0:
            raise SimulatorError(f"price must be positive, got: {price}")
        inst = self.instrument(symbol)
        self.book.set_mark(inst.con_id, float(price))
        for account in sorted(
            {p.account for p in self.book.positions.values() if p.inst.con_id == inst.con_id}
        ):
            self.book_changed(account, (inst.con_id,))
        self.engine.on_price(inst.con_id)

    def set_market_data(self, symbol: int | str, available: bool) -> None:
        """Without market data a position's portfolio row carries price 0 and its P&L value is unset
        (as for a contract the account has no subscription for); accounting goes on at the mark."""
        inst = self.instrument(symbol)
        (self.unpriced.discard if available else self.unpriced.add)(inst.con_id)
        for account in sorted(
            {p.account for p in self.book.positions.values() if p.inst.con_id == inst.con_id}
        ):
            self.book_changed(account, (inst.con_id,))

    def set_contract_details(self, symbol: int | str, known: bool) -> None:
        """An unknown contract: reqContractDetails answers error 200 (no security definition) for it."""
        inst = self.instrument(symbol)
        (self.undefined.discard if known else self.undefined.add)(inst.con_id)

    def price(self, key: int | str) -> float:
        return self.book.mark(self.instrument(key).con_id)

    def set_position(
        self,
        account: str,
        symbol: int | str,
        quantity: float,
        avg_cost: float | None = None,
        *,
        avg_price: float | None = None,
    ) -> None:
        """Holding as if held since the open. avg_cost follows IB (multiplier included); or give avg_price."""
        inst = self.instrument(symbol)
        if avg_cost is not None:
            per_unit = avg_cost / inst.multiplier
        elif avg_price is not None:
            per_unit = avg_price
        else:
            per_unit = self.book.mark(inst.con_id)
        self._account(account)
        self.book.set_position(account, inst, float(quantity), per_unit)
        self.book_changed(account, (inst.con_id,))

    def _account(self, account: str) -> None:
        if account not in self.book.accounts:
            raise SimulatorError(f"unknown account {account!r}; known: {sorted(self.book.accounts)}")

    def set_account_value(self, account: str, tag: str, value: float | str) -> None:
        """Set any summary tag (TotalCashValue changes cash; others override the derived value)."""
        self._account(account)
        self.book.set_account_value(account, tag, value)
        self.book_changed(account)

    def clear_account_value(self, account: str, tag: str) -> None:
        self._account(account)
        self.book.account(account).overrides.pop(tag, None)
        self.book_changed(account)

    def set_pnl(
        self,
        account: str,
        daily: float | None = None,
        unrealized: float | None = None,
        realized: float | None = None,
    ) -> None:
        """Override P&L values (sticky until clear_pnl); pushed to reqPnL subscribers at once."""
        self._account(account)
        o = self.book.account(account).pnl_override
        for name, v in (("daily", daily), ("unrealized", unrealized), ("realized", realized)):
            if v is not None:
                o[name] = float(v)
        self.book_changed(account)

    def clear_pnl(self, account: str) -> None:
        self._account(account)
        self.book.account(account).pnl_override.clear()
        self.book_changed(account)

    def pnl(self, account: str) -> tuple[float, float, float]:
        """(daily, unrealized, realized) as reqPnL would report it now."""
        self._account(account)
        return self.book.pnl(account)

    def account_values(self, account: str) -> dict[str, str]:
        self._account(account)
        return self.book.account_values(account)

    def set_session(self, session: Session) -> None:
        try:
            self.engine.set_session(session)
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None

    @property
    def session(self) -> Session:
        return self.engine.session

    def place_order_as(
        self,
        client_id: int,
        account: str,
        symbol: int | str,
        action: str,
        quantity: float,
        order_type: str = "LMT",
        lmt_price: float | None = None,
        aux_price: float | None = None,
        *,
        outside_rth: bool = False,
        order_ref: str = "",
        exchange: str | None = None,
        tif: str = "DAY",
    ) -> int:
        """An order by another client (0 = manual TWS order, bound to a negative id); returns its orderId."""
        inst = self.instrument(symbol)
        self._account(account)
        if client_id == 0:
            order_id = self.engine.next_manual_id()
        else:
            order_id = self.next_order_id(client_id)
            self._note_order_id(client_id, order_id)
        self.last_error = None
        order = self.engine.place(
            client_id=client_id,
            order_id=order_id,
            account=account,
            inst=inst,
            action=action.upper(),
            qty=float(quantity),
            order_type=order_type.upper(),
            lmt_price=lmt_price,
            aux_price=aux_price,
            tif=tif,
            outside_rth=outside_rth,
            order_ref=order_ref,
            exchange=inst.exchange if exchange is None else exchange,
        )
        if order is None:
            raise SimulatorError(f"order rejected: {self.last_error}")
        return order_id

    def cancel_order_as(self, client_id: int, order_id: int) -> bool:
        """Cancel as its owner would (manual cancel in TWS for client 0)."""
        return self.engine.cancel(client_id, order_id) is not None

    def received(self, client_id: int | None = None) -> list[ReceivedFrame]:
        """Decoded frames clients sent, oldest first (client_id=None: all clients)."""
        return [r for r in self.server.received if client_id is None or r.client_id == client_id]

    def connected_clients(self) -> list[int]:
        return self.server.connected_clients()

    # The test API is fixed as wait_until(predicate, timeout); polling is the point of this helper.
    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float,
        interval: float = 0.01,
    ) -> None:
        """Poll `predicate` until true; TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(interval)
