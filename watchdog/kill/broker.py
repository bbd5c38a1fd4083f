"""The small interface the kill switch needs from a broker connection.

`gateway.Gateway` implements it over ib_async; unit tests hand the kill switch a fake that
satisfies the same Protocol. Every method raises `errors.GatewayUnavailable` when not connected.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from watchdog.model import CloseOrderRequest, ContractDetails, Fill, OpenOrder, Position, Quote


class Broker(Protocol):
    def is_connected(self) -> bool:
        """True while the socket is up and the last heartbeat was answered."""
        ...

    async def global_cancel(self) -> None:
        """Send reqGlobalCancel: every open order of the account(s), whichever client placed it."""
        ...

    async def cancel_order(self, order_id: int) -> None:
        """Cancel one order this client owns."""
        ...

    async def open_orders(self) -> list[OpenOrder]:
        """A fresh reqAllOpenOrders round trip: working orders of every client, manual ones included."""
        ...

    async def positions(self) -> list[Position]:
        """A fresh reqPositions round trip: every non-zero position of every managed account."""
        ...

    async def place_close_order(self, request: CloseOrderRequest) -> int:
        """Place one closing order; returns its order id. Never waits for the fill."""
        ...

    def order_fills(self, order_ids: Collection[int]) -> list[Fill]:
        """The executions of this client's orders `order_ids` received so far, corrections applied
        (`model.without_corrected`). Synchronous and local (what the connection has heard: no round
        trip), so it never holds up the kill; never raises, [] when not connected. One call per read
        for all closing orders of a kill: one pass over the session's executions however many."""
        ...

    async def mark_price(self, position: Position) -> float | None:
        """Best known mark for a position's contract (portfolio market price), or None."""
        ...

    def is_regular_hours(self, position: Position, now: float) -> bool:
        """The fallback table: whether a market order is accepted for this contract right now."""
        ...

    def contract_details(self, position: Position) -> ContractDetails | None:
        """Cached contract details (tick ladder, own trading hours), or None when not looked up."""
        ...

    async def quote(self, position: Position, exchange: str, side: str) -> Quote | None:
        """The freshest price for a closing order on `side` (snapshot quote, else portfolio mark)."""
        ...

    def write_access(self) -> bool | None:
        """False when the API was found read-only (error 321), True when proven writable, None unknown."""
        ...

    def order_error(self, order_id: int) -> tuple[int, str] | None:
        """The last error the gateway reported for one of this client's orders (e.g. 201 rejected), or None.

        The kill switch uses it after a closing order vanished without filling: codes it cannot fix
        (200, 203, 321) are escalated at once, a refused market order is retried as a limit.
        """
        ...
