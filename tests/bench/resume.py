"""Bench 7: pending kill → first order message once the gateway is usable again.

Two ways the gateway comes back: it listens again after a restart (the watchdog must reconnect), and
1102 "restored, data maintained" after a 1100 with account data silent (the socket never dropped).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.bench.harness import (
    ACCOUNT,
    ConfigSpec,
    Section,
    fmt_ms,
    median,
    start_daemon,
    verdict,
    wait_for,
    write_config,
)
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

TARGET = 1.5
GLOBAL_CANCEL = 58
WATCHDOG = 99


def first_order_after(sim: Simulator, t: float) -> float | None:
    """Seconds from `t` to the watchdog's first order message (the global cancel) after it."""
    sent = [f.time for f in sim.received(WATCHDOG) if f.msg_id == GLOBAL_CANCEL and f.time >= t]
    return min(sent) - t if sent else None


async def park(daemon: Daemon) -> None:
    before = len(daemon.kill_reports)
    daemon.start_kill(Action.CLOSE_ALL, "manual:bench", reason="bench")
    await wait_for(
        lambda: len(daemon.kill_reports) > before and daemon.kill_reports[-1].outcome is KillOutcome.PENDING,
        30,
        "the kill to go pending",
    )


async def finish(daemon: Daemon, sim: Simulator) -> None:
    await wait_for(
        lambda: daemon.c.store.pending_kill() is None and not daemon.kill_in_progress, 30, "the kill"
    )
    daemon.c.killswitch.reset("bench: next trial", who="bench")
    sim.set_position(ACCOUNT, "AAPL", 100)


async def after_reconnect(daemon: Daemon, sim: Simulator, outage: float) -> float:
    await sim.server.stop_listening()
    await sim.server.drop(None, reset=False)
    await wait_for(lambda: not daemon.c.gateway.status().connected, 10, "DOWN")
    await park(daemon)
    await asyncio.sleep(outage)  # the backoff has grown meanwhile (reconnect_initial 1 s, doubling)
    usable = time.time()
    await sim.server.start_listening()
    await wait_for(lambda: first_order_after(sim, usable) is not None, 30, "the first order")
    took = first_order_after(sim, usable)
    await finish(daemon, sim)
    assert took is not None
    return took


async def after_1102(daemon: Daemon, sim: Simulator) -> float:
    sim.faults.inject_error(1100)
    sim.faults.state.silenced = True  # account data stops; socket and heartbeats stay up
    await park(daemon)  # its positions read times out (verify_timeout) and it parks
    usable = time.time()
    sim.faults.state.silenced = False
    sim.faults.inject_error(1102)
    await wait_for(lambda: first_order_after(sim, usable) is not None, 30, "the first order")
    took = first_order_after(sim, usable)
    await finish(daemon, sim)
    assert took is not None
    return took


async def run(root: Path, *, trials: int, outage: float = 4.0) -> Section:
    sim = Simulator(accounts=(ACCOUNT,))
    await sim.start()
    sim.set_position(ACCOUNT, "AAPL", 100)
    daemon: Daemon | None = None
    results: dict[str, list[float]] = {"after a reconnect": [], "after 1102, no reconnect": []}
    try:
        spec = ConfigSpec(
            port=sim.port,
            state_dir=root / "resume-state",
            reconnect_initial=1.0,  # the product's defaults: the backoff a pending kill must not wait for
            reconnect_max=60.0,
            kill="verify_timeout: 1s",
        )
        daemon = await start_daemon(write_config(root / "resume-rules.yaml", spec))
        for _ in range(trials):
            results["after a reconnect"].append(await after_reconnect(daemon, sim, outage))
            results["after 1102, no reconnect"].append(await after_1102(daemon, sim))
    finally:
        if daemon is not None:
            await asyncio.wait_for(daemon.stop(), 20)
        await asyncio.wait_for(sim.stop(), 10)
    rows = []
    for how, got in results.items():
        p50, worst = median(got), max(got)
        rows.append(
            [
                how,
                str(len(got)),
                fmt_ms(min(got)),
                fmt_ms(p50),
                fmt_ms(worst),
                "≤ 1.5 s: " + verdict(worst <= TARGET),
            ]
        )
    method = f"""
One simulator, one in-process daemon (scheduler on, heartbeat 1 s, `reconnect_initial` 1 s and
`reconnect_max` 60 s as in production, `verify_timeout` 1 s), one position. *After a reconnect*: the
simulator stops listening and drops the socket, a close-all goes pending, the outage lasts {outage:g} s
(the backoff would next try seconds later), then the port listens again — the clock starts there.
*After 1102*: 1100 with account data silent, a close-all parks when its positions read times out,
then 1102 — the clock starts there; the socket never dropped. The figure is the time to the
watchdog's first order message on the wire (its `reqGlobalCancel`, as the simulator received it).
"""
    headers = ["gateway usable again", "trials", "min", "p50", "max", "target"]
    return Section("8. Pending kill → first order once the gateway is usable", method, headers, rows, [])
