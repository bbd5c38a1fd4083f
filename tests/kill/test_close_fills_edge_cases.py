"""Attack review of issue 14's closing fills (close.fill): what the fill bookkeeping must never change.

Real ib_async against the simulator. Each test is one way the change (or the fill bookkeeping it
builds on) was tried; a failing test is a defect found by the review.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID
from tests.kill.conftest import BOT, MakeSwitch, bot_order_status, holdings, kill_switch
from tests.kill.fakes import FakeBook, FakeBroker, stock
from watchdog.commands.kill_report import report_command
from watchdog.gateway.client import Gateway
from watchdog.kill.switch import KillEvent
from watchdog.model import Action, KillOutcome
from watchdog.outputs.messages import format_kill
from watchdog.sim import Simulator
from watchdog.state.audit import read_audit

pytestmark = pytest.mark.integration
DU1 = ACCOUNTS[0]


async def _bot_part_filled(sim: Simulator) -> int:
    """Long 200 AAPL; a bot's marketable SELL 100 LMT filled 50, the other 50 still working."""
    sim.set_price("AAPL", 200.0)
    sim.set_position(DU1, "AAPL", 200, avg_price=180.0)
    sim.set_session("regular")
    sim.fill.partial_fills = 2
    sim.fill.fill_delay = 0.05  # the first piece in 50 ms ...
    oid = sim.place_order_as(BOT, DU1, "AAPL", "SELL", 100, lmt_price=150.0)
    sim.fill.fill_delay = 600.0  # ... the second one is timed by then: never during the test
    await sim.wait_until(lambda: any(e.client_id == BOT for e in sim.executions()), 5)
    return oid


async def test_a_price_correction_of_a_part_fill_does_not_make_a_vanished_order_read_filled(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    """FLAT contract vs fill bookkeeping: IB corrects an execution (price only, `.01` → `.02`); an
    order gone from the open-orders answer in PendingCancel is 'confirmed filled by executions'
    when executions cover its quantity (`gateway.unlisted_orders`). `convert.executed` adds the
    correction to what it corrects: 50 filled + 50 (the same 50, re-priced) = 100 of 100, so the
    still-working order is dropped, the kill closes as if it never fills, says FLAT, and the
    order's late fill then over-closes the account (short)."""
    bot_order = await _bot_part_filled(sim)
    [first] = [e for e in sim.executions() if e.client_id == BOT]
    sim.correct_execution(first.exec_id, price=first.price + 0.01)  # a price correction, same shares
    sim.fill.fill_delay = 0.0  # our closing orders fill at once
    sim.faults.cancel_pending(1, after=3.0, then="fill", order=(BOT, bot_order))
    sim.faults.unlist(("PendingCancel",), order=(BOT, bot_order))
    gateway.market_hours = lambda sec_type, now: True
    await asyncio.wait_for(gateway.poll_executions(), 5)  # the correction is in ib_async's fills
    ks = kill_switch(gateway, tmp_path, verify_timeout="0.5s", max_attempts=2)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 30)

    alive = bot_order_status(sim, bot_order) == "PendingCancel"
    assert not (alive and report.outcome is KillOutcome.FLAT), (
        f"FLAT declared while bot order {bot_order} (50 of 100 filled) can still fill; "
        f"closing orders: {[(c.action, c.quantity) for c in report.close_orders]}"
    )
    await sim.wait_until(lambda: bot_order_status(sim, bot_order) == "Filled", 10)
    assert holdings(sim) == {}, f"never short: {holdings(sim)}"


async def test_a_closing_fill_correction_is_counted_once_on_the_page_and_in_report(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    """A correction of a closing fill heard after the kill ended: the audit gets it under the kill,
    and `report` shows the corrected price once (not 200 of 100)."""
    sim.set_price("AAPL", 200.0)
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.set_session("regular")
    gateway.market_hours = lambda sec_type, now: True
    await asyncio.wait_for(gateway.poll_positions(), 5)
    ks = kill_switch(gateway, tmp_path)
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 20)
    assert report.outcome is KillOutcome.FLAT, report.reason
    [ours] = [e for e in sim.executions() if e.client_id == CLIENT_ID]
    gateway.executions.on_execution = ks.note_execution
    new_id = sim.correct_execution(ours.exec_id, price=199.5)
    await asyncio.wait_for(gateway.poll_executions(), 5)  # a barrier: the push went before its answer

    records = [r for r in read_audit(ks.store.audit_path) if r.event == "close.fill"]
    assert {r.details["exec_id"] for r in records} == {ours.exec_id, new_id}
    assert {r.kill_id for r in records} == {report.kill_id}
    out = io.StringIO()
    assert report_command(ks.store.dir, report.kill_id, out=out) == 0
    text = out.getvalue()
    assert "filled 100 of 100, avg 199.5 (1 fill)" in text, text
    assert f"exec {ours.exec_id}" not in text, text


async def test_a_lockout_flatten_closes_with_fills_that_report_and_history_can_show(
    book: FakeBook,
    make_switch: MakeSwitch,
    events: list[KillEvent],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`kill.lockout_flatten`: while tripped, what grew is closed by the lockout (its own kill id,
    closing orders that trade, `close.fill` records). `kills()` starts a story only at
    `kill.triggered`, which a lockout run never writes: its closing orders and their fills are in
    the audit, yet neither `history` nor `report` (nor `report ID`) can show them."""
    book.add_position("DU1", stock(1), 100)
    ks = make_switch(lockout_flatten=True)
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), 30)
    book.positions[("DU1", 1)] = 130  # someone bought 30 more while tripped
    positions = await FakeBroker(book).positions()
    await asyncio.wait_for(ks.enforce_lockout([], positions), 30)
    assert book.nonzero() == {("DU1", 1): 100}
    records = read_audit(ks.store.audit_path)
    [fill] = [r for r in records if r.event == "close.fill"]
    lockout = fill.kill_id
    assert lockout is not None

    [page] = [format_kill(e.report) for e in events if e.report is not None and e.report.kill_id == lockout]
    assert f"report {lockout}" in page.body  # the page sends the operator to this command

    rc = report_command(ks.store.dir, lockout)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f"exec {fill.details['exec_id']}" in out and "filled 30 of 30" in out, out


async def test_an_escalation_with_a_part_filled_closing_order_pages_what_filled_of_what(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    """The closing order fills 50 of 100 and sticks: the escalation page and `report` say 50 of 100."""
    sim.set_price("AAPL", 200.0)
    sim.set_position(DU1, "AAPL", 100, avg_cost=180.0)
    sim.set_session("regular")
    sim.fill.partial_fills = 2
    sim.fill.fill_delay = 0.05
    gateway.market_hours = lambda sec_type, now: True
    await asyncio.wait_for(gateway.poll_positions(), 5)

    async def stick() -> None:
        await sim.wait_until(lambda: any(o.client_id == CLIENT_ID for o in sim.open_orders()), 5)
        sim.fill.fill_delay = 600.0  # the first piece is timed already; the second never comes

    ks = kill_switch(gateway, tmp_path, verify_timeout="0.5s", max_attempts=2)
    sticking = asyncio.ensure_future(stick())
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test", accounts=[DU1]), 30)
    await asyncio.wait_for(sticking, 5)

    assert report.outcome is KillOutcome.ESCALATED, report.reason
    [ours] = [e for e in sim.executions() if e.client_id == CLIENT_ID]
    assert ours.shares == 50
    page = format_kill(report).body
    assert f"order {ours.order_id}: {DU1} SLD 50 of 100 AAPL @ 200" in page, page
    out = io.StringIO()
    assert report_command(ks.store.dir, report.kill_id, out=out) == 0
    assert "filled 50 of 100, avg 200 (1 fill)" in out.getvalue(), out.getvalue()
