"""Conformance: the real ib_async 2.1 client against the simulator over loopback TCP."""

from __future__ import annotations

import asyncio
import time

import pytest
from ib_async import IB, Forex, Future, LimitOrder, MarketOrder, Option, Stock, StopOrder

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
            await second.connectAsync(sim.host, sim.port, clientId=5, timeout=1)
    finally:
        second.disconnect()
    assert 326 in errors
    assert sim.connected_clients() == [5]


async def test_it_reports_account_summary_values(sim: Simulator, connect: Connect) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    sim.set_account_value(ACCOUNT, "MaintMarginReq", 50_000.0)
    ib = await connect(5)
    rows = await asyncio.wait_for(ib.accountSummaryAsync(ACCOUNT), 2)
    values = {r.tag: (r.value, r.currency) for r in rows}
    assert values["NetLiquidation"] == ("1019000.00", "USD")
    assert values["MaintMarginReq"] == ("50000.00", "USD")
    assert values["ExcessLiquidity"] == ("969000.00", "USD")
    assert values["GrossPositionValue"] == ("19000.00", "USD")
    assert values["PreviousDayEquityWithLoanValue"] == ("1019000.00", "USD")
    assert values["AccountType"] == ("INDIVIDUAL", "")
    assert float(values["Cushion"][0]) == pytest.approx(969000 / 1019000, abs=1e-4)


async def test_it_streams_pnl_and_pushes_overrides_at_once(sim: Simulator, connect: Connect) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    ib = await connect(5)
    pnl = ib.reqPnL(ACCOUNT)
    await sim.wait_until(lambda: pnl.unrealizedPnL == 1000.0, 2)
    sim.set_price("AAPL", 185.0)
    await sim.wait_until(lambda: pnl.dailyPnL == -500.0, 0.5)
    assert pnl.unrealizedPnL == 500.0
    sim.set_pnl(ACCOUNT, daily=-2600.0)
    await sim.wait_until(lambda: pnl.dailyPnL == -2600.0, 0.5)
    single = ib.reqPnLSingle(ACCOUNT, "", 265598)
    await sim.wait_until(lambda: single.position == 100 and single.value == 18500.0, 2)
    assert single.unrealizedPnL == 500.0


async def test_it_reports_executions_with_commissions_to_a_new_connection(
    sim: Simulator, connect: Connect
) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    sim.place_order_as(7, ACCOUNT, "AAPL", "SELL", 40, "MKT", order_ref="bot-exit")
    ib = await connect(7)
    # connect() itself asks reqExecutions; the commission reports attach to ib.fills().
    assert [f.execution.execId for f in await asyncio.wait_for(ib.reqExecutionsAsync(), 2)] == [
        e.exec_id for e in sim.executions()
    ]
    [f] = ib.fills()
    assert (f.execution.side, f.execution.shares, f.execution.price) == ("SLD", 40.0, 190.0)
    assert f.execution.orderRef == "bot-exit" and f.execution.clientId == 7
    assert f.commissionReport.commission == 1.0
    assert f.commissionReport.realizedPNL == pytest.approx(40 * 10 - 1.0)
    assert sim.positions(ACCOUNT)[0].quantity == 60


async def test_it_returns_contract_details_and_error_200_for_unknown(
    sim: Simulator, connect: Connect
) -> None:
    ib = await connect(5)
    [es] = await asyncio.wait_for(ib.reqContractDetailsAsync(Future("ES", exchange="CME")), 2)
    assert (es.contract.conId, es.contract.multiplier, es.contract.lastTradeDateOrContractMonth) == (
        495512563,
        "50",
        "20261218",
    )
    [opt] = await asyncio.wait_for(
        ib.reqContractDetailsAsync(Option("AAPL", "20261218", 200, "C", "SMART")), 2
    )
    assert opt.contract.conId == 700000001 and opt.contract.multiplier == "100" and opt.underConId == 265598
    [fx] = await asyncio.wait_for(ib.reqContractDetailsAsync(Forex("EURUSD")), 2)
    assert fx.contract.localSymbol == "EUR.USD" and fx.contract.exchange == "IDEALPRO"
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    assert await asyncio.wait_for(ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD")), 2) == []
    assert errors == [200]


async def test_it_cancels_orders_of_other_clients_and_client_zero_on_global_cancel(
    sim: Simulator, connect: Connect
) -> None:
    manual = sim.place_order_as(0, ACCOUNT, "AAPL", "SELL", 10, "LMT", 250.0)
    sim.place_order_as(7, ACCOUNT, "ES", "BUY", 1, "LMT", 5000.0)
    tws = await connect(0)
    bot = await connect(7)
    watchdog = await connect(5)
    own = watchdog.placeOrder(Stock("MSFT", "SMART", "USD"), LimitOrder("BUY", 1, 100.0, account=ACCOUNT))
    await sim.wait_until(lambda: len(sim.open_orders()) == 3, 2)
    watchdog.reqGlobalCancel()
    await sim.wait_until(lambda: sim.open_orders() == [], 2)
    await sim.wait_until(lambda: own.orderStatus.status == "Cancelled", 2)
    # Each owner hears about its own order; client 0 also sees every other client's order.
    await sim.wait_until(lambda: [t.orderStatus.status for t in bot.trades()] == ["Cancelled"], 2)
    await sim.wait_until(lambda: {t.order.permId for t in tws.trades() if t.orderStatus.status == "Cancelled"}
                         == {o.perm_id for o in sim.book.orders.values()}, 2)  # fmt: skip
    assert any(t.order.orderId == manual for t in tws.trades())
    await asyncio.wait_for(watchdog.reqAllOpenOrdersAsync(), 2)
    assert watchdog.openTrades() == []


async def test_it_rejects_an_order_without_a_routable_exchange_with_321(
    sim: Simulator, connect: Connect
) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    ib = await connect(5)
    [pos] = ib.positions()
    errors: list[tuple[int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append((code, msg))
    trade = ib.placeOrder(pos.contract, MarketOrder("SELL", 100, account=ACCOUNT))
    await sim.wait_until(lambda: bool(errors), 2)
    assert errors[0][0] == 321 and "Missing order exchange" in errors[0][1]
    assert trade.orderStatus.status == "ValidationError"
    assert sim.positions(ACCOUNT)[0].quantity == 100


async def test_it_enforces_sessions_for_stock_orders(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    aapl = Stock("AAPL", "SMART", "USD")
    sim.set_session("extended")
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    mkt = ib.placeOrder(aapl, MarketOrder("BUY", 1, account=ACCOUNT))
    await sim.wait_until(lambda: errors == [201], 2)
    assert mkt.orderStatus.status == "Cancelled"
    rth_only = ib.placeOrder(aapl, LimitOrder("BUY", 1, 195.0, account=ACCOUNT))
    outside = ib.placeOrder(aapl, LimitOrder("BUY", 2, 195.0, account=ACCOUNT, outsideRth=True))
    await sim.wait_until(lambda: outside.orderStatus.status == "Filled", 2)
    assert rth_only.orderStatus.status == "PreSubmitted"
    sim.set_session("regular")
    await sim.wait_until(lambda: rth_only.orderStatus.status == "Filled", 2)
    assert sim.positions(ACCOUNT)[0].quantity == 3


async def test_it_fills_a_resting_limit_and_triggers_a_stop_on_price_moves(
    sim: Simulator, connect: Connect
) -> None:
    ib = await connect(5)
    es = Future("ES", "20261218", "CME")
    lmt = ib.placeOrder(es, LimitOrder("BUY", 1, 5150.0, account=ACCOUNT))
    stp = ib.placeOrder(es, StopOrder("SELL", 1, 5120.0, account=ACCOUNT))
    await sim.wait_until(lambda: lmt.orderStatus.status == "Submitted", 2)
    assert stp.orderStatus.status == "PreSubmitted"
    sim.set_price("ES", 5150.0)
    await sim.wait_until(lambda: lmt.orderStatus.status == "Filled", 2)
    sim.set_price("ES", 5110.0)
    await sim.wait_until(lambda: stp.orderStatus.status == "Filled", 2)
    assert stp.orderStatus.avgFillPrice == 5110.0
    assert sim.positions(ACCOUNT) == []
    daily, unrealized, realized = sim.pnl(ACCOUNT)
    assert realized == pytest.approx((5110 - 5150) * 50 - 2 * 2.25)
    assert daily == pytest.approx(realized) and unrealized == 0.0


async def test_it_fills_in_parts_after_a_delay(sim: Simulator, connect: Connect) -> None:
    sim.fill.partial_fills, sim.fill.fill_delay = 2, 0.05
    ib = await connect(5)
    trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 10, account=ACCOUNT))
    await sim.wait_until(lambda: trade.orderStatus.status == "Filled", 2)
    assert [f.execution.shares for f in trade.fills] == [5.0, 5.0]
    assert [f.execution.cumQty for f in trade.fills] == [5.0, 10.0]


async def test_a_single_account_gets_account_updates_and_portfolio() -> None:
    async with Simulator.running(accounts=(ACCOUNT,)) as sim:
        sim.set_position(ACCOUNT, "ES", 2, avg_cost=5100 * 50)
        ib = IB()
        try:
            await ib.connectAsync(sim.host, sim.port, clientId=5, timeout=2)
            assert 6 in [f.msg_id for f in sim.received(5)]
            values = {v.tag: v.value for v in ib.accountValues() if v.currency in ("USD", "")}
            assert values["NetLiquidation"] == "1010000.00"
            [item] = ib.portfolio()
            assert (item.position, item.marketPrice, item.averageCost, item.unrealizedPNL) == (
                2,
                5200,
                255000,
                10000,
            )
            sim.set_price("ES", 5000.0)
            await sim.wait_until(lambda: ib.portfolio()[0].unrealizedPNL == -10000.0, 2)
            # An order without an account is fine with a single managed account.
            trade = ib.placeOrder(Future("ES", "20261218", "CME"), MarketOrder("SELL", 2))
            await sim.wait_until(lambda: trade.orderStatus.status == "Filled", 2)
            await sim.wait_until(lambda: ib.portfolio() == [] and ib.positions() == [], 2)
        finally:
            ib.disconnect()


async def test_the_master_client_sees_other_clients_orders_live() -> None:
    async with Simulator.running(accounts=(ACCOUNT,), master_client_id=42) as sim:
        master, plain = IB(), IB()
        try:
            await master.connectAsync(sim.host, sim.port, clientId=42, timeout=2)
            await plain.connectAsync(sim.host, sim.port, clientId=5, timeout=2)
            sim.place_order_as(7, ACCOUNT, "AAPL", "BUY", 1, "LMT", 100.0)
            await sim.wait_until(lambda: [t.order.clientId for t in master.openTrades()] == [7], 2)
            assert plain.openTrades() == []
        finally:
            master.disconnect()
            plain.disconnect()


async def test_cancelling_another_clients_order_gets_10147(sim: Simulator, connect: Connect) -> None:
    foreign = sim.place_order_as(7, ACCOUNT, "AAPL", "BUY", 1, "LMT", 100.0)
    ib = await connect(5)
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code))
    ib.client.cancelOrder(foreign)
    await sim.wait_until(lambda: errors == [(foreign, 10147)], 2)
    assert [o.order_id for o in sim.open_orders()] == [foreign]


async def test_a_held_stock_market_order_waits_for_the_open(sim: Simulator, connect: Connect) -> None:
    sim.fill.stock_mkt_outside_rth = "hold"
    sim.set_session("extended")
    ib = await connect(5)
    errors: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
    trade = ib.placeOrder(
        Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 3, account=ACCOUNT, outsideRth=True)
    )
    await sim.wait_until(lambda: errors == [2109] and trade.orderStatus.status == "PreSubmitted", 2)
    sim.set_session("regular")
    await sim.wait_until(lambda: trade.orderStatus.status == "Filled", 2)
