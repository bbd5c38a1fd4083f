"""Fault matrix, order life-cycle and pending-kill rows (issue 12): late fills, held closes, 1100/1102,
a pending kill that must not wait for the reconnect backoff."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import DaemonFactory, Row, until
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = [pytest.mark.fault, pytest.mark.integration]

CONNECTED = "ibkr_watchdog_gateway_connected"
DU1 = "DU111111"


def flat(sim: Simulator) -> bool:
    return not any(p.quantity for p in sim.positions()) and not sim.open_orders()


async def test_a_kill_parked_by_1100_runs_on_1102_without_a_reconnect(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    await sim.faults.nightly_reset(duration=3.5)  # 1100, account data silent, socket and heartbeats up
    await until(
        lambda: Row.metric(d, "ibkr_watchdog_gateway_health", {"state": "degraded"}) == 1.0, 5, "1100"
    )
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fault matrix")
    await until(lambda: any(r.outcome is KillOutcome.PENDING for r in d.kill_reports), 10, "the kill to park")
    assert Row.metric(d, "ibkr_watchdog_kill_pending") == 1.0

    await until(lambda: flat(sim) and d.c.store.pending_kill() is None, 10, "the kill to run after 1102")

    assert d.c.gateway.connect_attempts == 1  # the socket never dropped: 1102 alone resumed it
    assert d.kill_reports[-1].outcome is KillOutcome.FLAT
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.pending", "close.order", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_kill_pending") == 0.0
    Row.message(caplog, "gateway usable again", "1102")


async def test_a_pending_kill_reconnects_at_once_instead_of_after_the_backoff(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon(reconnect_initial=30.0, reconnect_max=60.0)  # a long backoff after the drop
    await sim.faults.daily_restart(refuse_for=1.0)
    await until(lambda: Row.metric(d, CONNECTED) == 0.0, 5, "DOWN after the restart")
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fault matrix")
    await until(lambda: d.c.store.pending_kill() is not None, 5, "the kill to go pending")

    # the backoff would next try 24-30 s from now; a pending kill retries every 0.25 s
    await until(lambda: flat(sim) and d.c.store.pending_kill() is None, 8, "the kill to run once listening")

    row.no_over_close()
    Row.audit(d, ["kill.pending", "close.order", "kill.finished"])
    assert Row.metric(d, CONNECTED) == 1.0
    Row.message(caplog, "gateway usable again", "reconnect")


async def test_a_late_fill_after_the_global_cancel_never_over_closes(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon(kill="verify_timeout: 1s\nmax_attempts: 2")
    long = {p.con_id: p.quantity for p in sim.positions(DU1) if p.symbol == "AAPL" and p.sec_type == "STK"}
    [(aapl, qty)] = long.items()
    assert qty > 50
    bot_order = sim.place_order_as(7, DU1, "AAPL", "SELL", 50, lmt_price=sim.price("AAPL") * 2)
    sim.faults.cancel_pending(1, after=2.0, then="fill", order=(7, bot_order))  # fills 2 s after the cancel

    report = await asyncio.wait_for(d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fault"), 30)
    assert report is not None
    await sim.wait_until(lambda: sim.book.find_order(7, bot_order).status == "Filled", 10)  # type: ignore[union-attr]

    assert not [p for p in sim.positions(DU1) if p.con_id == aapl and p.quantity]  # flat, not short 50
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "close.order"])
    Row.message(caplog, "still working", "PendingCancel")


async def test_an_escalation_leaves_no_closing_order_of_ours_behind(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fill.stock_mkt_outside_rth = "hold"  # a holiday: market orders held until the next open
    sim.set_session("closed")
    d = await make_daemon(kill="verify_timeout: 1s\nmax_attempts: 2")

    report = await asyncio.wait_for(d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fault"), 30)

    assert report is not None and report.outcome is KillOutcome.ESCALATED
    assert [o for o in sim.open_orders() if o.client_id == 99] == []
    Row.audit(d, ["kill.handoff", "kill.escalated"])
    # the person flattens AAPL by hand: the lockout leaves a risk-reducing order alone
    [aapl] = [p for p in sim.positions(DU1) if p.symbol == "AAPL" and p.sec_type == "STK"]
    manual = sim.place_order_as(0, DU1, "AAPL", "SELL", aapl.quantity, order_type="MKT")
    cycles: set[float] = set()

    def two_more_cycles() -> bool:
        if d.last_cycle is not None and d.last_cycle.at > placed_at:
            cycles.add(d.last_cycle.at)
        return len(cycles) >= 2

    placed_at = d.c.clock()
    await until(two_more_cycles, 5, "two evaluation cycles with the lockout on")
    assert any(o.order_id == manual and o.client_id == 0 for o in sim.open_orders())
    Row.audit(d, [], absent=["lockout.detected"])
    sim.set_session("regular")  # the open: only the person's sale fills, nothing of ours
    await sim.wait_until(
        lambda: not [p for p in sim.positions(DU1) if p.con_id == aapl.con_id and p.quantity], 5
    )
    assert [e for e in sim.executions() if e.client_id == 99] == []
    row.no_over_close()
    Row.message(caplog, "hand-off", "of ours cancelled")


async def test_a_kill_that_outlasts_scrapes_is_kill_running_never_kill_pending(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fill.fill_delay = 0.4  # the close takes several evaluation cycles (each sets the gauges)
    d = await make_daemon()
    task = d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fault matrix")
    samples: list[tuple[float | None, float | None]] = []

    def sample_until_done() -> bool:
        samples.append(
            (Row.metric(d, "ibkr_watchdog_kill_running"), Row.metric(d, "ibkr_watchdog_kill_pending"))
        )
        return task.done()

    await until(sample_until_done, 20, "the kill to end")

    assert (1.0, 0.0) in samples  # seen running
    assert all(pending == 0.0 for _, pending in samples), "kill_pending paged during a running kill"
    assert task.result() is not None and task.result().outcome is KillOutcome.FLAT  # type: ignore[union-attr]
    await until(lambda: Row.metric(d, "ibkr_watchdog_kill_running") == 0.0, 5, "kill_running back to 0")
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.finished"])
    Row.message(caplog, "flat")
