"""Bench 6: alert latency — breaching P&L frame → the notification received by a local HTTP endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.bench.capture import CaptureServer
from tests.bench.harness import (
    ACCOUNT,
    ConfigSpec,
    Section,
    fmt_ms,
    median,
    percentile,
    start_daemon,
    verdict,
    wait_for,
    write_config,
)
from watchdog.daemon.lifecycle import Daemon
from watchdog.sim import Simulator

TARGET = 1.0
RULES = """
  - name: daily-loss-alert
    when: "daily_pnl <= -2500"
    action: alert
    severity: critical
"""


def _count(cap: CaptureServer, word: str) -> int:
    return sum(1 for t in cap.titles() if word in t and "daily-loss-alert" in t)


async def one_trial(sim: Simulator, cap: CaptureServer) -> float:
    breaches = _count(cap, "[BREACH")
    recoveries = _count(cap, "[RECOVERED]")
    sent = sim.clock()  # the capture server stamps with time.time() too
    sim.set_pnl(ACCOUNT, daily=-2600.0)
    await wait_for(lambda: _count(cap, "[BREACH") > breaches, 10, "the breach notification")
    got = [r.at for r in cap.received() if "[BREACH" in str(r.body.get("title", ""))]
    took = got[breaches] - sent
    sim.clear_pnl(ACCOUNT)
    await wait_for(lambda: _count(cap, "[RECOVERED]") > recoveries, 10, "the recovery notification")
    return took


async def run(root: Path, *, trials: int) -> Section:
    sim = Simulator(accounts=(ACCOUNT,))
    await sim.start()
    daemon: Daemon | None = None
    got: list[float] = []
    with CaptureServer() as cap:
        try:
            spec = ConfigSpec(
                port=sim.port,
                state_dir=root / "alert-state",
                rules=RULES,
                notify_urls=(cap.url("bench"),),
                burst_max=10_000,  # every trial's breach must go out on its own, not in a summary
            )
            daemon = await start_daemon(write_config(root / "alert-rules.yaml", spec))
            await wait_for(lambda: any("started" in t for t in cap.titles()), 10, "the start-up message")
            for _ in range(trials):
                got.append(await one_trial(sim, cap))
        finally:
            if daemon is not None:
                await asyncio.wait_for(daemon.stop(), 20)
            await asyncio.wait_for(sim.stop(), 10)
    p50, p99 = median(got), percentile(got, 99)
    rows = [
        [
            str(len(got)),
            fmt_ms(min(got)),
            fmt_ms(p50),
            fmt_ms(p99),
            fmt_ms(max(got)),
            "p99 ≤ 1 s: " + verdict(p99 <= TARGET),
        ]
    ]
    method = """
One simulator, one in-process daemon (scheduler on), a rule `daily_pnl <= -2500` with `action: alert`,
severity critical, and one notification target `json://127.0.0.1:PORT/bench` — real apprise posting to
a local HTTP server (stdlib, in a thread) that stamps each body on receipt. Each trial: the simulator
clock read, `sim.set_pnl(daily=-2600)`, wait for the `[BREACH]` notification; then `clear_pnl` and wait
for the `[RECOVERED]` one so the next trial is a fresh breach. `burst_max` is raised so that no breach
is folded into a burst summary.
"""
    headers = ["trials", "min", "p50", "p99", "max", "target"]
    return Section("6. Alert latency (breach → local HTTP endpoint)", method, headers, rows, [])
