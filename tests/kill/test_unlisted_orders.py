"""An order that vanishes from the open-orders answer without a terminal status may still fill.

Simulator fault `unlist`: reqAllOpenOrders leaves out an order in PendingCancel, which then fills.
The watchdog keeps it as possibly filling (`gateway.unlisted_orders`) until the gateway confirms it
(orderStatus, or executions for its whole quantity): closes are sized as if it fills, FLAT is not
declared while it is alive, and the escalation names it by id with "state unknown".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID
from tests.kill.conftest import BOT, bot_order_status, bot_sells_50_of_200, holdings, kill_switch
from watchdog.gateway.client import Gateway
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
DU1 = ACCOUNTS[0]


@pytest.mark.parametrize("quiet", [False, True], ids=["status pushed", "executions only"])
async def test_an_order_gone_from_the_open_orders_in_pending_cancel_is_never_taken_for_gone(
    sim: Simulator, gateway: Gateway, tmp_path: Path, quiet: bool
) -> None:
    bot_order = bot_sells_50_of_200(sim)
    sim.faults.cancel_pending(1, after=3.0, then="fill")
    sim.faults.unlist(("PendingCancel",), order=(BOT, bot_order), quiet=quiet)
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path, verify_timeout="0.5s", max_attempts=2)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    assert bot_order_status(sim, bot_order) == "PendingCancel"  # unlisted, alive: the kill must not say FLAT
    assert report.outcome is KillOutcome.ESCALATED, report.reason
    assert [o.order_id for o in report.remaining_orders] == [bot_order]
    assert "state unknown" in report.reason and str(bot_order) in report.reason
    sold = sum(e.shares for e in sim.executions() if e.client_id == CLIENT_ID)
    assert sold == 150.0  # sized as if the vanished order fills
    await sim.wait_until(lambda: bot_order_status(sim, bot_order) == "Filled", 10)
    assert holdings(sim) == {}, f"never short: {holdings(sim)}"
    # the gateway's word (orderStatus Filled, or the executions) ends it; the book is empty again. A
    # round trip after the fill is a barrier: the simulator sent its pushes before this answer
    await asyncio.wait_for(gateway.poll_executions(), 5)
    assert await asyncio.wait_for(gateway.open_orders(), 5) == []


async def test_an_unlisted_order_that_is_listed_again_is_read_as_listed(
    sim: Simulator, gateway: Gateway
) -> None:
    bot_order = bot_sells_50_of_200(sim)
    await gateway.open_orders()  # seen Submitted
    sim.faults.unlist(("Submitted",), order=(BOT, bot_order))
    [gone] = await asyncio.wait_for(gateway.open_orders(), 5)
    assert (gone.order_id, gone.unlisted) == (bot_order, True)
    assert "state unknown" in gone.state_label
    sim.faults.clear()
    [back] = await asyncio.wait_for(gateway.open_orders(), 5)
    assert (back.order_id, back.unlisted, back.state_label) == (bot_order, False, "Submitted")
