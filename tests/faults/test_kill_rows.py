"""Fault matrix, kill rows: rejects, partial fills, ignored cancels, blackhole, kill -9, two instances."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import pytest

from tests.faults.conftest import DaemonFactory, Row, until
from tests.faults.proxy import Mode, TcpProxy
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = [pytest.mark.fault, pytest.mark.integration]

PLACE_ORDER = 3


def flat(sim: Simulator) -> bool:
    return not any(p.quantity for p in sim.positions()) and not sim.open_orders()


async def close_all(d: Daemon, timeout: float = 30) -> KillOutcome:
    report = await asyncio.wait_for(d.start_kill(Action.CLOSE_ALL, "manual:test", reason="fault"), timeout)
    assert report is not None
    return report.outcome


async def test_a_rejected_closing_order_is_retried_until_flat(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    sim.faults.reject_next(1, code=201, message="Order rejected - reason:Simulated margin check")
    assert await close_all(d) is KillOutcome.FLAT
    assert flat(sim)
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "close.rejected", "close.order", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_kill_outcomes_total", {"outcome": "flat"}) == 1.0
    Row.message(caplog, "rejected", "201")


async def test_partial_fills_are_netted_and_never_over_closed(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fill.partial_fills = 3
    sim.fill.fill_delay = 0.15  # each chunk 150 ms apart: verification sees half-filled orders
    d = await make_daemon()
    assert await close_all(d) is KillOutcome.FLAT
    assert flat(sim)
    row.no_over_close()
    assert len({e.exec_id for e in sim.executions() if e.client_id == 99}) >= 3 * len(row.start)
    Row.audit(d, ["kill.triggered", "close.order", "close.verify", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_close_orders_total") == float(len(row.start))
    Row.message(caplog, "position(s) still open")


async def test_an_ignored_cancel_is_cancelled_again(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    working = len(sim.open_orders())
    sim.faults.ignore_cancel(1)
    assert await close_all(d) is KillOutcome.FLAT
    assert flat(sim)
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "cancel.global", "cancel.retry", "kill.finished"])
    assert (Row.metric(d, "ibkr_watchdog_orders_cancelled_total") or 0) >= working
    Row.message(caplog, "still working; cancelling again")


@pytest.fixture
async def proxy(sim: Simulator) -> AsyncIterator[TcpProxy]:
    p = await TcpProxy(sim.port).start()
    try:
        yield p
    finally:
        await asyncio.wait_for(p.stop(), 5)


async def test_a_blackholed_route_is_declared_down_and_the_kill_runs_when_it_is_back(
    sim: Simulator, proxy: TcpProxy, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon(port=proxy.port)
    proxy.mode = Mode.BLACKHOLE  # no FIN, no RST: only the heartbeat can tell
    await until(lambda: Row.metric(d, "ibkr_watchdog_gateway_connected") == 0.0, 5, "DOWN")
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="blackhole")
    await until(lambda: d.c.store.pending_kill() is not None, 5, "the kill to go pending")
    assert Row.metric(d, "ibkr_watchdog_kill_pending") == 1.0
    await proxy.reset_all()  # the route comes back: old sockets are gone, new ones pass
    proxy.mode = Mode.PASS
    await until(lambda: flat(sim) and d.c.store.pending_kill() is None, 20, "the pending kill to flatten")
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.pending", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_kill_pending") == 0.0
    Row.message(caplog, "heartbeat(s) unanswered although the socket looks connected")


def abandon(d: Daemon) -> None:
    """What `kill -9` leaves: no stop(), tasks gone, socket dropped, pid lock released by the kernel."""
    d.c.scheduler.shutdown(wait=False)
    d.c.timers.remove_all()  # the periodic jobs (heartbeat, polls) die with the process
    for task in list(d.kills.tasks):
        task.cancel()
    ib = d.c.gateway._ib
    if ib is not None and ib.client.conn.transport is not None:
        ib.client.conn.transport.abort()
    if d.c.store._pid_fd is not None:
        os.close(d.c.store._pid_fd)
        d.c.store._pid_fd = None


async def test_kill_9_in_the_middle_of_a_close_all_resumes_on_restart_without_over_closing(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fill.fill_delay = 0.5  # the first closing orders are still working when the process dies
    first = await make_daemon(name="a")
    first.start_kill(Action.CLOSE_ALL, "manual:test", reason="kill -9 test")
    await until(lambda: any(f.msg_id == PLACE_ORDER for f in sim.received(99)), 10, "a closing order")
    abandon(first)
    await until(lambda: 99 not in sim.connected_clients(), 5, "the dead client's socket to close")
    kill_id = first.c.store.pending_kill()
    assert kill_id is not None  # persisted before the first order went out
    second = await make_daemon(name="b", state_dir=first.c.store.dir)
    await until(lambda: flat(sim) and second.c.store.pending_kill() is None, 20, "the resumed kill")
    row.no_over_close()
    events = Row.audit(second, ["kill.triggered", "close.order", "kill.finished"])
    assert events.count("kill.triggered") >= 1
    finished = [r for r in second.c.audit.read() if r.event == "kill.finished"]
    assert finished and finished[-1].kill_id == kill_id.kill_id  # the same kill, finished by the restart
    assert Row.metric(second, "ibkr_watchdog_tripped") == 1.0
    Row.message(caplog, f"kill {kill_id.kill_id} flat")


async def test_two_instances_firing_at_once_never_over_close(
    sim: Simulator, make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    row = Row(sim, {(p.account, p.con_id): p.quantity for p in sim.positions() if p.quantity}, (98, 99))
    sim.fill.fill_delay = 0.2
    main = await make_daemon(name="main", client_id=99)
    standby = await make_daemon(
        name="standby", client_id=98, kill="verify_timeout: 2s\nstandby: true\nstandby_grace: 500ms"
    )
    both = [
        main.start_kill(Action.CLOSE_ALL, "manual:test", reason="two instances"),
        standby.start_kill(Action.CLOSE_ALL, "manual:test", reason="two instances"),
    ]
    reports = await asyncio.wait_for(asyncio.gather(*both), 40)
    await until(lambda: flat(sim), 10, "flat")
    row.no_over_close()
    assert all(r is not None for r in reports)
    for d in (main, standby):
        Row.audit(d, ["kill.triggered", "cancel.global"])
        assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    Row.audit(standby, ["close.standby_wait"])
    Row.message(caplog, "standby: waiting")
