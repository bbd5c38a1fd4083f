"""`gateway.unlisted_orders`: what ends an order that vanished from the open-orders answer (pure)."""

from __future__ import annotations

from watchdog.gateway.unlisted_orders import KEEP, UnlistedOrders, status_key
from watchdog.model import ContractRef, OpenOrder, order_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


AAPL = ContractRef(con_id=1, symbol="AAPL", sec_type="STK")
ORDER = OpenOrder(
    order_id=4, perm_id=77, client_id=7, account="DU1", contract=AAPL,
    action="SELL", total_quantity=50, remaining=50, status="PendingCancel",
)  # fmt: skip


def vanished(clock: Clock) -> UnlistedOrders:
    orders = UnlistedOrders(clock)
    assert orders.merge([ORDER], {order_key(ORDER)}, lambda o: 0.0) == [ORDER]
    [gone] = orders.merge([], set(), lambda o: 0.0)  # missing from the next answer: still counted
    assert gone.unlisted and gone.order_id == 4 and gone.is_working
    return orders


def test_a_terminal_status_from_the_gateway_ends_it() -> None:
    clock = Clock()
    orders = vanished(clock)
    orders.heard(status_key(7, 4, 77), "PendingCancel")
    assert len(orders.merge([], set(), lambda o: 0.0)) == 1  # a non-terminal word changes nothing
    orders.heard(status_key(7, 4, 77), "Cancelled")
    assert orders.merge([], set(), lambda o: 0.0) == []


def test_executions_for_its_whole_quantity_end_it_a_part_does_not() -> None:
    clock = Clock()
    orders = vanished(clock)
    assert len(orders.merge([], set(), lambda o: 20.0)) == 1
    assert orders.merge([], set(), lambda o: 50.0) == []


def test_without_any_word_it_is_dropped_only_after_the_bound() -> None:
    clock = Clock()
    orders = vanished(clock)
    clock.now += KEEP - 1
    assert len(orders.merge([], set(), lambda o: 0.0)) == 1
    clock.now += 2
    assert orders.merge([], set(), lambda o: 0.0) == []
