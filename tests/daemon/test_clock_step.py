"""A wall-clock step (one hour back) stops no periodic job: heartbeat, polls, evaluation, keep-alive.

The machine's clock is not touched: the wall clock is injected, into the daemon (`clock=`) and into
APScheduler (its `datetime.now`), so every part of the process sees the same step. Periodic jobs run
on the loop's monotonic clock and go on; before, APScheduler's interval triggers waited out the hour.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime, tzinfo
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.daemon.conftest import until, write_config
from tests.process.conftest import NotifySocket
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.sim import Simulator


class SteppableClock:
    """time.time() plus an offset the test can step."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> SteppableClock:
    clock = SteppableClock()

    class SteppedDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> SteppedDatetime:
            d = datetime.fromtimestamp(clock(), tz)
            return cls(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.tzinfo)

    import apscheduler.schedulers.base as base
    import apscheduler.triggers.interval as interval

    monkeypatch.setattr(base, "datetime", SteppedDatetime)
    monkeypatch.setattr(interval, "datetime", SteppedDatetime)
    return clock


@pytest.fixture
async def keepalive() -> AsyncIterator[NotifySocket]:
    """The systemd side of sd_notify (it reads every datagram, as systemd does)."""
    path = Path(tempfile.mkdtemp(prefix="wd-")) / "notify.sock"
    ns = NotifySocket(str(path))
    ns.start()
    try:
        yield ns
    finally:
        await ns.close()
        shutil.rmtree(path.parent, ignore_errors=True)


async def test_stepping_the_wall_clock_back_an_hour_stops_no_periodic_job(
    tmp_path: Path, sim: Simulator, wall: SteppableClock, keepalive: NotifySocket
) -> None:
    path = write_config(tmp_path, sim.port)
    config = load_config(path)
    c = build_components(config, clock=wall, registry=CollectorRegistry(), sd=SdNotifier(keepalive.path))
    d = Daemon(config, str(path), c)
    get = c.metrics.registry.get_sample_value

    def counts() -> tuple[float, float]:
        beats = get("ibkr_watchdog_heartbeat_rtt_seconds_count") or 0.0
        polls = get("ibkr_watchdog_polls_total", {"poll": "positions"}) or 0.0
        return beats, polls

    await asyncio.wait_for(d.start(require_gateway=True, schedule=True), 10)
    try:
        await until(lambda: counts()[0] >= 3 and counts()[1] >= 3, 5, "the timers to run")
        wall.offset = -3600.0  # NTP steps the clock back an hour
        beats, polls = counts()
        pings = keepalive.count("WATCHDOG", "1")

        def going_on() -> bool:
            b, p = counts()
            return b >= beats + 5 and p >= polls + 5 and keepalive.count("WATCHDOG", "1") >= pings + 5

        await until(going_on, 5, "heartbeats, polls and keep-alives after the step (200 ms timers)")
        assert c.timers.runs("evaluate") >= 5
    finally:
        await asyncio.wait_for(d.stop(), 15)
