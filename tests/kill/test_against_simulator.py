"""The kill switch with the real Gateway (real ib_async, loopback TCP) against the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID
from tests.kill.conftest import con_id, holdings, kill_switch, net_fills_by_watchdog
from watchdog.gateway.client import Gateway
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.sim import Simulator
from watchdog.state.audit import read_audit

pytestmark = pytest.mark.integration
DU1, DU2 = ACCOUNTS
GLOBAL_CANCEL, PLACE_ORDER, CANCEL_ORDER = 58, 3, 4


def seed_book(sim: Simulator) -> None:
    """Stock, future and option in one account, stock and future in the other, orders of 3 clients + TWS."""
    for symbol in ("AAPL", "ES", "AAPL  261218C00200000", "SPY", "MES"):
        sim.set_price(symbol, sim.price(symbol))
    sim.set_position(DU1, "AAPL", 200, avg_cost=182.5)
    sim.set_position(DU1, "ES", 2, avg_cost=259_000.0)
    sim.set_position(DU1, "AAPL  261218C00200000", 10, avg_cost=1_150.0)
    sim.set_position(DU2, "SPY", 50, avg_cost=510.0)
    sim.set_position(DU2, "MES", -3, avg_cost=26_100.0)
    sim.place_order_as(client_id=0, account=DU1, symbol="AAPL", action="SELL", quantity=50, lmt_price=250.0)
    sim.place_order_as(client_id=7, account=DU1, symbol="ES", action="BUY", quantity=1, lmt_price=4_000.0)
    sim.place_order_as(client_id=12, account=DU2, symbol="SPY", action="SELL", quantity=50, lmt_price=900.0)
    sim.place_order_as(client_id=21, account=DU2, symbol="MSFT", action="BUY", quantity=5, lmt_price=1.0)


async def test_cancel_all_removes_orders_of_three_clients_and_tws_and_retries_an_ignored_cancel(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    seed_book(sim)
    assert {o.client_id for o in sim.open_orders()} == {0, 7, 12, 21}
    sim.faults.ignore_cancel(1)  # the first cancel of the global cancel is silently dropped
    ks = kill_switch(gateway, tmp_path)

    report = await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "test"), 20)

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert sim.open_orders() == []
    assert report.attempts >= 2  # verification caught the straggler and the retry removed it
    sent = [f.msg_id for f in sim.received(CLIENT_ID) if f.msg_id in (GLOBAL_CANCEL, PLACE_ORDER)]
    assert sent.count(GLOBAL_CANCEL) >= 2
    assert PLACE_ORDER not in sent  # cancel-only never trades
    assert len(holdings(sim)) == 5  # cancel-only: every position is still there
    assert ks.store.trading_state() is TradingState.TRIPPED
    events = [r.event for r in read_audit(ks.store.audit_path)]
    assert events.index("kill.triggered") < events.index("kill.finished")


async def test_close_all_flattens_stock_future_and_option_across_two_accounts_without_overshoot(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    seed_book(sim)
    sim.set_session("regular")
    gateway.market_hours = lambda sec_type, now: True
    start = holdings(sim)
    await asyncio.wait_for(gateway.poll_positions(), 5)  # warms the contract-details cache like the daemon
    ks = kill_switch(gateway, tmp_path)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert [p for p in sim.positions() if p.quantity] == []
    assert sim.open_orders() == []
    # the watchdog's own fills are exactly the opposite of what was held: nothing crossed zero
    assert net_fills_by_watchdog(sim) == {k: -q for k, q in start.items()}
    placed = [f.fields for f in sim.received(CLIENT_ID) if f.msg_id == PLACE_ORDER]
    assert len(placed) == len(start)
    routes = {int(fields[2]): fields[9] for fields in placed}  # conId → exchange, by placeOrder index
    assert routes[con_id(sim, "AAPL")] == "SMART"
    assert routes[con_id(sim, "AAPL  261218C00200000")] == "SMART"
    assert routes[con_id(sim, "ES")] == "CME"  # futures go to their listing exchange
    assert routes[con_id(sim, "MES")] == "CME"
    assert {fields[18] for fields in placed} == {"MKT"}


async def test_outside_regular_hours_it_closes_with_collared_limits_marked_outside_rth(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    sim.set_position(DU1, "AAPL", 100, avg_cost=180.0)
    sim.set_price("AAPL", 200.0)
    sim.set_session("extended")
    gateway.market_hours = lambda sec_type, now: False
    await asyncio.wait_for(gateway.poll_positions(), 5)
    ks = kill_switch(gateway, tmp_path, collar="1%")

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test", accounts=[DU1]), 30)

    assert report.outcome is KillOutcome.FLAT, report.reason
    placed = [f.fields for f in sim.received(CLIENT_ID) if f.msg_id == PLACE_ORDER]
    assert len(placed) == 1
    order_type, limit, outside_rth = placed[0][18], float(placed[0][19]), placed[0][33]
    assert (order_type, limit, outside_rth) == ("LMT", 198.0, "1")
    assert [p for p in sim.positions(DU1) if p.quantity] == []


async def test_a_rejected_order_and_partial_fills_still_end_flat_without_overshoot(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    sim.set_position(DU1, "AAPL", 300, avg_cost=180.0)
    sim.set_position(DU2, "SPY", -40, avg_cost=510.0)
    sim.set_session("regular")
    sim.fill.partial_fills = 3  # each closing order fills in three pieces
    sim.faults.reject_next(1, code=201)  # the first closing order is rejected
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert [p for p in sim.positions() if p.quantity] == []
    assert net_fills_by_watchdog(sim) == {(DU1, con_id(sim, "AAPL")): -300.0, (DU2, con_id(sim, "SPY")): 40.0}


async def test_a_connection_dropped_mid_kill_goes_pending_then_finishes_flat(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    sim.set_position(DU1, "AAPL", 100, avg_cost=180.0)
    sim.set_session("regular")
    sim.fill.fill_delay = 1.0  # the closing order is still working when the socket drops
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path)

    kill = asyncio.ensure_future(ks.kill(Action.CLOSE_ALL, "test"))
    await sim.wait_until(lambda: any(o.client_id == CLIENT_ID for o in sim.open_orders()), 5)
    await sim.faults.drop(CLIENT_ID)
    first = await asyncio.wait_for(kill, 20)
    assert first.outcome is KillOutcome.PENDING
    assert ks.store.pending_kill() is not None

    await asyncio.wait_for(gateway.ensure_connected(), 5)
    assert gateway.is_connected()
    second = await asyncio.wait_for(ks.run_pending(), 30)

    assert second is not None
    assert second.outcome is KillOutcome.FLAT, second.reason
    assert ks.store.pending_kill() is None
    assert [p for p in sim.positions(DU1) if p.quantity] == []
    assert net_fills_by_watchdog(sim) == {
        (DU1, con_id(sim, "AAPL")): -100.0
    }  # the order working at the drop was netted


async def test_dry_run_sends_no_order_message(sim: Simulator, gateway: Gateway, tmp_path: Path) -> None:
    seed_book(sim)
    gateway.market_hours = lambda sec_type, now: True
    await asyncio.wait_for(gateway.poll_positions(), 5)
    ks = kill_switch(gateway, tmp_path, dry_run=True)
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 20)
    assert report.outcome is KillOutcome.DRY_RUN
    assert len(report.close_orders) == 5  # planned: one per (account, contract)
    sent = {f.msg_id for f in sim.received(CLIENT_ID)}
    assert sent.isdisjoint({PLACE_ORDER, CANCEL_ORDER, GLOBAL_CANCEL})
    assert len(sim.open_orders()) == 4
    assert ks.store.trading_state() is TradingState.ARMED  # a rehearsal never latches the real state
