"""Signals to a real daemon process: SIGUSR1 closes all, SIGUSR2 cancels only, SIGTERM/SIGINT never kill."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.process.conftest import (
    PLACE_ORDER,
    Launcher,
    NotifySocket,
    assert_flat_without_crossing_zero,
    order_frames,
    start_ready,
    status_json,
    until,
    watched_orders,
    watched_positions,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_sigusr2_cancels_every_working_order_and_keeps_positions(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    clients = {o.client_id for o in watched_orders(sim)}
    assert clients == {0, 7, 12}  # the scenario's manual TWS order and two bots' orders
    positions = watched_positions(sim)
    d = await start_ready(launch, write_config(tmp_path, sim.port), notify)

    d.send(signal.SIGUSR2)
    await until(lambda: bool(d.events("kill.finished")), 15, "the kill to finish")

    assert watched_orders(sim) == []
    assert watched_positions(sim) == positions
    assert PLACE_ORDER not in order_frames(sim)
    triggered = d.events("kill.triggered")
    assert [r.details["trigger"] for r in triggered] == ["manual:SIGUSR2"]
    assert triggered[0].details["action"] == "cancel_all"
    assert d.events("kill.finished")[0].details["outcome"] == "flat"
    status = await status_json(d.config)
    assert status["latch"]["state"] == "tripped"
    assert status["latch"]["action"] == "cancel_all"
    assert status["daemon_pid"] == d.pid
    assert await d.stop() == 0


async def test_sigusr1_closes_every_position_without_crossing_zero(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    start = watched_positions(sim)
    assert len(start) == 5  # stock, future and option in one account, stock and a short future in the other
    d = await start_ready(launch, write_config(tmp_path, sim.port), notify)

    d.send(signal.SIGUSR1)
    await until(lambda: bool(d.events("kill.finished")), 20, "the kill to finish")

    assert d.events("kill.finished")[0].details["outcome"] == "flat", d.stderr
    assert [r.details["trigger"] for r in d.events("kill.triggered")] == ["manual:SIGUSR1"], d.stderr
    assert_flat_without_crossing_zero(sim, start)
    assert watched_orders(sim) == []
    assert (await status_json(d.config))["latch"]["action"] == "close_all"
    assert await d.stop() == 0


async def test_sigterm_stops_within_a_bound_and_never_fires_a_kill(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    orders = len(watched_orders(sim))
    d = await start_ready(launch, write_config(tmp_path, sim.port), notify)
    assert (d.state_dir / "watchdog.pid").read_text().splitlines()[0] == str(d.pid)

    t0 = time.monotonic()
    rc = await d.stop(signal.SIGTERM)
    took = time.monotonic() - t0

    assert rc == 0, d.stderr
    assert took < 5.0
    await notify.wait_for(lambda n: n.count("STOPPING", "1") == 1, 2, "STOPPING=1")
    assert order_frames(sim) == []  # no placeOrder, cancelOrder or reqGlobalCancel from client 99
    assert len(watched_orders(sim)) == orders
    assert not (d.state_dir / "watchdog.pid").exists()
    assert d.events("kill.triggered") == []
    assert (await status_json(d.config))["latch"]["state"] == "armed"


async def test_a_second_sigint_forces_a_prompt_exit_without_a_kill(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    d = await start_ready(launch, write_config(tmp_path, sim.port), notify)

    t0 = time.monotonic()
    d.send(signal.SIGINT)
    d.send(signal.SIGINT)
    rc = await d.wait()

    assert rc == 0, d.stderr
    assert time.monotonic() - t0 < 5.0
    assert order_frames(sim) == []
    assert not (d.state_dir / "watchdog.pid").exists()
    assert d.events("kill.triggered") == []


async def test_a_second_sigint_does_not_wait_for_a_running_kill_which_stays_pending(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    sim.fill.fill_delay = 30.0  # the closing orders rest: the kill is still verifying when we stop
    d = await start_ready(launch, write_config(tmp_path, sim.port), notify)
    d.send(signal.SIGUSR1)
    await until(lambda: len(d.events("close.order")) == 5, 15, "the closing orders")

    t0 = time.monotonic()
    d.send(signal.SIGINT)  # graceful: would give the running kill SHUTDOWN_GRACE (10 s)
    await until(lambda: "waiting up to" in d.stderr, 5, "the stop to wait for the kill")
    d.send(signal.SIGUSR2)  # a manual kill while stopping is not run, and says so
    await until(
        lambda: "manual:SIGUSR2 cancel_all ignored: the daemon is stopping" in d.stderr, 5, "the refusal"
    )
    d.send(signal.SIGINT)  # forced: stop now
    rc = await d.wait()

    assert rc == 0, d.stderr
    assert time.monotonic() - t0 < 5.0, d.stderr
    assert "Traceback" not in d.stderr
    assert not (d.state_dir / "watchdog.pid").exists()
    # the interrupted kill is remembered: the next start resumes it (see test_restart.py)
    assert (d.state_dir / "pending-kill.json").exists()
    assert d.latch()["state"] == "tripped"
    assert [r.details["trigger"] for r in d.events("kill.triggered")] == ["manual:SIGUSR1"]
