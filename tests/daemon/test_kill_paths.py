"""A rule breach through the daemon in dry run (nothing on the wire) and with notifications going to
real local HTTP endpoints, one of which hangs."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import order_messages
from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture, hanging_port  # noqa: F401  (fixtures)
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

ORDER_MESSAGES = {3, 4, 58}  # placeOrder, cancelOrder, reqGlobalCancel


async def _breach(d: Daemon, sim: Simulator) -> None:
    """Daily P&L of DU111111 below the default rule's -2,500: one poll cycle starts the kill."""
    first = await asyncio.wait_for(d.poll_once(), 10)
    assert first.breaches == ()
    sim.set_pnl("DU111111", daily=-2600.0)
    await asyncio.wait_for(d.poll("pnl"), 5)
    result = await asyncio.wait_for(d.poll_once(), 10)
    assert result.kills_started == ("daily-loss",)


async def test_dry_run_plans_and_reports_a_kill_but_sends_no_order_message(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    positions = sorted((p.account, p.con_id, p.quantity) for p in sim.positions())
    orders = sorted((o.client_id, o.order_id) for o in sim.open_orders())
    d = await make_daemon(kill="dry_run: true")

    await _breach(d, sim)
    [report] = await d.wait_for_kills(timeout=30)

    assert report.outcome is KillOutcome.DRY_RUN
    assert report.action is Action.CLOSE_ALL and report.dry_run
    assert {c.account for c in report.close_orders} == {"DU111111"}  # planned: the rule's account
    assert len(report.close_orders) == 3
    sent = set(order_messages(sim)) & ORDER_MESSAGES
    assert sent == set(), f"order messages on the wire in dry run: {sent}"
    assert sorted((p.account, p.con_id, p.quantity) for p in sim.positions()) == positions
    assert sorted((o.client_id, o.order_id) for o in sim.open_orders()) == orders
    reg = d.c.metrics.registry
    assert reg.get_sample_value("ibkr_watchdog_kill_outcomes_total", {"outcome": "dry_run"}) == 1
    audit = d.c.audit.read()
    assert [r.details["sent"] for r in audit if r.event == "close.order"] == [False] * 3


async def test_breach_and_kill_report_reach_a_local_endpoint_while_another_one_hangs(
    sim: Simulator,
    capture: Capture,  # noqa: F811
    hanging_port: int,  # noqa: F811
    make_daemon: DaemonFactory,
) -> None:
    timeout = 3.0
    d = await make_daemon(
        extra=f"""
notifications:
  timeout: {timeout:g}s
  targets:
    - url: json://127.0.0.1:{hanging_port}/pager
    - url: json://127.0.0.1:{capture.port}/chat
"""
    )
    t0 = time.monotonic()  # the start-up message is now hanging on the pager target
    sim.set_session("regular")

    await _breach(d, sim)
    [report] = await d.wait_for_kills(timeout=30)
    assert report.outcome is KillOutcome.FLAT, report.reason
    killed = time.monotonic() - t0

    await until(
        lambda: any("[KILL DONE]" in str(b.get("title", "")) for b in capture.snapshot()), 5, "the report"
    )
    arrived = time.monotonic() - t0
    bodies = capture.snapshot()
    text = [f"{b.get('title', '')}\n{b.get('message', '')}" for b in bodies]
    breach = [t for t in text if "daily-loss" in t and "DU111111" in t and "[KILL DONE]" not in t]
    kill = [t for t in text if "[KILL DONE]" in t]
    assert breach, text
    assert "close_all" in kill[0] and "DU111111" in kill[0] and "rule:daily-loss" in kill[0]
    # neither the kill nor the chat message waited for the pager, which had not even timed out yet
    assert killed < timeout and arrived < timeout, (killed, arrived)
    reg = d.c.metrics.registry
    failures = sum(
        reg.get_sample_value("ibkr_watchdog_notification_failures_total", {"severity": s}) or 0.0
        for s in ("info", "warning", "critical")
    )
    assert failures == 0
