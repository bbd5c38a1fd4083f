"""Simulator API for what real accounts show a watchdog: summary rows in several currencies,
execution corrections, a portfolio price that froze, read-only mode, per-contract calendars.

Facts: IB corrects an execution by sending a new execId that differs only after its last period
(`….01` → `….02`, TWS API "Executions and Commissions"); account values come per currency plus `BASE`
rows when the account holds several currencies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from watchdog.sim import messages as m
from watchdog.sim.book import Book, SimOrder
from watchdog.sim.exchange import READ_ONLY_TEXT, ExchangeRules, calendar_of, session_at
from watchdog.sim.server import ClientConn, SimServer
from watchdog.sim.universe import Instrument


class AccountQuirksMixin:
    """Methods tests call; each pushes what changed to the subscribers at once."""

    book: Book
    rules: ExchangeRules
    server: SimServer
    clock: Callable[[], float]
    currency_rows: dict[str, list[tuple[str, str, str]]]
    currency_rows_first: set[str]
    # provided by Simulator
    book_changed: Callable[..., None]
    instrument: Callable[[int | str], Instrument]
    _recipients: Callable[[SimOrder], list[ClientConn]]

    def add_currency_rows(
        self, account: str, currency: str, values: dict[str, float], *, first: bool = False
    ) -> None:
        """Extra account rows in another currency, sent after the base (USD) rows, or before them
        with `first` (a gateway promises no order). The account updates (reqAccountUpdates) then also
        carry the ledger's `BASE` block naming the base: `RealCurrency` = USD, currency `BASE`."""
        rows = self.currency_rows.setdefault(account, [])
        rows[:] = [r for r in rows if r[2] != currency]
        rows.extend((tag, f"{v:.2f}", currency) for tag, v in values.items())
        if first:
            self.currency_rows_first.add(account)
        else:
            self.currency_rows_first.discard(account)
        self.book_changed(account)

    def freeze_portfolio_price(self, symbol: int | str, price: float | None = None) -> None:
        """The portfolio (reqAccountUpdates) keeps reporting `price` (default: the current mark) while
        the market moves; quotes (reqMktData) and fills follow the live mark."""
        inst = self.instrument(symbol)
        self.rules.frozen_portfolio[inst.con_id] = price if price is not None else self.book.mark(inst.con_id)

    def set_read_only(self, on: bool = True) -> None:
        """TWS "Read-Only API": every order, cancel and global cancel answers 321."""
        self.rules.read_only = on

    def refuse_read_only(self, conn: ClientConn, req_id: int) -> bool:
        if self.rules.read_only and conn.client_id != 0:
            conn.error(req_id, 321, READ_ONLY_TEXT)
            return True
        return False

    def correct_execution(
        self, exec_id: str, *, shares: float | None = None, price: float | None = None
    ) -> str:
        """Send a correction of one execution: same order, execId with the part after the last period
        incremented. Both stay in reqExecutions answers, like a gateway keeps them. Returns the new id."""
        stem = exec_id.rpartition(".")[0]
        old = next(e for e in reversed(self.book.executions) if e.exec_id.rpartition(".")[0] == stem)
        base, _, n = old.exec_id.rpartition(".")
        new = dataclasses.replace(
            old,
            exec_id=f"{base}.{int(n) + 1:02d}",
            shares=old.shares if shares is None else shares,
            price=old.price if price is None else price,
        )
        self.book.executions.append(new)
        order = next((o for o in self.book.orders.values() if o.perm_id == old.perm_id), None)
        conns = self._recipients(order) if order is not None else list(self.server.conns)
        for c in conns:
            c.send(m.execution(-1, new))
            c.send(m.commission_report(new))
        return new.exec_id

    def session_of(self, inst: Instrument) -> str | None:
        """The contract's own session from its calendar, when calendar sessions are switched on."""
        if not self.rules.calendar_sessions:
            return None
        return session_at(calendar_of(inst), self.clock())
