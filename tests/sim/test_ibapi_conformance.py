"""Conformance: IB's own `ibapi` client (EClient/EWrapper, reader thread) against the simulator."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.wrapper import EWrapper

from tests.sim.conftest import ACCOUNT
from watchdog.sim import Simulator

pytestmark = pytest.mark.conformance


class App(EWrapper, EClient):  # type: ignore[misc]
    """Puts every callback we care about into one queue as (name, args)."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.events: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()

    def _put(self, name: str, *args: Any) -> None:
        self.events.put((name, args))

    def nextValidId(self, orderId: int) -> None:
        self._put("nextValidId", orderId)

    def managedAccounts(self, accountsList: str) -> None:
        self._put("managedAccounts", accountsList)

    def currentTime(self, time: int) -> None:
        self._put("currentTime", time)

    def error(
        self, reqId: int, errorTime: int, errorCode: int, errorString: str, advancedOrderRejectJson: str = ""
    ) -> None:
        self._put("error", reqId, errorCode, errorString)

    def position(self, account: str, contract: Contract, position: Decimal, avgCost: float) -> None:
        self._put("position", account, contract, position, avgCost)

    def positionEnd(self) -> None:
        self._put("positionEnd")

    def accountSummary(self, reqId: int, account: str, tag: str, value: str, currency: str) -> None:
        self._put("accountSummary", reqId, account, tag, value, currency)

    def accountSummaryEnd(self, reqId: int) -> None:
        self._put("accountSummaryEnd", reqId)

    def openOrder(self, orderId: int, contract: Contract, order: Order, orderState: Any) -> None:
        self._put("openOrder", orderId, contract, order, orderState.status)

    def orderStatus(self, orderId: int, status: str, filled: Decimal, remaining: Decimal, avgFillPrice: float,
                    permId: int, parentId: int, lastFillPrice: float, clientId: int, whyHeld: str,
                    mktCapPrice: float) -> None:  # fmt: skip
        self._put("orderStatus", orderId, status, filled, remaining, avgFillPrice, permId, clientId)

    def openOrderEnd(self) -> None:
        self._put("openOrderEnd")

    def execDetails(self, reqId: int, contract: Contract, execution: Any) -> None:
        self._put("execDetails", reqId, contract, execution)

    def execDetailsEnd(self, reqId: int) -> None:
        self._put("execDetailsEnd", reqId)

    def commissionAndFeesReport(self, commissionAndFeesReport: Any) -> None:
        self._put("commission", commissionAndFeesReport)

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:
        self._put("contractDetails", reqId, contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:
        self._put("contractDetailsEnd", reqId)

    def pnl(self, reqId: int, dailyPnL: float, unrealizedPnL: float, realizedPnL: float) -> None:
        self._put("pnl", reqId, dailyPnL, unrealizedPnL, realizedPnL)

    def marketRule(self, marketRuleId: int, priceIncrements: list[Any]) -> None:
        self._put("marketRule", marketRuleId, [(p.lowEdge, p.increment) for p in priceIncrements])

    def marketDataType(self, reqId: int, marketDataType: int) -> None:
        self._put("marketDataType", reqId, marketDataType)

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:
        self._put("tickPrice", reqId, tickType, price)

    def tickString(self, reqId: int, tickType: int, value: str) -> None:
        self._put("tickString", reqId, tickType, value)

    def tickSnapshotEnd(self, reqId: int) -> None:
        self._put("tickSnapshotEnd", reqId)


async def next_event(app: App, *names: str, within: float = 3.0) -> tuple[str, tuple[Any, ...]]:
    """The next event with one of `names` (others are skipped), read off the queue in a thread."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"no {names} within {within}s")
        try:
            name, args = await asyncio.to_thread(app.events.get, True, min(remaining, 0.5))
        except queue.Empty:
            continue
        if name in names:
            return name, args


async def collect_until(app: App, end: str, *names: str) -> list[tuple[str, tuple[Any, ...]]]:
    out = []
    while True:
        ev = await next_event(app, end, *names)
        if ev[0] == end:
            return out
        out.append(ev)


@pytest.fixture
async def app(sim: Simulator) -> AsyncIterator[App]:
    a = App()
    threads_before = set(threading.enumerate())
    await asyncio.wait_for(asyncio.to_thread(a.connect, sim.host, sim.port, 9), 5)
    runner = threading.Thread(target=a.run, name="ibapi-run", daemon=True)
    runner.start()
    try:
        yield a
    finally:
        a.disconnect()
        await asyncio.to_thread(runner.join, 5)
        for t in set(threading.enumerate()) - threads_before:
            if t.name.startswith("asyncio_"):
                continue  # the default executor used by to_thread
            await asyncio.to_thread(t.join, 5)
        assert not runner.is_alive()


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


async def test_ibapi_connects_and_gets_accounts_and_next_id(sim: Simulator, app: App) -> None:
    _, (next_id,) = await next_event(app, "nextValidId")
    _, (accounts,) = await next_event(app, "managedAccounts")
    assert next_id == 1
    assert accounts == "DU111111,DU222222"
    assert app.serverVersion() == 178
    await sim.wait_until(lambda: sim.connected_clients() == [9], 2)


async def test_ibapi_gets_current_time(sim: Simulator, app: App) -> None:
    app.reqCurrentTime()
    _, (t,) = await next_event(app, "currentTime")
    assert abs(t - sim.clock()) < 5


async def test_ibapi_gets_positions_and_account_summary(sim: Simulator, app: App) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    sim.set_position(ACCOUNT, "ES", -1, avg_cost=5300 * 50)
    app.reqPositions()
    got = await collect_until(app, "positionEnd", "position")
    by_symbol = {args[1].symbol: args for _, args in got}
    assert by_symbol["AAPL"][0] == ACCOUNT
    assert by_symbol["AAPL"][2] == Decimal(100) and by_symbol["AAPL"][3] == 180.0
    assert by_symbol["AAPL"][1].exchange == "NASDAQ"  # primary exchange only: not routable
    es = by_symbol["ES"][1]
    assert (es.conId, es.secType, es.multiplier, es.lastTradeDateOrContractMonth) == (
        495512563,
        "FUT",
        "50",
        "20261218",
    )
    assert by_symbol["ES"][2] == Decimal(-1)
    app.reqAccountSummary(4, "All", "NetLiquidation,TotalCashValue,MaintMarginReq,Cushion")
    rows = await collect_until(app, "accountSummaryEnd", "accountSummary")
    values = {(a[1], a[2]): (a[3], a[4]) for _, a in rows}
    # cash 1,000,000 + AAPL 100 x 190 + ES unrealized (5300 - 5200) x 1 x 50
    assert values[(ACCOUNT, "NetLiquidation")] == ("1024000.00", "USD")
    assert values[(ACCOUNT, "TotalCashValue")] == ("1000000.00", "USD")
    assert values[(ACCOUNT, "Cushion")][1] == ""
    assert {a for a, _ in values} == {"DU111111", "DU222222"}


async def test_ibapi_sees_open_orders_of_all_clients(sim: Simulator, app: App) -> None:
    manual = sim.place_order_as(0, ACCOUNT, "AAPL", "SELL", 10, "LMT", 250.0)
    sim.place_order_as(7, ACCOUNT, "ES", "SELL", 1, "STP", aux_price=5000.0)
    app.reqAllOpenOrders()
    got = await collect_until(app, "openOrderEnd", "openOrder")
    orders = {args[2].clientId: args for _, args in got}
    assert set(orders) == {0, 7}
    assert orders[0][0] == manual and orders[0][2].lmtPrice == 250.0 and orders[0][3] == "Submitted"
    assert (
        orders[7][2].orderType == "STP" and orders[7][2].auxPrice == 5000.0 and orders[7][3] == "PreSubmitted"
    )
    assert orders[7][1].symbol == "ES" and orders[7][2].account == ACCOUNT


async def test_ibapi_market_order_fills_with_exec_details_and_commission(sim: Simulator, app: App) -> None:
    _, (oid,) = await next_event(app, "nextValidId")
    order = Order()
    order.action, order.orderType, order.totalQuantity = "BUY", "MKT", Decimal(20)
    order.account, order.orderRef, order.outsideRth = ACCOUNT, "ibapi-1", True
    app.placeOrder(oid, stock("MSFT"), order)
    _, (req_id, contract, execution) = await next_event(app, "execDetails")
    assert req_id == -1 and contract.symbol == "MSFT"
    assert (execution.side, execution.shares, execution.price, execution.orderRef) == (
        "BOT",
        Decimal(20),
        420.0,
        "ibapi-1",
    )
    _, status = await next_event(app, "orderStatus")
    assert status[1] == "Filled" and status[2] == Decimal(20) and status[4] == 420.0
    _, (report,) = await next_event(app, "commission")
    assert report.execId == execution.execId and report.commissionAndFees == 1.0 and report.currency == "USD"
    [frame] = [f for f in sim.received(9) if f.msg_id == 3]
    assert frame.fields[26] == "ibapi-1" and frame.fields[23] == ACCOUNT and frame.fields[33] == "1"
    app.reqExecutions(11, ExecutionFilter())
    execs = await collect_until(app, "execDetailsEnd", "execDetails")
    assert [(a[0], a[2].execId) for _, a in execs] == [(11, execution.execId)]


async def test_ibapi_gets_contract_details_and_error_200(sim: Simulator, app: App) -> None:
    c = Contract()
    c.conId, c.exchange = 495512563, "CME"
    app.reqContractDetails(21, c)
    [(_, (req_id, cd))] = await collect_until(app, "contractDetailsEnd", "contractDetails")
    assert req_id == 21
    assert (cd.contract.symbol, cd.contract.exchange, cd.contract.multiplier) == ("ES", "CME", "50")
    assert cd.minTick == 0.25 and cd.longName == "E-mini S&P 500"
    app.reqContractDetails(22, stock("NOPE"))
    _, (req_id, code, _msg) = await next_event(app, "error")
    while code != 200:
        _, (req_id, code, _msg) = await next_event(app, "error")
    assert req_id == 22


async def test_ibapi_streams_pnl(sim: Simulator, app: App) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    app.reqPnL(31, ACCOUNT, "")
    _, (req_id, daily, unrealized, realized) = await next_event(app, "pnl")
    assert (req_id, daily, unrealized, realized) == (31, 0.0, 1000.0, 0.0)
    sim.set_pnl(ACCOUNT, daily=-2600.0)
    _, (_, daily, _, _) = await next_event(app, "pnl")
    assert daily == -2600.0


async def test_ibapi_owner_cancels_its_limit_order(sim: Simulator, app: App) -> None:
    _, (oid,) = await next_event(app, "nextValidId")
    order = Order()
    order.action, order.orderType, order.totalQuantity, order.lmtPrice = "BUY", "LMT", Decimal(5), 150.0
    order.account = ACCOUNT
    app.placeOrder(oid, stock("AAPL"), order)
    _, status = await next_event(app, "orderStatus")
    while status[1] != "Submitted":
        _, status = await next_event(app, "orderStatus")
    app.cancelOrder(oid, OrderCancel())
    _, status = await next_event(app, "orderStatus")
    assert (status[0], status[1], status[3]) == (oid, "Cancelled", Decimal(5))
    _, (req_id, code, _msg) = await next_event(app, "error")
    while code != 202:
        _, (req_id, code, _msg) = await next_event(app, "error")
    assert req_id == oid and sim.open_orders() == []


async def test_ibapi_global_cancel_cancels_other_clients_and_client_zero(sim: Simulator, app: App) -> None:
    sim.place_order_as(0, ACCOUNT, "AAPL", "SELL", 10, "LMT", 250.0)
    sim.place_order_as(7, "DU222222", "SPY", "SELL", 5, "LMT", 600.0)
    app.reqGlobalCancel(OrderCancel())
    await sim.wait_until(lambda: sim.open_orders() == [], 2)
    app.reqAllOpenOrders()
    assert await collect_until(app, "openOrderEnd", "openOrder") == []
    assert sorted(o.status for o in sim.book.orders.values()) == ["Cancelled", "Cancelled"]


async def test_ibapi_duplicate_client_id_gets_326_and_is_closed(sim: Simulator, app: App) -> None:
    await next_event(app, "managedAccounts")
    dup = App()
    await asyncio.wait_for(asyncio.to_thread(dup.connect, sim.host, sim.port, 9), 5)
    runner = threading.Thread(target=dup.run, name="ibapi-dup", daemon=True)
    runner.start()
    try:
        _, (_req, code, _msg) = await next_event(dup, "error")
        assert code == 326
        await asyncio.to_thread(runner.join, 5)
        assert not dup.isConnected() and not runner.is_alive()
        assert sim.connected_clients() == [9]
    finally:
        dup.disconnect()
        await asyncio.to_thread(runner.join, 5)


async def test_ibapi_gets_a_market_rule_and_the_contracts_own_hours(sim: Simulator, app: App) -> None:
    app.reqMarketRule(32)
    _, (rule_id, increments) = await next_event(app, "marketRule")
    assert (rule_id, increments) == (32, [(0.0, 0.05), (3.0, 0.1)])
    sim.rules.publish_hours = True
    c = Contract()
    c.conId = 700000101  # SAP on XETRA
    app.reqContractDetails(31, c)
    [(_, (_req, cd))] = await collect_until(app, "contractDetailsEnd", "contractDetails")
    assert cd.timeZoneId == "MET" and cd.marketRuleIds.split(",")[0] == "1650"
    assert "CLOSED" in cd.tradingHours or ":0800-" in cd.tradingHours
    assert ":0900-" in cd.liquidHours and ":1730" in cd.liquidHours


async def test_ibapi_gets_a_delayed_snapshot_with_its_trade_time(sim: Simulator, app: App) -> None:
    sim.rules.market_data = "delayed"
    sim.set_price("AAPL", 170.0)
    app.reqMarketDataType(3)
    app.reqMktData(41, stock("AAPL"), "", True, False, [])
    events = await collect_until(app, "tickSnapshotEnd", "tickPrice", "tickString", "marketDataType")
    assert ("marketDataType", (41, 3)) in events
    prices = {args[1]: args[2] for name, args in events if name == "tickPrice"}
    assert prices == {66: 170.0, 67: 170.0, 68: 170.0}  # delayed bid, ask, last
    [stamp] = [int(args[2]) for name, args in events if name == "tickString" and args[1] == 88]
    assert sim.clock() - stamp >= 899
