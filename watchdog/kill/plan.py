"""Pure planning for the kill switch: whose orders, how much to close, where to route, what price, how fast.

Netting rule (why a retry, a restart or a second instance never over-closes): the quantity of a new
closing order is the position's size minus what this watchdog's own working closing orders (tagged
by `orderRef`) can still fill, with the orders read BEFORE the positions. Fills only ever lower both
sides of that subtraction together, so an order book read earlier can only over-state what is
pending, which makes the new order smaller, never larger.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from watchdog.model import ContractRef, OpenOrder, Position, order_key
from watchdog.readiness_model import PlanProblem, PlanReason

Key = tuple[str, int]  # (account, conId)
EPS = 1e-9
QTY_STEP = 1e-6  # closing quantities are floored to this step: rounding never adds quantity


def order_label(order: OpenOrder) -> str:
    return (
        f"{order.account} {order.action} {order.remaining:g} {order.contract.label} "
        f"{order.order_type} [{order.state_label}] "
        f"(client {order.client_id}, order {order.order_id}, perm {order.perm_id})"
    )


def is_watchdog_order(order: OpenOrder, prefix: str) -> bool:
    return order.order_ref.startswith(prefix)


def pending_quantity(order: OpenOrder) -> float:
    """What a working order can still fill; the larger reading wins (over-stating pending is safe)."""
    if not order.is_working:
        return 0.0
    return max(order.remaining, order.total_quantity - order.filled, 0.0)


def closing_side(quantity: float) -> str:
    return "SELL" if quantity > 0 else "BUY"


def target_reduction(quantity: float, base: float) -> float:
    """How much of |quantity| to close so the position returns to `base` (0 = flat), never past zero."""
    if abs(quantity) <= EPS:
        return 0.0
    if abs(base) <= EPS or (base > 0) != (quantity > 0):
        return abs(quantity)
    return max(0.0, abs(quantity) - abs(base))


def floor_qty(q: float) -> float:
    return math.floor(q / QTY_STEP + 1e-3) * QTY_STEP if q > 0 else 0.0


# Security types the kill closes through the API. Anything else (an index, a mutual fund bought by
# cash amount, a combo leg reported on its own, a type this code does not know) is escalated at once
# with "close it by hand" instead of sending an order IB would reject.
CLOSABLE_SEC_TYPES = frozenset(
    {"STK", "OPT", "FUT", "FOP", "CONTFUT", "CASH", "CFD", "WAR", "IOPT", "CRYPTO", "BOND", "CMDTY"}
)


def route_exchange(contract: ContractRef) -> str | None:
    """A routable exchange for a closing order, or None when none is known (never an empty string)."""
    sec_type = contract.sec_type.upper()
    if sec_type not in CLOSABLE_SEC_TYPES:
        return None
    if sec_type == "CASH":
        return "IDEALPRO"
    if sec_type in ("FUT", "FOP", "CONTFUT"):
        exchange = contract.exchange or contract.primary_exchange
        return exchange if exchange and exchange.upper() != "SMART" else None
    if sec_type == "CRYPTO":
        return contract.exchange or "PAXOS"
    return "SMART"


def limit_price(mark: float, side: str, collar: float, sec_type: str, min_tick: float = 0.0) -> float | None:
    """Aggressive limit: BUY at mark×(1+collar) rounded up, SELL at mark×(1−collar) rounded down.

    A single tick size only; closing orders are priced by `kill.pricing.limit_for`, which follows
    the contract's market-rule ladder (the increment can change with the price level).

    With the contract's tick size known, the price lands on a tick (an off-tick limit is rejected
    by the exchange: error 110), still rounded away from the mark so it stays marketable."""
    if not math.isfinite(mark) or mark <= 0:
        return None
    raw = mark * (1 + collar) if side == "BUY" else mark * (1 - collar)
    if min_tick > 0 and math.isfinite(min_tick):
        ticks = math.ceil(raw / min_tick - 1e-9) if side == "BUY" else math.floor(raw / min_tick + 1e-9)
        price = round(ticks * min_tick, 10)
        return price if price > 0 else None
    decimals = 5 if sec_type.upper() == "CASH" else (2 if raw >= 1.0 else 4)
    scale = 10**decimals
    price = math.ceil(raw * scale - 1e-6) / scale if side == "BUY" else math.floor(raw * scale + 1e-6) / scale
    return price if price > 0 else None


@dataclass(frozen=True, slots=True)
class CloseNeed:
    position: Position
    action: str  # BUY / SELL
    quantity: float  # > 0, already netted
    pending: float  # our working closing quantity it was netted against

    @property
    def key(self) -> Key:
        return self.position.key


def route_problem(contract: ContractRef) -> PlanProblem | None:
    """Why no closing order can be routed for this contract, or None when it can."""
    sec_type = contract.sec_type.upper()
    if sec_type not in CLOSABLE_SEC_TYPES:
        return PlanProblem(
            reason=PlanReason.NOT_CLOSABLE,
            detail=f"security type {sec_type or '(none)'} of {contract.label} is not closed through the API: "
            "close it by hand",
        )
    if contract.con_id <= 0 or route_exchange(contract) is None:
        return PlanProblem(
            reason=PlanReason.UNKNOWN_CONTRACT,
            detail=f"no routable exchange known for {contract.sec_type} {contract.label} "
            "(no contract details for it)",
        )
    return None


@dataclass(frozen=True, slots=True)
class ClosePlan:
    needs: tuple[CloseNeed, ...]
    cancels: tuple[tuple[OpenOrder, str], ...]  # our orders that must go first, with why
    open_keys: frozenset[Key]  # in-scope keys still away from their baseline
    # orders of others that can still fill on the closing side (PendingCancel, held, …): a close
    # is sized as if they fill, so they are why a position may stay partly open this round
    foreign: tuple[OpenOrder, ...] = ()


def plan_closes(
    positions: Sequence[Position],
    orders_before: Sequence[OpenOrder],
    orders_after: Sequence[OpenOrder],
    *,
    prefix: str,
    in_scope: Callable[[str], bool],
    baseline: Mapping[Key, float],
    skip: Iterable[Key] = (),
) -> ClosePlan:
    """One netting round. `orders_before` was read before `positions`, `orders_after` after them.

    Our working closing orders that would push a position past zero (wrong side, no position left,
    or more pending than there is to close) are listed for cancelling, and their key gets no new
    order this round: the cancel must land first.

    Every order that is not terminal (`model.is_terminal`) counts as filling, whoever placed it: a
    bot's order in PendingCancel or a held order can still execute (IB order status reference), so
    what all of them could still sell (for a long) is subtracted too. No outcome of the orders
    still alive can then take the position past zero.
    """
    pos = {p.key: p for p in positions if in_scope(p.account) and abs(p.quantity) > EPS}
    targets = {k: target_reduction(p.quantity, baseline.get(k, 0.0)) for k, p in pos.items()}

    def ours(orders: Sequence[OpenOrder]) -> dict[Key, list[OpenOrder]]:
        out: dict[Key, list[OpenOrder]] = {}
        for o in orders:
            if o.is_working and in_scope(o.account) and is_watchdog_order(o, prefix):
                out.setdefault((o.account, o.contract.con_id), []).append(o)
        return out

    def theirs(orders: Sequence[OpenOrder]) -> dict[Key, list[OpenOrder]]:
        out: dict[Key, list[OpenOrder]] = {}
        for o in orders:
            if o.is_working and in_scope(o.account) and not is_watchdog_order(o, prefix):
                out.setdefault((o.account, o.contract.con_id), []).append(o)
        return out

    before, after = ours(orders_before), ours(orders_after)
    foreign_before, foreign_after = theirs(orders_before), theirs(orders_after)
    cancels: list[tuple[OpenOrder, str]] = []
    held: set[Key] = set()
    for key, orders in after.items():
        p = pos.get(key)
        side = closing_side(p.quantity) if p is not None else None
        same = [o for o in orders if side is not None and o.action.upper() == side]
        for o in orders:
            if o not in same:
                cancels.append(
                    (o, "no position left" if p is None else "wrong side: the position changed sign")
                )
                held.add(key)
        if same and sum(pending_quantity(o) for o in same) > targets.get(key, 0.0) + EPS:
            cancels.extend((o, "more pending than left to close") for o in same)
            held.add(key)

    needs: list[CloseNeed] = []
    foreign: dict[tuple[int, int, int], OpenOrder] = {}
    skipped = set(skip) | held
    for key, p in pos.items():
        if key in skipped or targets[key] <= EPS:
            continue
        side = closing_side(p.quantity)

        def pend(orders: dict[Key, list[OpenOrder]], k: Key = key, s: str = side) -> float:
            return sum(pending_quantity(o) for o in orders.get(k, ()) if o.action.upper() == s)

        others = [o for o in (*foreign_before.get(key, ()), *foreign_after.get(key, ())) if o.action == side]
        foreign.update((order_key(o), o) for o in others)
        pending = max(pend(before), pend(after)) + max(pend(foreign_before), pend(foreign_after))
        qty = floor_qty(targets[key] - pending)
        if qty > EPS:
            needs.append(CloseNeed(position=p, action=side, quantity=qty, pending=pending))
    return ClosePlan(
        needs=tuple(needs),
        cancels=tuple(cancels),
        open_keys=frozenset(k for k, t in targets.items() if t > EPS),
        foreign=tuple(foreign.values()),
    )


class Pacer:
    """At most floor(rate) messages in any one-second window and at least 1/rate seconds apart.

    Waits are capped at one second so a wall clock stepping backwards cannot stall a kill.
    """

    def __init__(
        self, rate: Callable[[], float], clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ):
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()

    async def acquire(self) -> None:
        rate = min(max(self._rate(), 0.1), 50.0)
        limit = max(1, math.floor(rate))
        now = self._clock()
        wait = 0.0
        if self._sent:
            wait = self._sent[-1] + 1.0 / rate - now
        if len(self._sent) >= limit:
            wait = max(wait, self._sent[-limit] + 1.0 - now)
        slot = now
        if wait > 0:
            wait = min(wait, 1.0)
            slot = now + wait
            await self._sleep(wait + 1e-6)
        # the slot, not the (later) wake-up: a busy loop's sleep overshoot must not add up over a long
        # flatten and drag the rate below the configured one
        self._sent.append(slot)
        while len(self._sent) > limit:
            self._sent.popleft()
