"""Attack 3: `ibkr-watchdog kill --wait` (a real CLI process) against a real daemon while the gateway
restarts: it follows the pending kill to its end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.process.conftest import (
    Launcher,
    NotifySocket,
    assert_flat_without_crossing_zero,
    cli,
    start_ready,
    until,
    watched_positions,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_kill_wait_during_a_gateway_restart_follows_the_pending_kill_to_flat(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    start = watched_positions(sim)
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)
    await sim.faults.daily_restart(refuse_for=3.0)
    await until(
        lambda: d.status_file().get("gateway", {}).get("connected") is False, 10, "the daemon to see it"
    )
    rc, out, err = await asyncio.wait_for(
        cli("kill", "--wait", "40", "--reason", "desk", "--state-dir", str(d.state_dir), timeout=45), 50
    )
    assert rc == 0, (out, err, d.stderr)
    assert out.count("is PENDING") == 1, out
    assert "outcome: flat" in out and "resumed (same kill)" in out, out
    assert "is the daemon alive" not in out + err, (out, err)
    assert_flat_without_crossing_zero(sim, start)
    assert await d.stop() == 0
