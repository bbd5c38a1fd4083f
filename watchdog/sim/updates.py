"""What the simulated gateway tells its clients when an order or the book changes.

Order events (openOrder, orderStatus, execDetails, commissionReport, error 202) go to the order's
own client, to client 0 (TWS) and to the master client; account data (P&L, positions, portfolio,
account values and summaries) goes to every client subscribed to that account, at once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from watchdog.sim import messages as m
from watchdog.sim.book import NO_CURRENCY_TAGS, Book, Execution, PositionState, SimOrder
from watchdog.sim.exchange import ExchangeRules
from watchdog.sim.faults import Faults
from watchdog.sim.server import ClientConn, SimServer

__all__ = ["ClientUpdates"]


class ClientUpdates:
    """The OrderEvents the order engine calls, and the senders the request handlers use."""

    book: Book
    server: SimServer
    clock: Callable[[], float]
    master_client_id: int | None
    last_error: tuple[int, int, str] | None
    rules: ExchangeRules
    currency_rows: dict[str, list[tuple[str, str, str]]]
    currency_rows_first: set[str]
    unpriced: set[int]  # conIds without market data (ControlMixin.set_market_data)
    faults: Faults
    _schedule: Callable[[float, Callable[[], None]], None]  # Simulator: call later, cancelled at stop

    def sees_all(self, conn: ClientConn) -> bool:
        """Client 0 (TWS) and the master client get every client's order updates."""
        return conn.client_id == 0 or (
            self.master_client_id is not None and conn.client_id == self.master_client_id
        )

    def _recipients(self, order: SimOrder) -> list[ClientConn]:
        return [
            c
            for c in list(self.server.conns)
            if c.client_id is not None and (c.client_id == order.client_id or self.sees_all(c))
        ]

    # --- OrderEvents -----------------------------------------------------------------------

    def _told(self, order: SimOrder) -> list[ClientConn]:
        """Who hears a status change: a terminal one only the owner under the `unlist(quiet=True)` fault."""
        quiet = self.faults.state.quiet_others and order.status in ("Filled", "Cancelled", "ApiCancelled")
        return [c for c in self._recipients(order) if not quiet or c.client_id == order.client_id]

    def order_changed(self, order: SimOrder) -> None:
        for c in self._told(order):
            c.send(m.open_order(order))
            c.send(m.order_status(order))

    def order_cancelled(self, order: SimOrder) -> None:
        for c in self._told(order):
            c.send(m.order_status(order))
            if c.client_id == order.client_id:
                c.error(order.order_id, 202, "Order Canceled - reason:")

    def order_error(self, client_id: int, order_id: int, code: int, message: str) -> None:
        self.last_error = (order_id, code, message)
        conn = self.server.by_client_id.get(client_id)
        if conn is not None:
            conn.error(order_id, code, message)

    def executed(self, order: SimOrder, execution: Execution) -> None:
        late = self.faults.state.late_executions
        if late <= 0:
            for c in self._recipients(order):
                c.send(m.execution(-1, execution))
            return
        told = self._recipients(order)

        def deliver() -> None:  # execDetails, then its commission report, like a gateway sends them
            for c in told:
                c.send(m.execution(-1, execution))
                c.send(m.commission_report(execution))

        self._schedule(late, deliver)

    def commission(self, order: SimOrder, execution: Execution) -> None:
        if self.faults.state.late_executions > 0:
            return  # goes with the late execDetails (`executed`)
        for c in self._recipients(order):
            c.send(m.commission_report(execution))

    def book_changed(self, account: str, con_ids: Iterable[int] = ()) -> None:
        """Push everything derived from the book to the subscribers of `account` at once."""
        changed = set(con_ids)
        # like a gateway: a change to some contracts updates only their position/portfolio rows (a
        # full push per fill made flattening N positions cost O(N²) messages); an account-level
        # change (cash, P&L, a tag) re-sends every open position
        positions = [
            p
            for p in self.book.positions.values()
            if p.account == account and (p.inst.con_id in changed if changed else p.qty)
        ]
        for conn in list(self.server.conns):
            s = conn.subs
            for req_id, a in list(s.pnl.items()):
                if a == account:
                    self.send_pnl(conn, req_id, a)
            for req_id, (a, con_id) in list(s.pnl_single.items()):
                if a == account:
                    self.send_pnl_single(conn, req_id, a, con_id)
            if s.positions:
                for p in positions:
                    conn.send(m.position(p))
            if s.account_updates == account:
                self.send_account_updates(conn, account, positions)
            for req_id, a in list(s.account_updates_multi.items()):
                if a == account:
                    for tag, value, cur in self.account_value_rows(a, ledger=True):
                        conn.send(m.account_update_multi(req_id, a, "", tag, value, cur))
            for req_id, tags in list(s.account_summary.items()):
                self.send_account_summary(conn, req_id, tags, only=account)

    # --- senders used by handlers ------------------------------------------------------------

    def account_value_rows(self, account: str, *, ledger: bool = False) -> list[tuple[str, str, str]]:
        """The base (USD) rows and any rows in other currencies a test added (after the base rows, or
        before them). `ledger` (account updates): a multi-currency account's `BASE` block names the
        base currency, as IB's account values do (`RealCurrency`, value USD, currency BASE)."""
        base = [
            (t, v, "" if t in NO_CURRENCY_TAGS else "USD")
            for t, v in self.book.account_values(account).items()
        ]
        extra = self.currency_rows.get(account, [])
        if ledger and extra:
            base.append(("RealCurrency", "USD", "BASE"))
        return extra + base if account in self.currency_rows_first else base + extra

    def send_pnl(self, conn: ClientConn, req_id: int, account: str) -> None:
        conn.send(m.pnl(req_id, *self.book.pnl(account)))

    def send_pnl_single(self, conn: ClientConn, req_id: int, account: str, con_id: int) -> None:
        pos, daily, unrealized, realized, value = self.book.pnl_single(account, con_id)
        if con_id in self.unpriced:  # IB's "unset" double: no value without market data
            daily = unrealized = value = sys.float_info.max
        conn.send(m.pnl_single(req_id, pos, daily, unrealized, realized, value))

    def send_account_summary(
        self, conn: ClientConn, req_id: int, tags: frozenset[str], only: str | None = None
    ) -> None:
        for account in self.book.accounts:
            if only is not None and account != only:
                continue
            for tag, value, cur in self.account_value_rows(account):
                if tag in tags or "All" in tags:
                    conn.send(m.account_summary(req_id, account, tag, value, cur))
        conn.send(m.account_summary_end(req_id))

    def send_account_updates(
        self, conn: ClientConn, account: str, positions: list[PositionState] | None = None
    ) -> None:
        for tag, value, cur in self.account_value_rows(account, ledger=True):
            conn.send(m.account_value(tag, value, cur, account))
        for p in positions if positions is not None else self.book.open_positions(account):
            if p.inst.con_id in self.unpriced:
                conn.send(m.portfolio_value(p, 0.0, 0.0, 0.0))
                continue
            mark = self.rules.frozen_portfolio.get(p.inst.con_id) or self.book.mark(p.inst.con_id)
            conn.send(m.portfolio_value(p, mark, self.book.market_value(p), self.book.unrealized_of(p)))
        conn.send(m.account_update_time(self.clock()))
