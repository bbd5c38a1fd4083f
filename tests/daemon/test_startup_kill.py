"""A manual kill during start-up goes out as soon as the connection is up (issue 14 #3).

The global cancel needs no snapshot, so it must not wait for the first round of polls, which a
slow gateway stretches to seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from tests.daemon.conftest import until, write_config
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.model import Action
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.sim import Simulator

GLOBAL_CANCEL = 58
POSITION_END, ACCOUNT_SUMMARY_END = 62, 64  # gateway → client message ids the first polls wait for


def _daemon(tmp_path: Path, sim: Simulator) -> Daemon:
    config = load_config(write_config(tmp_path, sim.port))
    components = build_components(config, registry=CollectorRegistry(), sd=SdNotifier(None))
    return Daemon(config, None, components)


def _cancels(sim: Simulator) -> int:
    return sum(1 for f in sim.received(99) if f.msg_id == GLOBAL_CANCEL)


async def test_a_manual_kill_during_the_first_polls_cancels_before_they_finish(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.faults.delay({POSITION_END, ACCOUNT_SUMMARY_END}, 1.5)  # a slow gateway: start-up takes seconds
    d = _daemon(tmp_path, sim)
    starting = asyncio.ensure_future(d.start(require_gateway=True, schedule=False))
    try:
        await until(lambda: d.c.gateway.is_connected() or starting.done(), 10, "the connection")
        assert not starting.done()

        d.request_kill(Action.CANCEL_ALL, "manual:SIGUSR2", "")

        await until(lambda: _cancels(sim) > 0, 1.0, "the global cancel")
        assert not starting.done(), "the cancel waited for the first polls"
        await asyncio.wait_for(starting, 15)
        await d.wait_for_kills(15)
        assert [r.trigger for r in d.kill_reports] == ["manual:SIGUSR2"]
    finally:
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        await asyncio.wait_for(d.stop(), 15)


async def test_a_manual_kill_sent_before_the_connection_goes_out_right_after_it(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.faults.delay({POSITION_END, ACCOUNT_SUMMARY_END}, 1.5)
    d = _daemon(tmp_path, sim)
    d.request_kill(Action.CANCEL_ALL, "manual:SIGUSR2", "")  # SIGUSR2 before start() even began
    starting = asyncio.ensure_future(d.start(require_gateway=True, schedule=False))
    try:
        await until(lambda: _cancels(sim) > 0 or starting.done(), 10, "the global cancel")
        assert _cancels(sim) > 0 and not starting.done(), "the cancel waited for the first polls"
        await asyncio.wait_for(starting, 15)
    finally:
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        await asyncio.wait_for(d.wait_for_kills(15), 20)
        await asyncio.wait_for(d.stop(), 15)
