"""close_all: netting, order types and routing, partial fills, rejects, scoping, pacing, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import WATCHDOG_REF, FakeBook, future, option, stock
from watchdog.model import Action, CloseOrderRequest, ContractRef, KillOutcome, KillReport

T = 30.0  # seconds of real time allowed per kill; virtual time makes each take milliseconds


def placed(book: FakeBook, client_id: int | None = None) -> list[CloseOrderRequest]:
    return [m.detail for m in book.sent(client_id) if m.kind == "place_order"]  # type: ignore[misc]


async def close_all(ks_maker: MakeSwitch, **kw: object) -> KillReport:
    accounts = kw.pop("kill_accounts", None)
    ks = ks_maker(**kw)
    return await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test", accounts=accounts), T)  # type: ignore[arg-type]


async def test_it_closes_stock_future_and_option_across_two_accounts_with_market_orders(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), 100)
    book.add_position("DU1", future(), -2)
    book.add_position("DU2", option(), 5)
    book.add_position("DU2", stock(), -30)
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.FLAT
    assert book.nonzero() == {} and book.violations == []
    orders = {(r.account, r.contract.con_id): r for r in placed(book)}
    assert {k: (r.action, r.quantity, r.order_type, r.exchange) for k, r in orders.items()} == {
        ("DU1", 1): ("SELL", 100, "MKT", "SMART"),
        ("DU1", 2): ("BUY", 2, "MKT", "CME"),
        ("DU2", 3): ("SELL", 5, "MKT", "SMART"),
        ("DU2", 1): ("BUY", 30, "MKT", "SMART"),
    }
    assert all(r.order_ref.startswith(WATCHDOG_REF) and not r.outside_rth for r in orders.values())


async def test_outside_regular_hours_it_uses_limits_at_mark_plus_minus_collar_with_outside_rth(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.regular_hours = False
    book.add_position("DU1", stock(1), 100, mark=50.0)
    book.add_position("DU1", stock(2, "MSFT"), -10, mark=200.0)
    report = await close_all(make_switch, collar="2%")
    assert report.outcome is KillOutcome.FLAT
    got = {r.contract.con_id: (r.action, r.order_type, r.limit_price, r.outside_rth) for r in placed(book)}
    assert got == {1: ("SELL", "LMT", 49.0, True), 2: ("BUY", "LMT", 204.0, True)}


async def test_without_a_mark_outside_hours_it_escalates_and_never_guesses_a_price(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.regular_hours = False
    book.add_position("DU1", stock(1), 100, mark=None)
    book.add_position("DU1", stock(2, "MSFT"), 10, mark=20.0)
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.ESCALATED
    assert [p.contract.con_id for p in report.remaining_positions] == [1]
    assert "no usable mark price" in report.reason
    assert [r.contract.con_id for r in placed(book)] == [2]
    assert book.positions[("DU1", 1)] == 100


async def test_a_future_without_a_known_exchange_is_escalated_not_sent_with_an_empty_exchange(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", future(exchange=""), 3)
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.ESCALATED
    assert "no routable exchange" in report.reason
    assert placed(book) == []


async def test_a_security_type_it_does_not_close_is_escalated_at_once_with_close_it_by_hand(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", ContractRef(con_id=7, symbol="VFIAX", sec_type="FUND"), 12)
    book.add_position("DU1", stock(), 10)
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.ESCALATED
    assert "security type FUND of VFIAX is not closed through the API: close it by hand" in report.reason
    assert [r.contract.con_id for r in placed(book)] == [1]


async def test_partial_fills_end_flat_with_a_single_order(book: FakeBook, make_switch: MakeSwitch) -> None:
    book.add_position("DU1", stock(), 100)
    book.fill_chunk[1] = 30
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.FLAT
    assert [r.quantity for r in placed(book)] == [100]
    assert book.violations == []


async def test_an_unfilled_limit_is_repriced_by_cancel_and_replace_of_the_remaining_quantity(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.regular_hours = False
    book.add_position("DU1", stock(), 100, mark=100.0)
    book.fill_chunk[1] = 40
    first_fill = {"done": False}

    def market_moves(now: float) -> None:  # after the first partial fill the market runs away
        if not first_fill["done"] and book.positions[("DU1", 1)] < 100:
            first_fill["done"] = True
            book.marks[1] = 90.0

    book.clock.on_advance.append(market_moves)
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.FLAT, report.reason
    sells = placed(book)
    # the re-price uses the new price and a collar widened by collar_step (1% → 2%)
    assert [(r.quantity, r.limit_price) for r in sells] == [(100, 99.0), (60, 88.2)]
    assert any(m.kind == "cancel_order" for m in book.sent())
    assert book.violations == []


async def test_pending_closing_orders_are_netted_from_the_new_quantity(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), 100)
    # another instance's closing order that the global cancel did not reach yet
    book.add_order(
        98, "DU1", stock(), "SELL", 40, lmt_price=95.0, order_ref=f"{WATCHDOG_REF}:other", ignore_cancels=5
    )
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.FLAT
    assert [r.quantity for r in placed(book, 99)] == [60]
    assert book.violations == []


async def test_an_own_order_left_from_before_a_restart_is_netted_then_repriced(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), 100, mark=100.0)
    stale = book.add_order(
        99, "DU1", stock(), "SELL", 100, lmt_price=150.0, order_ref=f"{WATCHDOG_REF}:old", ignore_cancels=1
    )
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.FLAT
    assert stale.status == "Cancelled"
    assert [r.quantity for r in placed(book)] == [100]  # only after the stale one was gone
    assert book.violations == []


async def test_an_own_closing_order_on_the_wrong_side_is_cancelled_before_anything_is_placed(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), -50, mark=100.0)  # the position flipped since that order went out
    wrong = book.add_order(
        99, "DU1", stock(), "SELL", 30, lmt_price=150.0, order_ref=f"{WATCHDOG_REF}:old", ignore_cancels=1
    )
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.FLAT
    assert wrong.status == "Cancelled" and wrong.filled == 0
    assert [(r.action, r.quantity) for r in placed(book)] == [("BUY", 50)]


async def test_a_rejected_market_order_is_retried_as_a_limit(book: FakeBook, make_switch: MakeSwitch) -> None:
    book.add_position("DU1", stock(), 100, mark=10.0)
    book.refuse_market = True
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.FLAT
    assert [(r.order_type, r.limit_price) for r in placed(book)] == [("MKT", None), ("LMT", 9.9)]


async def test_a_retryable_reject_is_retried(book: FakeBook, make_switch: MakeSwitch) -> None:
    book.add_position("DU1", stock(), 100)
    book.reject_next[1] = [(201, "Order rejected - reason: try again"), (202, "cancelled")]
    report = await close_all(make_switch, max_attempts=3)
    assert report.outcome is KillOutcome.FLAT
    assert len(placed(book)) == 3 and book.violations == []


async def test_a_reject_that_cannot_be_fixed_escalates_with_its_reason(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), 100)
    book.reject_next[1] = [(200, "No security definition has been found")]
    report = await close_all(make_switch)
    assert report.outcome is KillOutcome.ESCALATED
    assert "200 No security definition" in report.reason
    assert len(placed(book)) == 1


async def test_a_kill_scoped_to_one_account_leaves_the_other_alone(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), 100)
    book.add_position("DU2", stock(), 100)
    report = await close_all(make_switch, kill_accounts=["DU2"])
    assert report.outcome is KillOutcome.FLAT
    assert book.nonzero() == {("DU1", 1): 100}
    assert {r.account for r in placed(book)} == {"DU2"}


async def test_order_messages_never_exceed_the_pacing_limit(book: FakeBook, make_switch: MakeSwitch) -> None:
    for i in range(120):
        book.add_position("DU1", stock(100 + i, f"S{i}"), 10)
    report = await close_all(make_switch, pacing=40)
    assert report.outcome is KillOutcome.FLAT
    times = [m.at for m in book.sent()]
    assert len(times) == 121  # one global cancel, 120 closing orders
    assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 40
    assert times[-1] - times[0] < 1.15 * 121 / 40


async def test_a_second_close_during_a_close_is_merged_and_a_close_after_a_cancel_runs_again(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), 100)
    book.fill_chunk[1] = 25
    ks = make_switch()
    first = asyncio.ensure_future(ks.kill(Action.CANCEL_ALL, "rule:a"))
    second = asyncio.ensure_future(ks.kill(Action.CLOSE_ALL, "rule:b"))
    third = asyncio.ensure_future(ks.kill(Action.CLOSE_ALL, "rule:c"))
    r1, r2, r3 = await asyncio.wait_for(asyncio.gather(first, second, third), T)
    assert r1.action is Action.CANCEL_ALL and r2.action is Action.CLOSE_ALL
    assert r3 is r2  # merged: never two overlapping close plans
    assert book.nonzero() == {} and [r.quantity for r in placed(book)] == [100]


@pytest.mark.parametrize("primary_alive", [True, False])
async def test_a_standby_instance_never_doubles_the_primary_and_closes_alone_after_its_grace(
    book: FakeBook, make_switch: MakeSwitch, primary_alive: bool, tmp_path: object
) -> None:
    from pathlib import Path

    from watchdog.state.audit import AuditLog
    from watchdog.state.store import StateStore

    book.add_position("DU1", stock(1), 100)
    book.add_position("DU1", stock(2, "MSFT"), -40)
    book.fill_chunk[1] = 10  # slow fills: the primary is still working when the standby looks
    other = StateStore(Path(str(tmp_path)) / "standby", book.clock)
    other.dir.mkdir()
    standby = make_switch(
        client_id=98,
        store_=other,
        audit_=AuditLog(other.audit_path, book.clock),
        standby=True,
        standby_grace="3s",
    )
    start = book.clock.now
    tasks = [standby.kill(Action.CLOSE_ALL, "rule:loss")]
    if primary_alive:
        tasks.append(make_switch(client_id=99).kill(Action.CLOSE_ALL, "rule:loss"))
    await asyncio.wait_for(asyncio.gather(*tasks), T)
    assert book.violations == [] and book.nonzero() == {}
    standby_orders = [m for m in book.sent(98) if m.kind == "place_order"]
    if primary_alive:
        assert standby_orders == []
    else:
        assert len(standby_orders) == 2 and min(m.at for m in standby_orders) >= start + 3.0
