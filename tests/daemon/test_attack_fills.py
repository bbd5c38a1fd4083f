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
