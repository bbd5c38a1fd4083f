"""A kill requested while the gateway is away is persisted as pending and runs when it comes back."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.process.conftest import (
    Launcher,
    NotifySocket,
    assert_flat_without_crossing_zero,
    free_port,
    scrape_until,
    start_ready,
    status_json,
    until,
    watched_orders,
    watched_positions,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_a_kill_during_a_gateway_restart_goes_pending_and_runs_on_reconnect(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    start = watched_positions(sim)
    port = free_port()
    config = write_config(tmp_path, sim.port, metrics_port=port)
    d = await start_ready(launch, config, notify)
    await scrape_until(port, lambda t: "ibkr_watchdog_kill_pending 0.0" in t, 5, "kill_pending 0")

    await sim.faults.daily_restart(refuse_for=3.0)  # every socket closed, connections refused for 3 s
    await until(
        lambda: d.status_file().get("gateway", {}).get("connected") is False, 10, "the daemon to see it"
    )
    d.send(signal.SIGUSR1)

    await until(lambda: bool(d.events("kill.pending")), 5, "the kill to go pending")
    assert d.events("kill.finished") == []
    status = await status_json(d.config)
    assert status["pending_kill"]["action"] == "close_all"
    assert status["pending_kill"]["trigger"] == "manual:SIGUSR1"
    assert status["latch"]["state"] == "tripped"  # tripped before anything is sent: a crash resumes it
    metrics = await scrape_until(port, lambda t: "ibkr_watchdog_kill_pending 1.0" in t, 5, "kill_pending 1")
    assert "ibkr_watchdog_gateway_connected 0.0" in metrics
    assert watched_positions(sim) == start  # nothing could be done yet

    await until(lambda: bool(d.events("kill.finished")), 20, "the pending kill to run after the restart")
    [finished] = d.events("kill.finished")
    assert finished.details["outcome"] == "flat", d.stderr
    assert finished.kill_id == d.events("kill.pending")[0].kill_id
    assert_flat_without_crossing_zero(sim, start)
    assert watched_orders(sim) == []
    assert (await status_json(d.config))["pending_kill"] is None
    await scrape_until(port, lambda t: "ibkr_watchdog_kill_pending 0.0" in t, 5, "kill_pending back to 0")
    assert await d.stop() == 0
