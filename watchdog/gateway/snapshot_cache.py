"""The latest polled values with their receive times, and the one immutable `Snapshot` built from them.

Pure bookkeeping (no ib_async, no I/O): `gateway.Gateway` writes converted model records in,
`build()` hands one frozen Snapshot out. Every value carries the epoch time it was received, so
rules can tell fresh data from stale data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import MappingProxyType

from watchdog.model import (
    AccountState,
    Fill,
    GatewayStatus,
    OpenOrder,
    OrderKey,
    Position,
    Snapshot,
    order_key,
)

# how far back `Snapshot.order_events` reaches (rules count orders per minute; an hour is plenty)
ORDER_EVENT_WINDOW = 3600.0


class SnapshotCache:
    """Latest values per watched account plus positions, working orders and today's fills."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, float | None]] = {}
        self._as_of: dict[str, dict[str, float]] = {}
        self._currency: dict[str, str] = {}
        self._positions: tuple[Position, ...] = ()
        self._positions_as_of: float | None = None
        self._orders: tuple[OpenOrder, ...] = ()
        self._orders_as_of: float | None = None
        self._fills: tuple[Fill, ...] = ()
        self._fills_as_of: float | None = None
        # order identity -> (account, first-seen epoch); None = already there when we started watching
        self._first_seen: dict[OrderKey, tuple[str, float | None]] = {}
        self._baselined: set[str] = set()  # sources ("orders", "fills") whose first poll is done

    def set_value(self, account: str, name: str, value: float | None, at: float, currency: str = "") -> bool:
        """Store a value received at `at`; True when it differs from the one held (or is new)."""
        values = self._values.setdefault(account, {})
        changed = name not in values or values[name] != value
        values[name] = value
        self._as_of.setdefault(account, {})[name] = at
        if currency and name == "net_liquidation":
            self._currency[account] = currency
        return changed

    def value(self, account: str, name: str) -> tuple[float | None, float | None]:
        """(value, as_of) of one account field; (None, None) when never received."""
        return self._values.get(account, {}).get(name), self._as_of.get(account, {}).get(name)

    def set_positions(self, positions: Sequence[Position], at: float) -> None:
        self._positions = tuple(positions)
        self._positions_as_of = at

    def set_orders(self, orders: Sequence[OpenOrder], at: float) -> None:
        self._orders = tuple(orders)
        self._orders_as_of = at
        self._see("orders", ((o.account, order_key(o)) for o in orders), at)

    def set_fills(self, fills: Sequence[Fill], at: float) -> None:
        self._fills = tuple(fills)
        self._fills_as_of = at
        # an order placed and filled between two order polls only shows up as a fill
        self._see("fills", ((f.account, order_key(f)) for f in fills), at)

    @property
    def positions(self) -> tuple[Position, ...]:
        return self._positions

    def _see(self, source: str, keyed: Iterable[tuple[str, OrderKey]], at: float) -> None:
        # orders already working (or filled) when watching starts are a baseline, not new placements
        stamp: float | None = at if source in self._baselined else None
        for account, key in keyed:
            if key not in self._first_seen:
                self._first_seen[key] = (account, stamp)
        self._baselined.add(source)
        horizon = at - 24 * 3600.0
        if len(self._first_seen) > 10_000:
            self._first_seen = {k: v for k, v in self._first_seen.items() if v[1] is None or v[1] >= horizon}

    def order_events(self, now: float) -> tuple[tuple[str, float], ...]:
        since = now - ORDER_EVENT_WINDOW
        events = [(acct, t) for acct, t in self._first_seen.values() if t is not None and t >= since]
        return tuple(sorted(events, key=lambda e: e[1]))

    def build(self, *, taken_at: float, watched: Sequence[str], gateway: GatewayStatus) -> Snapshot:
        accounts: dict[str, AccountState] = {}
        for account in watched:
            values = dict(self._values.get(account, {}))
            accounts[account] = AccountState(
                account=account,
                currency=self._currency.get(account, "USD"),
                as_of=MappingProxyType(dict(self._as_of.get(account, {}))),
                **values,  # keys are AccountState field names (SUMMARY_TAGS / pnl)
            )
        keep = frozenset(watched)
        return Snapshot(
            taken_at=taken_at,
            accounts=MappingProxyType(accounts),
            positions=tuple(p for p in self._positions if p.account in keep),
            open_orders=tuple(o for o in self._orders if o.account in keep),
            fills=tuple(f for f in self._fills if f.account in keep),
            gateway=gateway,
            positions_as_of=self._positions_as_of,
            orders_as_of=self._orders_as_of,
            fills_as_of=self._fills_as_of,
            order_events=tuple(e for e in self.order_events(taken_at) if e[0] in keep),
        )
