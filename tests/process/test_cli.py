"""`ibkr-watchdog kill` (the operator's CLI, its own process) against a running daemon process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.process.conftest import (
    PLACE_ORDER,
    Launcher,
    NotifySocket,
    assert_flat_without_crossing_zero,
    cli,
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


async def test_kill_command_closes_all_and_records_the_reason(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    start = watched_positions(sim)
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)

    rc, out, err = await cli("kill", "--reason", "bot looping on AAPL", "--config", str(config))

    assert rc == 0, err
    assert f"pid {d.pid}" in out
    await until(lambda: bool(d.events("kill.finished")), 20, "the kill to finish")
    triggered = d.events("kill.triggered")
    assert len(triggered) == 1, d.stderr
    assert triggered[0].details["action"] == "close_all"
    assert triggered[0].details["trigger"] == "manual:SIGUSR1"
    assert "bot looping on AAPL" in triggered[0].details["reason"]
    assert d.events("kill.finished")[0].details["outcome"] == "flat"
    assert_flat_without_crossing_zero(sim, start)
    assert not list((d.state_dir / "requests").glob("*"))  # the daemon took the request file
    assert (await status_json(config))["last_kill"]["outcome"] == "flat"


async def test_kill_command_cancel_only_keeps_positions(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    positions = watched_positions(sim)
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)

    rc, _, err = await cli("kill", "--cancel-only", "--reason", "pause trading", "--config", str(config))

    assert rc == 0, err
    await until(lambda: bool(d.events("kill.finished")), 15, "the kill to finish")
    triggered = d.events("kill.triggered")
    assert [(r.details["action"], r.details["trigger"]) for r in triggered] == [
        ("cancel_all", "manual:SIGUSR2")
    ]
    assert "pause trading" in triggered[0].details["reason"]
    assert watched_orders(sim) == []
    assert watched_positions(sim) == positions
    assert PLACE_ORDER not in order_frames(sim)


async def test_kill_command_without_a_running_daemon_fails_clearly(tmp_path: Path, sim: Simulator) -> None:
    config = write_config(tmp_path, sim.port)

    rc, _, err = await cli("kill", "--reason", "x", "--config", str(config))

    assert rc == 1
    assert "no running daemon" in err
    assert order_frames(sim) == []
