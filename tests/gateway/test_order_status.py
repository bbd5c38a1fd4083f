"""The order status the gateway reports is the one that counts, not the one ib_async writes itself."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway.conftest import ACCOUNTS, Harness, eventually
from watchdog.model import CloseOrderRequest, ContractRef
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_an_order_ib_async_marks_cancelled_after_an_error_stays_live_while_the_gateway_lists_it(
    sim: Simulator, harness: Harness
) -> None:
    sim.set_price("AAPL", 200.0)
    sim.set_position(ACCOUNTS[0], "AAPL", 100, avg_price=180.0)
    sim.set_session("closed")  # the limit rests
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    aapl = sim.instrument("AAPL")
    request = CloseOrderRequest(
        account=ACCOUNTS[0],
        contract=ContractRef(con_id=aapl.con_id, symbol="AAPL", sec_type="STK"),
        action="SELL",
        quantity=100,
        order_type="LMT",
        limit_price=150.0,
        order_ref="ibkr-watchdog:t",
    )
    oid = await g.place_close_order(request)
    await eventually(lambda: len(sim.open_orders()) == 1)
    sim.faults.cancel_pending(1, after=30.0)  # the destination never confirms the cancel
    await g.cancel_order(oid)
    await eventually(lambda: sim.open_orders()[0].status == "PendingCancel")
    await g.cancel_order(oid)  # answered with error 161: ib_async marks its Trade Cancelled locally
    await eventually(lambda: any(code == 161 for code, _ in [g.order_error(oid) or (0, "")]))

    orders = await asyncio.wait_for(g.open_orders(), 5)

    assert [(o.order_id, o.status, o.is_working) for o in orders] == [(oid, "PendingCancel", True)]


async def test_a_held_order_reports_why_it_is_held(sim: Simulator, harness: Harness) -> None:
    sim.set_position(ACCOUNTS[0], "AAPL", 100, avg_price=180.0)
    sim.fill.stock_mkt_outside_rth = "hold"
    sim.set_session("closed")
    sim.place_order_as(0, ACCOUNTS[0], "AAPL", "SELL", 100, order_type="MKT")
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)

    orders = await asyncio.wait_for(g.open_orders(), 5)

    assert [(o.status, o.why_held, o.is_working) for o in orders] == [("PreSubmitted", "trading hours", True)]
    assert orders[0].state_label == "PreSubmitted, held: trading hours"
