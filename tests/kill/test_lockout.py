"""The lockout after a kill cancels new risk only: a person flattening by hand is left alone, and our own
closing orders are never lost to the lockout's global cancel."""

from __future__ import annotations

import asyncio

import pytest

from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import WATCHDOG_REF, FakeBook, FakeBroker, stock
from watchdog.kill.lockout import risk_reducing
from watchdog.kill.switch import KillSwitch
from watchdog.model import Action, OpenOrder, Position, TradingState, order_key

T = 30.0
MANUAL = 0  # client 0: an order typed in TWS


async def tripped_with_100_long(book: FakeBook, make_switch: MakeSwitch) -> KillSwitch:
    """A cancel-only kill: the position stays, the watchdog is TRIPPED with the lockout on."""
    book.add_position("DU1", stock(), 100)
    ks = make_switch()
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), T)
    assert ks.store.trading_state() is TradingState.TRIPPED
    book.messages.clear()
    return ks


async def book_view(book: FakeBook) -> tuple[list[OpenOrder], list[Position]]:
    broker = FakeBroker(book)
    return await broker.open_orders(), await broker.positions()


async def test_a_manual_order_that_only_reduces_the_position_is_left_alone(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    ks = await tripped_with_100_long(book, make_switch)
    book.add_order(MANUAL, "DU1", stock(), "SELL", 100, order_type="MKT", lmt_price=None)

    assert await asyncio.wait_for(ks.enforce_lockout(*await book_view(book)), T) == 0

    assert book.messages == []  # no global cancel: the person may flatten by hand


@pytest.mark.parametrize(("side", "qty"), [("BUY", 10), ("SELL", 150)])
async def test_an_order_that_adds_risk_or_would_cross_zero_is_cancelled(
    book: FakeBook, make_switch: MakeSwitch, side: str, qty: float
) -> None:
    ks = await tripped_with_100_long(book, make_switch)
    book.add_order(MANUAL, "DU1", stock(), side, qty)

    assert await asyncio.wait_for(ks.enforce_lockout(*await book_view(book)), T) == 1

    assert [m.kind for m in book.messages] == ["global_cancel"]


def test_reducing_orders_are_counted_together_with_our_closes_earliest_first() -> None:
    c = stock()
    pos = [Position(account="DU1", contract=c, quantity=100)]

    def order(oid: int, side: str, qty: float, client: int = MANUAL, ref: str = "") -> OpenOrder:
        return OpenOrder(
            order_id=oid, perm_id=oid, client_id=client, account="DU1", contract=c, action=side,
            total_quantity=qty, remaining=qty, status="Submitted", order_ref=ref,
        )  # fmt: skip

    ours = [order(1, "SELL", 30, client=99, ref=WATCHDOG_REF)]
    a, b, d = order(2, "SELL", 50), order(3, "SELL", 30), order(4, "SELL", 20)
    kept = risk_reducing([d, b, a], pos, ours)
    assert kept == {order_key(a), order_key(d)}  # 30 + 50 + 20 = 100; b (30 more) would cross zero


async def test_our_closing_orders_taken_by_the_lockouts_global_cancel_are_placed_again(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    ks = await tripped_with_100_long(book, make_switch)
    ours = book.add_order(99, "DU1", stock(), "SELL", 40, lmt_price=500.0, order_ref=f"{WATCHDOG_REF}:k")
    book.add_order(MANUAL, "DU1", stock(), "BUY", 5)  # new risk: only a global cancel reaches it

    assert await asyncio.wait_for(ks.enforce_lockout(*await book_view(book)), T) == 1

    assert ours.status == "Cancelled"
    placed = [m.detail for m in book.messages if m.kind == "place_order"]
    assert [(r.action, r.quantity) for r in placed] == [("SELL", 40.0)]  # type: ignore[attr-defined]


async def test_the_lockout_page_names_each_risk_reducing_order_its_global_cancel_removed(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    """Issue 14: "3 risk-reducing order(s)… enter them again" said neither which orders nor which accounts."""
    from watchdog.state.audit import read_audit

    ks = await tripped_with_100_long(book, make_switch)
    book.add_order(MANUAL, "DU1", stock(), "SELL", 50)  # the person's reducing order
    book.add_order(MANUAL, "DU1", stock(), "BUY", 10)  # new risk: the lockout's global cancel takes both

    assert await asyncio.wait_for(ks.enforce_lockout(*await book_view(book)), T) == 1

    [detected] = [r for r in read_audit(ks.store.audit_path) if r.event == "lockout.detected"]
    message = str(detected.details["message"])
    assert "1 risk-reducing order(s) of DU1" in message, message
    assert "enter them again: DU1 SELL 50" in message and "(client 0, order" in message, message
