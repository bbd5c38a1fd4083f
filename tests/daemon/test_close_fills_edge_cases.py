"""Attack review of issue 14 through the running daemon: can another client's executions get into a kill?"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonFactory
from watchdog.commands.kill_report import report_command
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
BOT = 7
DU1, DU2 = "DU111111", "DU222222"


async def test_a_bots_executions_with_our_order_ref_never_reach_a_kill(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    """A bot (client 7) tags its orders like ours: `ibkr-watchdog:<a real kill id>` and a crafted id
    with a newline and escape codes. Its executions are heard live (the watchdog is the master
    client) and by the executions poll; none is audited, and `report` of the real kill is unchanged."""
    d = await make_daemon()
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="spoof", accounts=[DU2])
    [report] = await d.wait_for_kills(timeout=20)
    assert report.outcome is KillOutcome.FLAT, report.reason
    state = Path(d.config.state_dir)
    before = io.StringIO()
    await asyncio.to_thread(report_command, state, report.kill_id, out=before)

    sim.set_price("AAPL", 190.0)
    refs = [f"ibkr-watchdog:{report.kill_id}", "ibkr-watchdog:\x1b[2J\nkill FAKE: flat\x07"]
    for ref in refs:
        sim.place_order_as(BOT, DU1, "AAPL", "SELL", 5, "MKT", order_ref=ref)
    bot_execs = {e.exec_id for e in sim.executions() if e.client_id == BOT}
    assert len(bot_execs) == 2
    await asyncio.wait_for(d.poll_once(), 10)  # the executions poll re-reads today's executions
    assert bot_execs <= {f.exec_id for f in d.c.gateway.snapshot().fills}

    fills = [r for r in d.c.audit.read() if r.event == "close.fill"]
    assert not bot_execs & {str(r.details["exec_id"]) for r in fills}
    assert {r.kill_id for r in fills} <= {report.kill_id}
    after = io.StringIO()
    await asyncio.to_thread(report_command, state, report.kill_id, out=after)
    assert after.getvalue() == before.getvalue()


async def test_fills_of_a_kill_that_went_pending_on_a_drop_and_resumed_are_all_under_it_once(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    """The socket drops with the closing orders working; they fill while the watchdog is away
    (ib_async forgets its fills at the reconnect); the kill resumes under the same id. Every
    execution of every closing order is in the audit under that id, and `report` lists each once."""
    d = await make_daemon()
    sim.fill.partial_fills = 2
    sim.fill.fill_delay = 0.5
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="drop", accounts=[DU2])
    await sim.wait_until(lambda: len([o for o in sim.open_orders() if o.client_id == 99]) == 2, 10)
    await sim.faults.drop(99)
    [first] = await d.wait_for_kills(timeout=20)
    assert first.outcome is KillOutcome.PENDING, first.reason
    await sim.wait_until(lambda: not [o for o in sim.open_orders() if o.client_id == 99], 10)
    async with asyncio.timeout(20):  # reconnect, then the pending kill runs
        while not [r for r in d.c.audit.read() if r.event == "kill.finished"]:
            await d.poll_once()
            await d.wait_for_kills(timeout=15)
    await asyncio.wait_for(d.poll_once(), 10)  # one more executions poll
    truth = {e.exec_id: e for e in sim.executions() if e.client_id == 99}
    assert len(truth) == 4
    fills = [r for r in d.c.audit.read() if r.event == "close.fill"]
    assert {r.kill_id for r in fills} == {first.kill_id}
    assert {str(r.details["exec_id"]) for r in fills} == set(truth)
    out = io.StringIO()
    await asyncio.to_thread(report_command, Path(d.config.state_dir), first.kill_id, out=out)
    text = out.getvalue()
    for exec_id in truth:
        assert text.count(f"exec {exec_id},") == 1, text
    for oid in {e.order_id for e in truth.values()}:
        assert text.count(f"closing order {oid}:") == 1, text
    assert text.count("filled 50 of 50") == 1 and text.count("filled 3 of 3") == 1, text
