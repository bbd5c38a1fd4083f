"""Bench 2b: a manual kill during start-up → reqGlobalCancel, timed from the moment the connection is up."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from tests.bench.harness import ConfigSpec, fmt_ms, median, percentile, verdict, wait_for, write_config
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.model import Action
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.sim import Simulator

GLOBAL_CANCEL = 58
POSITION_END, ACCOUNT_SUMMARY_END = 62, 64
SLOW_GATEWAY = 1.0  # seconds the simulator holds the answers the first polls wait for
TARGET = 0.100


async def one_trial(root: Path) -> float:
    """SIGUSR1's request lands before the daemon connects; seconds from connected to the cancel frame."""
    sim = Simulator(accounts=("DU111111",))
    sim.set_session("regular")
    await sim.start()
    sim.faults.delay({POSITION_END, ACCOUNT_SUMMARY_END}, SLOW_GATEWAY)
    daemon: Daemon | None = None
    try:
        spec = ConfigSpec(port=sim.port, state_dir=root / "state")
        config = load_config(write_config(root / "rules.yaml", spec))
        components = build_components(config, registry=CollectorRegistry(), sd=SdNotifier(None))
        daemon = Daemon(config, None, components)
        connected: list[float] = []
        after = daemon._after_connect

        def stamped() -> None:
            connected.append(time.time())  # the simulator stamps frames with time.time() too
            after()

        daemon._after_connect = stamped  # type: ignore[method-assign]
        daemon.request_kill(Action.CANCEL_ALL, "manual:SIGUSR2", "bench")
        await asyncio.wait_for(daemon.start(require_gateway=True, schedule=False), 30)
        frames: list[float] = []

        def arrived() -> bool:
            frames[:] = [f.time for f in sim.received(spec.client_id) if f.msg_id == GLOBAL_CANCEL]
            return bool(frames)

        await wait_for(arrived, 10, "reqGlobalCancel")
        await daemon.wait_for_kills(15)
        return frames[0] - connected[0]
    finally:
        if daemon is not None:
            await asyncio.wait_for(daemon.stop(), 20)
        await asyncio.wait_for(sim.stop(), 10)


async def row(root: Path, *, trials: int) -> list[str]:
    """One table row for the trigger section."""
    got = [await one_trial(root / f"trial-{i}") for i in range(trials)]
    p99 = percentile(got, 99)
    return [
        f"manual kill during start-up: connected → wire ({len(got)} trials, first polls held "
        f"{SLOW_GATEWAY:g} s)",
        "",
        fmt_ms(median(got)),
        fmt_ms(percentile(got, 90)),
        fmt_ms(p99),
        fmt_ms(max(got)),
        "≤ 100 ms: " + verdict(p99 <= TARGET),
    ]
