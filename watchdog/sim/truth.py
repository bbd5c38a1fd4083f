"""The simulator's truth: positions and working orders as the simulator holds them.

Tests compare what a client (the watchdog, ib_async, ibapi) believes against these records.
"""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.sim.book import Book

__all__ = ["SimOpenOrder", "SimPosition", "open_orders_of", "positions_of"]


@dataclass(frozen=True, slots=True)
class SimPosition:
    """A position as the simulator holds it (the truth tests compare clients against)."""

    account: str
    symbol: str
    sec_type: str
    con_id: int
    quantity: float
    avg_cost: float  # IB convention: per contract, multiplier included
    market_price: float


@dataclass(frozen=True, slots=True)
class SimOpenOrder:
    """A working order as the simulator holds it, whichever client placed it."""

    account: str
    client_id: int
    order_id: int
    perm_id: int
    symbol: str
    sec_type: str
    con_id: int
    action: str
    quantity: float
    filled: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    status: str
    order_ref: str
    outside_rth: bool


def positions_of(book: Book, account: str | None = None) -> list[SimPosition]:
    """Every open position (of `account`), marked at the book's current price."""
    return [
        SimPosition(
            p.account,
            p.inst.symbol,
            p.inst.sec_type,
            p.inst.con_id,
            p.qty,
            p.avg_cost,
            book.mark(p.inst.con_id),
        )
        for p in book.open_positions(account)
    ]


def open_orders_of(book: Book, account: str | None = None) -> list[SimOpenOrder]:
    """Every working order of every client (of `account`)."""
    return [
        SimOpenOrder(
            o.account,
            o.client_id,
            o.order_id,
            o.perm_id,
            o.inst.symbol,
            o.inst.sec_type,
            o.inst.con_id,
            o.action,
            o.total_qty,
            o.filled,
            o.order_type,
            o.lmt_price,
            o.aux_price,
            o.status,
            o.order_ref,
            o.outside_rth,
        )
        for o in book.open_orders(account)
    ]
