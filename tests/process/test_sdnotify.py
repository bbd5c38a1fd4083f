"""sd_notify from a real daemon process: READY after the first good snapshot, WATCHDOG=1 from every cycle
(also while the gateway is down: the daemon itself is healthy), STATUS= lines, STOPPING=1 at the end."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.process.conftest import Launcher, NotifySocket, start_ready, until, watched_orders, write_config
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def _status_before_ready(notify: NotifySocket) -> list[str]:
    statuses: list[str] = []
    for _, msg in notify.messages:
        if msg.get("READY") == "1":
            return statuses
        if "STATUS" in msg:
            statuses.append(msg["STATUS"])
    return statuses


async def test_ready_comes_with_the_first_good_snapshot_and_watchdog_pings_run_before_it(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    await sim.faults.daily_restart(refuse_for=3.0)  # the gateway is not there when the daemon starts
    t0 = time.monotonic()
    d = await launch(write_config(tmp_path, sim.port), notify=notify)

    # without a gateway: the loop runs (WATCHDOG=1) and says why it is not ready, but no READY yet
    await notify.wait_for(lambda n: n.count("WATCHDOG", "1") >= 3, 10, "WATCHDOG=1 while the gateway is away")
    assert notify.count("READY") == 0, notify.messages
    assert any("gateway down" in s for s in notify.values("STATUS")), notify.values("STATUS")

    await notify.wait_for(lambda n: n.count("READY", "1") == 1, 15, "READY=1 once connected")
    assert time.monotonic() - t0 >= 1.0
    # the STATUS sent in the same cycle as READY shows the whole book: 5 positions, 4 working orders
    assert _status_before_ready(notify)[-1] == (
        f"armed; gateway healthy; 5 positions, {len(watched_orders(sim))} working orders"
    ), notify.messages
    pings = notify.count("WATCHDOG", "1")
    await notify.wait_for(lambda n: n.count("WATCHDOG", "1") >= pings + 3, 5, "WATCHDOG=1 while healthy")
    assert notify.count("READY", "1") == 1  # once
    assert await d.stop() == 0
    assert notify.values("STOPPING") == ["1"]


async def test_watchdog_pings_go_on_while_the_gateway_is_half_open_and_status_says_so(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    d = await start_ready(launch, write_config(tmp_path, sim.port), notify)

    sim.faults.mute(99)  # half-open: the socket stays up, nothing is answered
    await until(
        lambda: d.status_file().get("gateway", {}).get("health") == "down", 10, "the daemon to see it"
    )
    await notify.wait_for(
        lambda n: any("gateway down" in s for s in n.values("STATUS")),
        5,
        "a STATUS saying the gateway is down",
    )
    pings = notify.count("WATCHDOG", "1")
    # systemd must not restart a daemon whose loop is fine: it has to alert and run a pending kill
    await notify.wait_for(
        lambda n: n.count("WATCHDOG", "1") >= pings + 5, 5, "WATCHDOG=1 while the gateway is down"
    )
    assert d.proc.returncode is None

    t0 = time.monotonic()
    d.send(signal.SIGTERM)
    assert await d.wait() == 0, d.stderr
    assert time.monotonic() - t0 < 5.0  # a reconnect stuck in a mute handshake does not hold the stop
    assert notify.values("STOPPING") == ["1"]
