"""Fault matrix, gateway rows: mute, freeze, drop, reset, daily restart, nightly reset, slow, pacing, skew."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import DaemonFactory, Row, until
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = [pytest.mark.fault, pytest.mark.integration]

CONNECTED = "ibkr_watchdog_gateway_connected"
PLACE_ORDER = 3


def flat(sim: Simulator) -> bool:
    return not any(p.quantity for p in sim.positions()) and not sim.open_orders()


async def kill_while_down_then_flat(d: Daemon, sim: Simulator) -> None:
    """A manual close-all while the gateway is down parks as pending and runs on the reconnect."""
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fault matrix")
    await until(lambda: d.c.store.pending_kill() is not None, 5, "the kill to go pending")
    assert Row.metric(d, "ibkr_watchdog_kill_pending") == 1.0


async def test_mute_is_declared_down_and_a_kill_waits_for_the_reconnect(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    sim.faults.mute()
    await until(lambda: Row.metric(d, CONNECTED) == 0.0, 5, "DOWN after the mute")
    await kill_while_down_then_flat(d, sim)
    sim.faults.unmute()
    await until(lambda: flat(sim) and d.c.store.pending_kill() is None, 15, "the pending kill to flatten")
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.pending", "cancel.global", "close.order", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_kill_pending") == 0.0
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    assert (Row.metric(d, "ibkr_watchdog_reconnects_total") or 0) >= 1
    Row.message(caplog, "heartbeat(s) unanswered although the socket looks connected")
    Row.message(caplog, "gateway unavailable")


async def test_freeze_is_declared_down_and_a_kill_waits_for_the_thaw(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    sim.faults.freeze()
    await until(lambda: Row.metric(d, CONNECTED) == 0.0, 5, "DOWN after the freeze")
    await kill_while_down_then_flat(d, sim)
    sim.faults.unfreeze()
    await until(lambda: flat(sim) and d.c.store.pending_kill() is None, 15, "the pending kill to flatten")
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.pending", "close.order", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    assert Row.metric(d, CONNECTED) == 1.0
    Row.message(caplog, "heartbeat(s) unanswered")


async def test_drop_in_the_middle_of_a_close_all_never_over_closes(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fill.fill_delay = 0.4  # closing orders rest a moment: the drop lands while they work
    d = await make_daemon()
    task = d.start_kill(Action.CLOSE_ALL, "manual:test", reason="drop mid-kill")
    await until(lambda: any(f.msg_id == PLACE_ORDER for f in sim.received(99)), 10, "a closing order")
    assert await sim.faults.drop(99) == 1
    await asyncio.wait_for(task, 15)
    await until(lambda: flat(sim) and d.c.store.pending_kill() is None, 20, "the resumed kill to flatten")
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "close.order", "kill.finished"])
    assert (Row.metric(d, "ibkr_watchdog_reconnects_total") or 0) >= 1
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    Row.message(caplog, "the gateway closed the connection")


async def test_reset_goes_down_reconnects_and_a_breach_still_flattens(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    assert await sim.faults.drop(99, reset=True) == 1
    await until(lambda: (Row.metric(d, "ibkr_watchdog_reconnects_total") or 0) >= 1, 10, "the reconnect")
    sim.set_pnl("DU111111", daily=-2600.0)
    await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    assert d.kill_reports[0].outcome is KillOutcome.FLAT
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "close.order", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_kill_outcomes_total", {"outcome": "flat"}) == 1.0
    Row.message(caplog, "the gateway closed the connection")
    Row.message(caplog, "rule daily-loss breach")


async def test_daily_restart_parks_the_kill_and_runs_it_when_the_gateway_listens_again(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    await sim.faults.daily_restart(refuse_for=1.5)
    await until(lambda: Row.metric(d, CONNECTED) == 0.0, 5, "DOWN after the restart")
    await kill_while_down_then_flat(d, sim)
    await until(lambda: flat(sim) and d.c.store.pending_kill() is None, 20, "the pending kill to flatten")
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.pending", "close.order", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_kill_pending") == 0.0
    assert Row.metric(d, CONNECTED) == 1.0
    Row.message(caplog, "gateway unavailable")


async def test_nightly_reset_is_degraded_and_stale_pnl_fires_nothing(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    await sim.faults.nightly_reset(duration=1.5)
    health = "ibkr_watchdog_gateway_health"
    await until(lambda: Row.metric(d, health, {"state": "degraded"}) == 1.0, 5, "DEGRADED")
    sim.set_pnl("DU111111", daily=-2600.0)  # silenced: the watchdog must not see it during the reset
    await sim.faults.wait_idle(5)
    await until(lambda: Row.metric(d, health, {"state": "healthy"}) == 1.0, 5, "HEALTHY after 1102")
    assert not d.kill_reports or d.kill_reports[0].trigger.startswith("rule:")
    row.no_over_close()
    Row.audit(d, [], absent=["kill.pending"])
    Row.message(caplog, "Connectivity between IB and Trader Workstation has been lost")


async def test_slow_replies_slow_the_kill_but_it_still_verifies_flat(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    rules = """
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: close_all
  - name: slow-heartbeat
    when: "heartbeat_rtt > 100ms"
    consecutive: 2
    action: alert
    severity: warning
"""
    d = await make_daemon(rules=rules, heartbeat_timeout=0.5, kill="verify_timeout: 3s")
    sim.faults.delay(None, 0.15)  # every answer 150 ms late: under the timeouts, over the alert
    await until(
        lambda: (
            Row.metric(d, "ibkr_watchdog_rule_breached", {"rule": "slow-heartbeat", "account": "all"}) == 1.0
        ),
        10,
        "the slow-heartbeat alert",
    )
    task = d.start_kill(Action.CLOSE_ALL, "manual:test", reason="slow gateway")
    report = await asyncio.wait_for(task, 30)
    assert report is not None and report.outcome is KillOutcome.FLAT, report
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "close.verify", "kill.finished"])
    Row.message(caplog, "rule slow-heartbeat breach")


async def test_a_pacing_limit_slows_the_watchdog_instead_of_disconnecting_it(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    # below the kill's own 40 msg/s: the gateway must hold messages back (+PACEAPI), which also holds
    # back heartbeat answers, so the watchdog may declare the link down and resume the kill after it
    sim.faults.pacing(limit_per_second=20)
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="pacing")
    await until(lambda: flat(sim) and d.c.store.pending_kill() is None and not d.kill_in_progress, 30, "flat")
    row.no_over_close()
    assert d.c.gateway.error_counts.get(100, 0) == 0  # +PACEAPI: queued by the gateway, not refused
    # a gateway that still answers 100 is counted and explained
    sim.faults.inject_error(100, "Max rate of messages per second has been exceeded:max=20 rec=21")
    await until(lambda: Row.metric(d, "ibkr_watchdog_gateway_errors_total", {"code": "100"}) == 1.0, 5, "100")
    Row.audit(d, ["kill.triggered", "close.order", "kill.finished"])
    Row.message(caplog, "Max rate of messages per second has been exceeded")


async def test_clock_skew_shows_in_the_metric_and_does_not_stop_a_kill(
    sim: Simulator, make_daemon: DaemonFactory, row: Row
) -> None:
    d = await make_daemon()
    sim.faults.clock_skew(120.0)
    await until(
        lambda: abs((Row.metric(d, "ibkr_watchdog_gateway_clock_skew_seconds") or 0) - 120) < 2, 5, "skew"
    )
    sim.set_pnl("DU222222", daily=-2600.0)
    await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    assert d.kill_reports[0].outcome is KillOutcome.FLAT
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.finished"])


async def test_clock_skew_is_explained_in_the_log(
    sim: Simulator, make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    sim.faults.clock_skew(120.0)
    await until(
        lambda: abs((Row.metric(d, "ibkr_watchdog_gateway_clock_skew_seconds") or 0) - 120) < 2, 5, "skew"
    )
    Row.message(caplog, "skew")
