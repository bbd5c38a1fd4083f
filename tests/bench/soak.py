"""`make soak`: the simulator cycles through faults while an in-process daemon runs; report what it cost.

Reports memory growth, reconnects, missed heartbeats and unhandled exceptions (which must be zero),
and that P&L swings short of the limit never fired a kill. Not part of CI; `--minutes N` (default 10).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.harness import ConfigSpec, Section, machine, start_daemon, table, wait_for, write_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.sim import Simulator

REPO = Path(__file__).resolve().parents[2]
RESULT = Path(__file__).with_name("last_soak.md")  # appended to BENCHMARKS.md by `make bench`
ACCOUNTS = ("DU111111", "DU222222")
RULES = """
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: close_all
  - name: gateway-down
    when: "gateway_down_seconds > 30s"
    action: alert
"""


def rss_mb() -> float:
    text = Path("/proc/self/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


@dataclass
class Tally(logging.Handler):
    """Counts what the soak must report, from log records and the loop's exception handler."""

    in_fault: bool = False
    missed: int = 0
    missed_outside_faults: int = 0
    half_open: int = 0
    unhandled: list[str] = field(default_factory=list)
    job_errors: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.DEBUG)

    def __hash__(self) -> int:
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.name == "watchdog.daemon.lifecycle" and msg.startswith("heartbeat failed"):
            self.missed += 1
            if not self.in_fault:
                self.missed_outside_faults += 1
        if record.name == "watchdog.gateway.client" and "half_open" in msg:
            self.half_open += 1
        if record.levelno >= logging.ERROR:
            if record.name == "asyncio":
                self.unhandled.append(msg[:200])
            elif record.name.startswith("apscheduler"):
                self.job_errors.append(msg[:200])
            else:
                self.errors[f"{record.name}: {re.sub(r'[0-9]+', 'N', msg)[:90]}"] += 1

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.unhandled.append(str(context.get("exception") or context.get("message"))[:200])


async def _phase(tally: Tally, daemon: Daemon, name: str, fault: Callable[[], Awaitable[None]]) -> str:
    tally.in_fault = True
    try:
        await fault()
        await wait_for(daemon.c.gateway.is_connected, 60, f"recovery after {name}", interval=0.1)
        await asyncio.sleep(3.0)  # a few healthy heartbeats before the next fault counts as "outside"
    finally:
        tally.in_fault = False
    return name


async def soak(minutes: float, root: Path, tally: Tally) -> Section:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(tally.loop_handler)
    sim = Simulator.from_scenario("default")
    sim.set_session("regular")
    await sim.start()
    spec = ConfigSpec(port=sim.port, state_dir=root / "state", rules=RULES, accounts=ACCOUNTS, metrics_port=0)
    daemon = await start_daemon(write_config(root / "rules.yaml", spec))
    reg = daemon.c.metrics.registry
    rss_start = rss_mb()
    started = time.monotonic()
    deadline = started + minutes * 60
    phases: Counter[str] = Counter()
    swing = 0

    async def mute() -> None:
        sim.faults.mute()
        await wait_for(lambda: not daemon.c.gateway.is_connected(), 10, "half-open detection")
        sim.faults.unmute()

    async def drop() -> None:
        await sim.faults.drop(None)

    async def reset() -> None:
        await sim.faults.drop(None, reset=True)

    async def nightly() -> None:
        await sim.faults.nightly_reset(4.0, wait=True)

    async def restart() -> None:
        await sim.faults.daily_restart(3.0, wait=True)

    async def pnl_swings() -> None:
        nonlocal swing
        for daily in (-800.0, -2000.0, -2400.0, 500.0, -1500.0, 1200.0):
            swing += 1
            sim.set_pnl(ACCOUNTS[swing % 2], daily=daily)
            await asyncio.sleep(0.5)
        for account in ACCOUNTS:
            sim.clear_pnl(account)

    cycle: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("mute / unmute", mute),
        ("P&L swings", pnl_swings),
        ("drop (FIN)", drop),
        ("drop (RST)", reset),
        ("P&L swings", pnl_swings),
        ("nightly reset", nightly),
        ("daily restart", restart),
    ]
    try:
        i = 0
        while time.monotonic() < deadline:
            name, fault = cycle[i % len(cycle)]
            phases[await _phase(tally, daemon, name, fault)] += 1
            i += 1
        elapsed = time.monotonic() - started
        rss_end = rss_mb()
        reconnects = reg.get_sample_value("ibkr_watchdog_reconnects_total") or 0.0
        kills = len(daemon.kill_reports)
    finally:
        await asyncio.wait_for(daemon.stop(), 30)
        await asyncio.wait_for(sim.stop(), 10)
    ok = not tally.unhandled and not tally.job_errors and kills == 0 and not tally.missed_outside_faults
    rows = [
        ["duration", f"{elapsed / 60:.1f} min"],
        ["fault phases run", ", ".join(f"{n} ×{c}" for n, c in phases.items())],
        ["RSS start → end (whole process: daemon + simulator)", f"{rss_start:.1f} → {rss_end:.1f} MB"],
        ["memory growth", f"{rss_end - rss_start:+.1f} MB"],
        ["reconnects (`ibkr_watchdog_reconnects_total`)", f"{reconnects:.0f}"],
        ["half-open declared", str(tally.half_open)],
        ["missed heartbeats (all during faults)", f"{tally.missed} ({tally.missed_outside_faults} outside)"],
        ["kills fired by P&L swings short of the limit", str(kills)],
        ["unhandled exceptions (loop handler + asyncio ERROR)", str(len(tally.unhandled))],
        ["scheduler job exceptions", str(len(tally.job_errors))],
        ["verdict", "pass" if ok else "**FAIL**"],
    ]
    notes = [f"{e} ×{c}" for e, c in tally.errors.most_common(12)]
    if notes:
        notes.insert(0, "ERROR records seen (expected ones come from the injected faults):")
    notes += [f"unhandled: {u}" for u in tally.unhandled[:10]]
    notes += [f"job error: {u}" for u in tally.job_errors[:10]]
    env = "; ".join(f"{k} {v}" for k, v in machine() if k in ("CPU", "cores", "Python", "date (UTC)"))
    method = f"""
`python -m tests.bench.soak --minutes {minutes:g}` ({env}). One simulator (the default scenario: two
paper accounts, positions and resting orders) and one in-process daemon (scheduler on, heartbeat 1 s /
1.5 s, rules `daily_pnl <= -2500` → close_all and a gateway-down alert). The simulator cycles: mute →
unmute, P&L swings that never reach the limit, drop (FIN), drop (RST), nightly reset (4 s), daily
restart (refusing 3 s); after each fault the soak waits for the reconnect plus 3 s of healthy
heartbeats. Missed heartbeats outside a fault, kills, unhandled exceptions and scheduler job
exceptions must all be zero.
"""
    return Section("Soak", method, ["measure", "value"], rows, notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--output", default=str(RESULT), help="markdown file for the result ('-' = none)")
    args = parser.parse_args(argv)
    tally = Tally()
    root_logger = logging.getLogger()
    root_logger.addHandler(tally)
    root_logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="ibkr-soak-") as tmp:
        log_file = logging.FileHandler(Path(tmp) / "soak.log")
        root_logger.addHandler(log_file)
        try:
            section = asyncio.run(soak(args.minutes, Path(tmp), tally))
        finally:
            root_logger.removeHandler(log_file)
            log_file.close()
            root_logger.removeHandler(tally)
    text = section.markdown()
    print(text)
    if args.output != "-":
        Path(args.output).write_text(text)
        print(f"written to {args.output}", file=sys.stderr)
    ok = "| verdict | pass |" in text
    return 0 if ok else 1


__all__ = ["main", "table"]

if __name__ == "__main__":
    raise SystemExit(main())
