"""`ibkr-watchdog sim`: run the simulator in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from watchdog.sim.scenario import load_scenario, run_scenario
from watchdog.sim.simulator import Simulator

log = logging.getLogger("watchdog.sim")


async def serve(host: str, port: int, scenario: str | None, stop: asyncio.Event | None = None) -> int:
    """Start, print the address, play the scenario timeline, stop cleanly when `stop` is set."""
    spec = load_scenario(scenario or "default")
    sim = Simulator.from_scenario(spec)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # The handler only sets state; the main coroutine notices and shuts down.
        loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start(host, port)
        print(
            f"TWS API simulator listening on {sim.host}:{sim.port} (accounts: {','.join(sim.book.accounts)};"
            f" scenario: {spec.name})",
            flush=True,
        )
        timeline = asyncio.create_task(run_scenario(sim, spec))
        await stop.wait()
        timeline.cancel()
        await asyncio.gather(timeline, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sim.stop()
    print("simulator stopped", flush=True)
    return 0


def sim_command(host: str, port: int, scenario: str | None) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(serve(host, port, scenario))
    except OSError as exc:
        print(f"simulator: cannot listen on {host}:{port}: {exc}")
        return 1
