"""An in-memory order book and broker clients that satisfy the Broker Protocol, on virtual time.

The book models what the kill switch must survive: several clients (0 = TWS GUI), global cancel,
cancels that are ignored, fills and partial fills as time moves, limit orders that fill only when
marketable, rejects with error codes, and a gateway that disconnects after N calls. It also checks
the one rule that matters: no fill of a watchdog closing order ever takes a position past zero.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from watchdog.errors import GatewayUnavailable
from watchdog.model import (
    CloseOrderRequest,
    ContractDetails,
    ContractRef,
    Fill,
    OpenOrder,
    Position,
    Quote,
)

EPS = 1e-9
WATCHDOG_REF = "ibkr-watchdog"


class FakeClock:
    """Virtual time shared by every task: a sleep ends when it is the earliest pending wake-up.

    Fake broker calls never suspend, so a task only yields in `sleep`; the earliest sleeper
    advances the clock once every ready task has run up to its own sleep.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int]] = []
        self._seq = 0
        self.on_advance: list[Callable[[float], None]] = []
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        me = (self.now + max(0.0, seconds), self._seq)
        self._seq += 1
        heapq.heappush(self._sleepers, me)
        try:
            while True:
                for _ in range(3):  # let every ready task reach its own sleep first
                    await asyncio.sleep(0)
                if self._sleepers[0] == me:
                    break
        except asyncio.CancelledError:  # a cancelled ('restarted') task must not hold time back
            self._sleepers.remove(me)
            heapq.heapify(self._sleepers)
            raise
        heapq.heappop(self._sleepers)
        if me[0] > self.now:
            self.now = me[0]
            for cb in self.on_advance:
                cb(self.now)


@dataclass
class BookOrder:
    client_id: int
    order_id: int
    perm_id: int
    account: str
    contract: ContractRef
    action: str
    total: float
    order_type: str = "LMT"
    lmt_price: float | None = None
    order_ref: str = ""
    outside_rth: bool = False
    exchange: str = ""
    filled: float = 0.0
    status: str = "Submitted"
    ignore_cancels: int = 0  # cancels (global or single) to ignore before honouring one
    placed_at: float = 0.0
    late_fill_after: float | None = None  # a cancel leaves it PendingCancel; it fills this much later
    fill_at: float | None = None  # when a PendingCancel order's late fill lands
    why_held: str = ""
    held_until: float | None = None  # a held order does not fill before this time

    @property
    def remaining(self) -> float:
        return self.total - self.filled

    @property
    def working(self) -> bool:
        """Not terminal: the gateway lists it, and it can still fill (PendingCancel, held, …)."""
        return self.status in ("Submitted", "PreSubmitted", "PendingCancel")

    def view(self) -> OpenOrder:
        return OpenOrder(
            order_id=self.order_id,
            perm_id=self.perm_id,
            client_id=self.client_id,
            account=self.account,
            contract=self.contract,
            action=self.action,
            total_quantity=self.total,
            filled=self.filled,
            remaining=self.remaining,
            order_type=self.order_type,
            lmt_price=self.lmt_price,
            status=self.status,
            order_ref=self.order_ref,
            outside_rth=self.outside_rth,
            why_held=self.why_held,
        )


@dataclass
class Message:
    at: float
    client_id: int
    kind: str  # global_cancel / cancel_order / place_order
    detail: object = None


@dataclass
class FakeBook:
    clock: FakeClock
    positions: dict[tuple[str, int], float] = field(default_factory=dict)
    contracts: dict[int, ContractRef] = field(default_factory=dict)
    marks: dict[int, float | None] = field(default_factory=dict)
    orders: list[BookOrder] = field(default_factory=list)
    regular_hours: bool = True
    fill_chunk: dict[int, float] = field(default_factory=dict)  # conId → quantity per tick (default: all)
    fill_foreign: bool = False  # fill non-watchdog orders too
    refuse_market: bool = False  # market orders rejected (201), as outside regular hours
    hold_market_until: float | None = None  # watchdog market orders held (whyHeld) until then: a holiday
    reject_next: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # conId → next rejects
    errors: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    crossings: list[str] = field(default_factory=list)  # any fill (whoever's) that crossed zero
    executions: list[Fill] = field(default_factory=list)  # every fill, as execDetails would report it
    connected: bool = True
    read_only: bool | None = None  # what the write-access probe found (None: not proven)
    details: dict[int, ContractDetails] = field(default_factory=dict)
    calls: int = 0
    fail_at_call: int | None = None  # the gateway drops at this call number
    _next_perm: int = 1000
    _next_id: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clock.on_advance.append(self.tick)

    # ------------------------------------------------------------------ set-up
    def add_position(
        self, account: str, contract: ContractRef, quantity: float, *, mark: float | None = 100.0
    ) -> None:
        self.contracts[contract.con_id] = contract
        self.positions[(account, contract.con_id)] = quantity
        self.marks[contract.con_id] = mark

    def add_order(
        self,
        client_id: int,
        account: str,
        contract: ContractRef,
        action: str,
        quantity: float,
        *,
        order_type: str = "LMT",
        lmt_price: float | None = 1.0,
        order_ref: str = "",
        ignore_cancels: int = 0,
    ) -> BookOrder:
        self.contracts.setdefault(contract.con_id, contract)
        self._next_perm += 1
        oid = self._next_id.get(client_id, 1)
        self._next_id[client_id] = oid + 1
        order = BookOrder(
            client_id=client_id,
            order_id=oid,
            perm_id=self._next_perm,
            account=account,
            contract=contract,
            action=action,
            total=quantity,
            order_type=order_type,
            lmt_price=lmt_price,
            order_ref=order_ref,
            ignore_cancels=ignore_cancels,
            placed_at=self.clock.now,
        )
        self.orders.append(order)
        return order

    # ------------------------------------------------------------------ what the broker does
    def gate(self) -> None:
        self.calls += 1
        if self.fail_at_call is not None and self.calls >= self.fail_at_call:
            self.fail_at_call = None
            self.connected = False
        if not self.connected:
            raise GatewayUnavailable("fake gateway disconnected")

    def _cancel(self, order: BookOrder) -> None:
        if order.status == "PendingCancel":
            return  # not cancellable now: the destination decides (IB answers 161)
        if order.ignore_cancels > 0:
            order.ignore_cancels -= 1
            return
        if order.late_fill_after is not None:
            order.status = "PendingCancel"  # the cancel is not final: it fills instead
            order.fill_at = self.clock.now + order.late_fill_after
            return
        order.status = "Cancelled"

    def global_cancel(self, client_id: int) -> None:
        self.messages.append(Message(self.clock.now, client_id, "global_cancel"))
        for o in self.orders:
            if o.working:
                self._cancel(o)

    def cancel(self, client_id: int, order_id: int) -> None:
        self.messages.append(Message(self.clock.now, client_id, "cancel_order", order_id))
        for o in self.orders:
            if o.working and o.client_id == client_id and o.order_id == order_id:
                self._cancel(o)

    def place(self, client_id: int, req: CloseOrderRequest) -> int:
        self.messages.append(Message(self.clock.now, client_id, "place_order", req))
        assert req.quantity > 0 and req.exchange, req
        order = self.add_order(
            client_id,
            req.account,
            req.contract,
            req.action,
            req.quantity,
            order_type=req.order_type,
            lmt_price=req.limit_price,
            order_ref=req.order_ref,
        )
        order.outside_rth, order.exchange = req.outside_rth, req.exchange
        hold = self.hold_market_until
        if req.order_type == "MKT" and hold is not None and self.clock.now < hold:
            order.status, order.why_held, order.held_until = "PreSubmitted", "trading hours", hold
        rejects = self.reject_next.get(req.contract.con_id)
        if rejects:
            self._reject(order, *rejects.pop(0))
        elif req.order_type == "MKT" and self.refuse_market:
            self._reject(order, 201, "Order rejected - reason: market orders are not accepted now")
        return order.order_id

    def _reject(self, order: BookOrder, code: int, text: str) -> None:
        order.status = "Cancelled"
        self.errors[(order.client_id, order.order_id)] = (code, text)

    def tick(self, now: float) -> None:
        """Time moved: marketable working orders fill (a chunk each tick when partial fills are set)."""
        for o in self.orders:
            if o.status == "PendingCancel":
                if o.fill_at is not None and now >= o.fill_at:
                    self.fill(o, o.remaining)  # the late fill IB warns about
                continue
            if o.held_until is not None and o.working:  # a held order that was cancelled stays cancelled
                if now < o.held_until:
                    continue
                o.held_until, o.why_held, o.status = None, "", "Submitted"
            if not o.working or (not self.fill_foreign and not o.order_ref.startswith(WATCHDOG_REF)):
                continue
            mark = self.marks.get(o.contract.con_id)
            limit = o.lmt_price if o.order_type == "LMT" else None
            if (
                limit is not None
                and mark is not None
                and (limit < mark if o.action == "BUY" else limit > mark)
            ):
                continue  # a limit that is not marketable rests
            self.fill(o, min(o.remaining, self.fill_chunk.get(o.contract.con_id, o.remaining)))

    def fill(self, order: BookOrder, qty: float) -> None:
        key = (order.account, order.contract.con_id)
        before = self.positions.get(key, 0.0)
        after = before + (qty if order.action == "BUY" else -qty)
        if (before > EPS and after < -EPS) or (before < -EPS and after > EPS):
            who = f"client {order.client_id} {order.action} {qty}"
            self.crossings.append(f"{who} of {key}: {before} to {after}")
        if order.order_ref.startswith(WATCHDOG_REF):
            crossed = (order.action == "SELL" and after < -EPS) or (order.action == "BUY" and after > EPS)
            if crossed:
                self.violations.append(f"{order.action} {qty} of {key} took {before} to {after}")
        self.positions[key] = after
        order.filled += qty
        self.executions.append(
            Fill(
                exec_id=f"0000f4ce.{order.perm_id:08x}.{len(self.executions) + 1:02d}.01",
                time=self.clock.now,
                account=order.account,
                contract=order.contract,
                side="BOT" if order.action == "BUY" else "SLD",
                shares=qty,
                price=self.marks.get(order.contract.con_id) or 0.0,
                order_id=order.order_id,
                perm_id=order.perm_id,
                client_id=order.client_id,
                order_ref=order.order_ref,
                commission=1.0,
            )
        )
        if order.remaining <= EPS:
            order.status = "Filled"

    def nonzero(self) -> dict[tuple[str, int], float]:
        return {k: v for k, v in self.positions.items() if abs(v) > EPS}

    def sent(self, client_id: int | None = None) -> list[Message]:
        return [m for m in self.messages if client_id is None or m.client_id == client_id]


class FakeBroker:
    """One API client (one client id) on the shared book."""

    def __init__(self, book: FakeBook, client_id: int = 99) -> None:
        self.book = book
        self.client_id = client_id

    def is_connected(self) -> bool:
        return self.book.connected

    async def global_cancel(self) -> None:
        self.book.gate()
        self.book.global_cancel(self.client_id)

    async def cancel_order(self, order_id: int) -> None:
        self.book.gate()
        self.book.cancel(self.client_id, order_id)

    async def open_orders(self) -> list[OpenOrder]:
        self.book.gate()
        return [o.view() for o in self.book.orders if o.working]

    async def positions(self) -> list[Position]:
        self.book.gate()
        return [
            Position(account=a, contract=self.book.contracts[c], quantity=q)
            for (a, c), q in self.book.nonzero().items()
        ]

    async def place_close_order(self, request: CloseOrderRequest) -> int:
        self.book.gate()
        return self.book.place(self.client_id, request)

    async def mark_price(self, position: Position) -> float | None:
        self.book.gate()
        return self.book.marks.get(position.contract.con_id)

    def is_regular_hours(self, position: Position, now: float) -> bool:
        return self.book.regular_hours

    def contract_details(self, position: Position) -> ContractDetails | None:
        return self.book.details.get(position.contract.con_id)

    async def quote(self, position: Position, exchange: str, side: str) -> Quote | None:
        mark = await self.mark_price(position)
        return Quote(price=mark, as_of=self.book.clock(), source="last") if mark else None

    def write_access(self) -> bool | None:
        return None if self.book.read_only is None else not self.book.read_only

    def order_error(self, order_id: int) -> tuple[int, str] | None:
        return self.book.errors.get((self.client_id, order_id))

    def order_fills(self, order_ids: Collection[int]) -> list[Fill]:
        return [f for f in self.book.executions if f.client_id == self.client_id and f.order_id in order_ids]


def stock(con_id: int = 1, symbol: str = "AAPL") -> ContractRef:
    return ContractRef(con_id=con_id, symbol=symbol, sec_type="STK", primary_exchange="NASDAQ")


def future(con_id: int = 2, symbol: str = "ES", exchange: str = "CME") -> ContractRef:
    return ContractRef(con_id=con_id, symbol=symbol, sec_type="FUT", exchange=exchange, multiplier=50.0)


def option(con_id: int = 3, symbol: str = "AAPL") -> ContractRef:
    return ContractRef(
        con_id=con_id, symbol=symbol, sec_type="OPT", strike=200.0, right="C", multiplier=100.0
    )
