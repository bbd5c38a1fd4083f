"""Order life-cycles the gateway really produces (simulator, real ib_async): late fills, held orders.

An order is possibly filling until the gateway confirms it terminal (Filled, Cancelled, ApiCancelled).
Closes are sized for the worst outcome of every live order, FLAT waits for all of them, and an
escalation hands over a book with none of the watchdog's own orders left working.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID
from tests.kill.conftest import BOT, bot_order_status, bot_sells_50_of_200, con_id, holdings, kill_switch
from watchdog.gateway.client import Gateway
from watchdog.kill.run import KillEvent, KillEventKind
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator
from watchdog.state.audit import read_audit

pytestmark = pytest.mark.integration
DU1 = ACCOUNTS[0]


@pytest.mark.parametrize("fills_after", [0.8, 2.5])
async def test_a_late_fill_of_an_order_in_pending_cancel_never_takes_the_account_short(
    sim: Simulator, gateway: Gateway, tmp_path: Path, fills_after: float
) -> None:
    bot_order = bot_sells_50_of_200(sim)
    sim.faults.cancel_pending(1, after=fills_after, then="fill")  # the global cancel is not final
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path, verify_timeout="0.5s", max_attempts=2)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)
    if report.outcome is KillOutcome.FLAT:  # FLAT only once the bot's order is confirmed terminal
        assert bot_order_status(sim, bot_order) == "Filled"
    await sim.wait_until(lambda: bot_order_status(sim, bot_order) == "Filled", 10)

    assert holdings(sim) == {}, f"the account must end flat, not short: {holdings(sim)}"
    sold = sum(e.shares for e in sim.executions() if e.client_id == CLIENT_ID)
    assert sold == 150.0  # the close was sized as if the order in PendingCancel fills
    if fills_after > 2.0:  # still PendingCancel when the kill ran out of attempts
        assert report.outcome is KillOutcome.ESCALATED
        assert "PendingCancel" in report.reason
        assert [o.order_id for o in report.remaining_orders] == [bot_order]


async def test_an_order_in_pending_cancel_that_is_then_cancelled_is_closed_after_all(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    bot_sells_50_of_200(sim)
    sim.faults.cancel_pending(1, after=0.6, then="cancel")
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path, verify_timeout="0.5s", max_attempts=3)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert holdings(sim) == {} and sim.open_orders() == []
    sold = sum(e.shares for e in sim.executions() if e.client_id == CLIENT_ID)
    assert sold == 200.0


async def test_flat_is_never_declared_while_an_order_can_still_fill(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    # the bot's BUY on the long side cannot push past zero, but it can still fill: not FLAT
    sim.set_price("AAPL", 200.0)
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.set_session("regular")
    bot_order = sim.place_order_as(BOT, DU1, "AAPL", "BUY", 10, lmt_price=150.0)
    sim.faults.cancel_pending(10, after=30.0, then="cancel")  # stuck in PendingCancel for the test
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path, verify_timeout="0.3s", max_attempts=2)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    assert holdings(sim) == {}
    assert report.outcome is KillOutcome.ESCALATED
    assert [(o.order_id, o.status) for o in report.remaining_orders] == [(bot_order, "PendingCancel")]


async def test_escalation_cancels_the_held_closing_order_so_a_manual_sale_never_goes_short(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    # a holiday: the calendar says open, the exchange holds market orders until the next open
    sim.set_price("AAPL", 200.0)
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.fill.stock_mkt_outside_rth = "hold"
    sim.set_session("closed")
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path, verify_timeout="0.3s", max_attempts=2)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    assert report.outcome is KillOutcome.ESCALATED
    assert [o for o in sim.open_orders() if o.client_id == CLIENT_ID] == []  # handed over: none of ours
    assert report.remaining_orders == ()
    audit = [r for r in read_audit(ks.store.audit_path) if r.event == "kill.handoff"]
    assert audit and audit[-1].details["ours_still_alive"] == []
    assert "held" in str(audit[-1].details["cancelled"])  # its state was named: held for trading hours
    # `ibkr-watchdog report` prints each step as one readable line, never raw JSON (issue 14)
    from watchdog.commands.history import kills
    from watchdog.commands.kill_report import report_lines

    lines = report_lines(kills(read_audit(ks.store.audit_path))[-1])
    assert any("hand-off: " in ln and "held" in ln for ln in lines), lines
    assert not [ln for ln in lines if "{" in ln], lines
    # the operator sells by hand; at the open only that sale fills
    sim.place_order_as(0, DU1, "AAPL", "SELL", 100, order_type="MKT")
    sim.set_session("regular")
    await sim.wait_until(lambda: not holdings(sim), 5)
    assert holdings(sim) == {}
    assert sum(e.shares for e in sim.executions() if e.client_id == CLIENT_ID) == 0
    assert con_id(sim, "AAPL") > 0


@pytest.mark.parametrize("fills_after", [2.6, 3.8])
async def test_a_late_fill_during_the_last_cancel_pass_sends_the_kill_back_to_closing(
    sim: Simulator, gateway: Gateway, tmp_path: Path, fills_after: float
) -> None:
    # long 100; the bot's BUY 10 (away from zero) stays PendingCancel past the close, then fills while
    # the kill waits for it to go terminal: FLAT may only come from a position read taken after that
    sim.set_price("AAPL", 200.0)
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.set_session("regular")
    bot_order = sim.place_order_as(BOT, DU1, "AAPL", "BUY", 10, lmt_price=150.0)
    sim.faults.cancel_pending(1, after=fills_after, then="fill")
    gateway.market_hours = lambda sec_type, now: True
    ks = kill_switch(gateway, tmp_path, verify_timeout="1s", max_attempts=2)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    assert bot_order_status(sim, bot_order) == "Filled"
    assert report.outcome is KillOutcome.FLAT, report.reason
    assert holdings(sim) == {}, f"FLAT declared with the account holding {holdings(sim)}"
    assert sum(e.shares for e in sim.executions() if e.client_id == CLIENT_ID) == 110.0
    assert any(r.event == "close.reopened" for r in read_audit(ks.store.audit_path))
    # the lockout baseline comes from the same read: what the account really holds (nothing)
    assert all(q == 0 for q in ks.store.latch().baseline.values())


async def test_the_lockout_tells_the_operator_why_their_flatten_waits_for_our_pending_cancel(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    # escalated with our held close in PendingCancel (the hand-off cancel is not confirmed): the
    # operator's SELL 100 would over-close if ours still fills, so it is cancelled, and the notice says
    # exactly that, naming our order and when to enter it again
    sim.set_price("AAPL", 200.0)
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.fill.stock_mkt_outside_rth = "hold"
    sim.set_session("closed")
    gateway.market_hours = lambda sec_type, now: True
    events: list[KillEvent] = []
    ks = kill_switch(gateway, tmp_path, verify_timeout="0.3s", max_attempts=2, on_event=events.append)
    kill = asyncio.ensure_future(ks.kill(Action.CLOSE_ALL, "test"))
    await sim.wait_until(lambda: any(o.client_id == CLIENT_ID for o in sim.open_orders()), 10)
    sim.faults.cancel_pending(1, after=30.0, then="cancel")  # the hand-off's cancel stays unconfirmed
    report = await asyncio.wait_for(kill, 30)
    [ours] = report.remaining_orders
    assert (ours.client_id, ours.status) == (CLIENT_ID, "PendingCancel")

    sim.set_session("extended")
    manual = sim.place_order_as(0, DU1, "AAPL", "SELL", 100, lmt_price=230.0, outside_rth=True)
    view = (await gateway.open_orders(), await gateway.positions())
    assert await asyncio.wait_for(ks.enforce_lockout(*view), 10) == 1

    manual_order = sim.book.find_order(0, manual)
    assert manual_order is not None
    await sim.wait_until(lambda: manual_order.status == "Cancelled", 5)
    assert holdings(sim) == {(DU1, con_id(sim, "AAPL")): 100.0}  # nothing over-closed
    [notice] = [e.message for e in events if e.kind is KillEventKind.LOCKOUT]
    assert f"our order(s) #{ours.order_id} SELL 100" in notice and "PendingCancel" in notice
    assert f"re-enter it once #{ours.order_id} is confirmed cancelled" in notice
    [record] = [r for r in read_audit(ks.store.audit_path) if r.event == "lockout.detected"]
    assert "would over-close the position of 100" in record.details["why"][0]
