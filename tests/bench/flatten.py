"""Bench 3: flatten throughput — close_all of N positions → verified flat, against N / pacing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.bench.harness import (
    ACCOUNT,
    ConfigSpec,
    Section,
    start_daemon,
    stock_universe,
    verdict,
    write_config,
)
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

TARGET_RATIO = 1.15
PLACE_ORDER = 3


def max_per_second(stamps: list[float]) -> int:
    """The most client messages the simulator received within any one-second window."""
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while t - stamps[j] >= 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


async def one_size(root: Path, n: int) -> list[str]:
    sim = Simulator(accounts=(ACCOUNT,), instruments=stock_universe(n))
    sim.set_session("regular")
    for i in range(n):
        qty = (10 + i % 7) * (1 if i % 3 else -1)  # longs and shorts
        sim.set_position(ACCOUNT, 910_000 + i, qty)
    await sim.start()
    daemon: Daemon | None = None
    try:
        spec = ConfigSpec(port=sim.port, state_dir=root / f"state{n}")
        daemon = await start_daemon(write_config(root / f"rules{n}.yaml", spec), timeout=120)
        pacing = daemon.config.kill.pacing
        await asyncio.sleep(1.1)  # past ib_async's one-second throttle window of the start-up requests
        sent_before = len(sim.received(99))
        started = time.monotonic()
        task = daemon.start_kill(Action.CLOSE_ALL, "bench:flatten", reason="flatten benchmark")
        report = await asyncio.wait_for(task, n / pacing * 3 + 60)
        took = time.monotonic() - started
        assert report is not None
        open_left = [p for p in sim.positions(ACCOUNT) if p.quantity]
        errors_100 = daemon.c.gateway.error_counts.get(100, 0)
        flat = report.outcome is KillOutcome.FLAT and not open_left
        frames = sim.received(99)[sent_before:]
        busiest = max_per_second([f.time for f in frames])
        placed = [f.time for f in frames if f.msg_id == PLACE_ORDER]
        rate = (len(placed) - 1) / (placed[-1] - placed[0]) if len(placed) > 1 else float("nan")
        fills = sim.executions(ACCOUNT)
        last_fill = max((f.time for f in fills), default=float("nan")) - report.started
        bound = n / pacing
        ratio = took / bound
        return [
            str(n),
            f"{bound:.2f} s",
            f"{took:.2f} s",
            f"{last_fill:.2f} s",
            f"{ratio:.2f}",
            str(len(report.close_orders)),
            "yes" if flat else f"**no** ({report.outcome.value}, {len(open_left)} open)",
            f"{rate:.1f}/s",
            str(busiest),
            str(errors_100),
            f"≤ {TARGET_RATIO}: " + verdict(ratio <= TARGET_RATIO and flat and not errors_100),
        ]
    finally:
        if daemon is not None:
            await asyncio.wait_for(daemon.stop(), 30)
        await asyncio.wait_for(sim.stop(), 10)


async def run(root: Path, *, sizes: tuple[int, ...]) -> Section:
    rows = [await one_size(root, n) for n in sizes]
    rates = [float(r[7].rstrip("/s")) for r in rows if r[7] != "nan/s"]
    method = """
One simulator per N with N stock positions (longs and shorts) in one paper account (extra instruments
added with `Simulator(instruments=...)`), regular session, fills at once; one in-process daemon
(scheduler on, default polling, `kill.pacing` 40 msg/s). After the start-up backlog has drained, a
`close_all` kill is started (`Daemon.start_kill`) and timed until its report is back **verified flat**
(positions re-read as zero). Bound = N / pacing: the time the closing orders alone need at the paced
rate. "last fill" is when the simulator filled the last closing order (the rest is verification).
The simulator's own pacing limit (50 msg/s, error 100 and disconnect) stays on: "error 100" must be 0.
"""
    notes = [
        "Fixed cost per kill, independent of N: global cancel + its verification read, the plan reads "
        "(orders, positions, orders), the first verification poll 0.5 s after the last order "
        "(`min(0.5, verify_timeout/4)`), and a last open-orders read. At small N that fixed cost "
        "dominates the ratio; the 1.15 × target is met only where N / pacing is large against it.",
    ]
    if rates and min(rates) < 39.5:
        notes.append(
            f"Closing orders went out at {min(rates):.1f}–{max(rates):.1f}/s, not the configured 40/s: the "
            "kill's pacer (`kill.plan.Pacer`) waits 1/rate after the previous *actual* send, so every "
            "sleep's overshoot (the loop is busy with the fills of earlier orders) adds up. A pacer "
            "keyed to ideal send times would hold 40/s and take about "
            f"{(1 - min(rates) / 40):.0%} off the long flattens."
        )
    headers = ["N", "bound N/pacing", "verified flat after", "last fill", "ratio", "orders", "flat",
               "placeOrder rate", "max msg/s at sim", "error 100", "target"]  # fmt: skip
    return Section("3. Flatten throughput (close_all → verified flat)", method, headers, rows, notes)
