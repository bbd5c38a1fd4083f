"""Conformance: the real ib_async 2.1 client against the simulator over loopback TCP."""

from __future__ import annotations

import asyncio
import time

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock

from tests.sim.conftest import ACCOUNT, Connect
from watchdog.sim import Simulator

pytestmark = pytest.mark.conformance


async def test_it_connects_in_milliseconds_with_accounts_and_next_id(
    sim: Simulator, connect: Connect
) -> None:
    start = time.monotonic()
    ib = await connect(5)
    assert time.monotonic() - start < 2.0
    assert ib.isConnected()
    assert ib.managedAccounts() == ["DU111111", "DU222222"]
    assert ib.client.serverVersion() == 178
    assert sim.connected_clients() == [5]
    sent = [f.msg_id for f in sim.received(5)]
    # Two managed accounts: ib_async skips reqAccountUpdates (6) and asks reqAccountUpdatesMulti per account.
    assert set(sent) >= {71, 61, 5, 99, 76, 7}
    assert sent.count(76) == 2


async def test_it_answers_current_time(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    t = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
    assert abs(t.timestamp() - time.time()) < 5


async def test_it_reports_positions_pnl_and_open_orders_of_other_clients(
    sim: Simulator, connect: Connect
) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    sim.set_position(ACCOUNT, "ES", 2, avg_cost=5100 * 50)
    sim.place_order_as(0, ACCOUNT, "AAPL", "SELL", 10, "LMT", 250.0)
    sim.place_order_as(7, ACCOUNT, "MSFT", "BUY", 5, "LMT", 300.0)
    ib = await connect(5)
    positions = {p.contract.symbol: p for p in ib.positions()}
    assert positions["AAPL"].position == 100 and positions["AAPL"].avgCost == 180.0
    assert positions["AAPL"].contract.conId == 265598
    assert positions["ES"].avgCost == 255000.0 and positions["ES"].contract.multiplier == "50"
    await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), 2)
    trades = {(t.order.clientId, t.contract.symbol): t for t in ib.openTrades()}
    assert set(trades) == {(0, "AAPL"), (7, "MSFT")}
    assert trades[(0, "AAPL")].order.lmtPrice == 250.0
    assert trades[(7, "MSFT")].orderStatus.status == "Submitted"
    pnl = ib.reqPnL(ACCOUNT)
    await sim.wait_until(lambda: pnl.unrealizedPnL == 11000.0, 2)
    assert pnl.dailyPnL == 0.0


async def test_it_fills_a_market_order_with_commission(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    [cd] = await asyncio.wait_for(ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD")), 2)
    order = MarketOrder("BUY", 10, account=ACCOUNT, orderRef="t1")
    trade = ib.placeOrder(cd.contract, order)
    await asyncio.wait_for(trade.filledEvent, 2)
    await sim.wait_until(lambda: bool(trade.fills) and trade.fills[0].commissionReport.commission > 0, 2)
    assert trade.orderStatus.avgFillPrice == 190.0
    assert trade.fills[0].execution.orderRef == "t1"
    assert trade.fills[0].commissionReport.commission == 1.0
    assert sim.positions(ACCOUNT)[0].quantity == 10


async def test_it_cancels_a_limit_order_for_its_owner(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 100.0, account=ACCOUNT))
    await sim.wait_until(lambda: trade.orderStatus.status == "Submitted", 2)
    ib.cancelOrder(trade.order)
    await sim.wait_until(lambda: trade.orderStatus.status == "Cancelled", 2)
    assert sim.open_orders() == []


async def test_it_refuses_a_duplicate_client_id_with_326(sim: Simulator, connect: Connect) -> None:
    await connect(5)
    second = IB()
    errors: list[int] = []
    second.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    try:
        with pytest.raises((ConnectionError, TimeoutError)):
            await second.connectAsync(sim.host, sim.port, clientId=5, timeout=2)
    finally:
        second.disconnect()
    assert 326 in errors
    assert sim.connected_clients() == [5]
