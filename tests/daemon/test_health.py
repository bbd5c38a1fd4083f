"""Half-open gateway seen through the daemon: detected within interval × misses + timeout, reported in
the metrics, and recovered from when the simulator answers again."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.daemon.conftest import DaemonFactory
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Health
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

INTERVAL, TIMEOUT, MISSES = 0.2, 0.3, 1  # FAST_HEARTBEAT in conftest


async def drive_heartbeats(d: Daemon, health: Health, *, timeout: float) -> float:
    """Run the heartbeat job as the scheduler would (every interval) until the gateway has that
    health; returns the seconds it took."""
    t0 = time.monotonic()
    async with asyncio.timeout(timeout):
        while True:
            await d.heartbeat_job()
            if d.c.gateway.status().health is health:
                return time.monotonic() - t0
            await asyncio.sleep(INTERVAL)  # the scheduler's interval, not a wait for something to happen


async def test_a_muted_gateway_is_down_within_the_bound_and_the_daemon_reconnects_when_it_answers(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    d = await make_daemon(connect_timeout="1s")
    first = await asyncio.wait_for(d.poll_once(), 10)
    assert first.healthy
    reg = d.c.metrics.registry
    assert reg.get_sample_value("ibkr_watchdog_gateway_connected") == 1
    threads = threading.active_count()

    muted_at = time.time()  # the daemon's clock
    sim.faults.mute(99)  # half-open: the socket stays up, nothing is answered
    await drive_heartbeats(d, Health.DOWN, timeout=10)

    down_since = d.c.gateway.status().down_since
    assert down_since is not None
    # the job goes on to a reconnect attempt in the same call: time the detection by the gateway's mark
    assert down_since - muted_at <= INTERVAL * MISSES + TIMEOUT + 0.2, down_since - muted_at
    assert reg.get_sample_value("ibkr_watchdog_gateway_connected") == 0
    cycle = await asyncio.wait_for(d.evaluate_once(), 5)
    assert not cycle.healthy
    assert reg.get_sample_value("ibkr_watchdog_gateway_health", {"state": "down"}) == 1

    sim.faults.unmute(99)
    await drive_heartbeats(d, Health.HEALTHY, timeout=15)
    assert d.c.gateway.status().connected
    assert reg.get_sample_value("ibkr_watchdog_gateway_connected") == 1
    assert (reg.get_sample_value("ibkr_watchdog_reconnects_total") or 0) >= 1
    again = await asyncio.wait_for(d.poll_once(), 10)
    assert again.healthy
    snap = d.c.gateway.snapshot()
    assert len([p for p in snap.positions if p.quantity]) == 5
    assert {o.client_id for o in snap.open_orders if o.is_working} == {0, 7, 12}
    assert threading.active_count() == threads  # reconnecting left no thread behind
