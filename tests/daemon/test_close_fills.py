"""Closing fills through the running daemon: on the kill page, and in the audit when they arrive late."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from watchdog.commands.kill_report import report_command
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator
from watchdog.sim.book import Execution

pytestmark = pytest.mark.integration
WATCHDOG = 99
DU2 = "DU222222"  # SPY long 50, MES short 3 in the demo book
LATE = 2.0  # seconds the execDetails and commission reports trail their fills


def ours(sim: Simulator) -> dict[str, Execution]:
    return {e.exec_id: e for e in sim.executions() if e.client_id == WATCHDOG}


async def test_the_kill_page_lists_each_closing_order_with_its_fills(
    sim: Simulator,
    capture: Capture,  # noqa: F811
    make_daemon: DaemonFactory,
) -> None:
    d = await make_daemon(
        extra=f"notifications:\n  targets:\n    - url: json://127.0.0.1:{capture.port}/chat\n"
    )

    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fills on the page", accounts=[DU2])
    [report] = await d.wait_for_kills(timeout=20)

    assert report.outcome is KillOutcome.FLAT, report.reason
    truth = ours(sim)
    assert len(truth) == 2
    await until(lambda: any("[KILL DONE]" in str(b.get("title")) for b in capture.snapshot()), 5, "the page")
    [page] = [str(b.get("message")) for b in capture.snapshot() if "[KILL DONE]" in str(b.get("title"))]
    assert "Closing fills (2):" in page, page
    for e in truth.values():
        label = e.inst.local_symbol or e.inst.symbol
        line = f"  - order {e.order_id}: {DU2} {e.side} {e.shares:g} of {e.shares:g} {label} @ "
        assert line in page, page


async def test_executions_heard_after_the_kill_ended_flat_still_reach_its_audit_and_report(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    d = await make_daemon()
    sim.faults.late_executions(LATE)  # orderStatus Filled and the positions first, the executions later

    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="late executions", accounts=[DU2])
    [report] = await d.wait_for_kills(timeout=20)

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert {p.account for p in sim.positions() if p.quantity} == {"DU111111"}  # DU222222 is flat
    truth = ours(sim)
    assert len(truth) == 2
    assert report.close_fills == ()  # the kill ended before any execution was heard

    def audited() -> dict[str, dict[str, object]]:
        records = [r for r in d.c.audit.read() if r.event == "close.fill"]
        assert {r.kill_id for r in records} <= {report.kill_id}
        return {str(r.details["exec_id"]): dict(r.details) for r in records}

    await until(
        lambda: set(audited()) == set(truth) and all(v["commission"] is not None for v in audited().values()),
        LATE + 5,
        "the late executions and their commissions in the audit",
    )
    for exec_id, fill in audited().items():
        e = truth[exec_id]
        assert (fill["order_id"], fill["shares"], fill["price"]) == (e.order_id, e.shares, e.price)
        assert fill["commission"] == e.commission
    out = io.StringIO()
    await asyncio.to_thread(report_command, Path(d.config.state_dir), report.kill_id, out=out)
    text = out.getvalue()
    for e in truth.values():
        assert f"exec {e.exec_id}, commission {e.commission:g} USD (heard after the outcome)" in text, text
        assert f"filled {e.shares:g} of {e.shares:g}, avg " in text, text
