"""Bench 2: trigger to wire — breaching P&L frame sent by the simulator → reqGlobalCancel frame received."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.bench import startup
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

GLOBAL_CANCEL = 58  # reqGlobalCancel
TARGET = 0.020
PAUSE = 0.05  # seconds between trials
RULES = """
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: cancel_all
"""


class Spans:
    """Wraps methods of a live daemon to record when they ran (time.time), to split the latency up."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    def wrap(self, obj: object, name: str, label: str) -> None:
        fn = getattr(obj, name)

        def timed(*args: object, **kwargs: object) -> object:
            start = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spans.append((label, start, time.time()))

        setattr(obj, name, timed)

    def spent(self, label: str, since: float, until: float) -> float:
        return sum(e - b for lb, b, e in self.spans if lb == label and b >= since and e <= until)


def _rule_state(daemon: Daemon) -> str:
    for status in daemon.c.memory.status():
        if status.rule == "daily-loss" and status.account == ACCOUNT:
            return status.state
    return "none"


async def one_trial(
    sim: Simulator, daemon: Daemon, client_id: int, spans: Spans
) -> tuple[float, float, float]:
    """Seconds between the breaching P&L frame leaving the simulator and reqGlobalCancel arriving."""
    before = len([f for f in sim.received(client_id) if f.msg_id == GLOBAL_CANCEL])
    # ReceivedFrame.time is the simulator's clock (time.time); the send stamp uses the same clock
    sent = sim.clock()
    sim.set_pnl(ACCOUNT, daily=-2600.0)  # written to the client's socket before set_pnl returns
    frames: list[float] = []

    def arrived() -> bool:
        frames[:] = [f.time for f in sim.received(client_id) if f.msg_id == GLOBAL_CANCEL]
        return len(frames) > before

    await wait_for(arrived, 5, "reqGlobalCancel", interval=0.001)
    took = frames[before] - sent
    durable = spans.spent("durable", sent, frames[before])
    status = spans.spent("status", sent, frames[before])
    await daemon.wait_for_kills(timeout=15)
    await wait_for(lambda: not daemon.kill_in_progress, 15, "the kill to finish")
    daemon.c.killswitch.reset("bench: next trial", who="bench")
    sim.clear_pnl(ACCOUNT)
    await wait_for(lambda: _rule_state(daemon) == "ok", 10, "the rule to recover")
    # the kill's pacer spaces order messages 1/pacing (25 ms) apart: trials closer than that would
    # measure the pacer, not the trigger path (a second kill within 25 ms does not happen for real)
    await asyncio.sleep(PAUSE)
    return took, durable, status


async def run(root: Path, *, trials: int) -> Section:
    sim = Simulator(accounts=(ACCOUNT,))
    sim.set_session("regular")
    await sim.start()
    daemon: Daemon | None = None
    got: list[float] = []
    durable: list[float] = []
    status: list[float] = []
    spans = Spans()
    try:
        spec = ConfigSpec(port=sim.port, state_dir=root / "state", rules=RULES)
        daemon = await start_daemon(write_config(root / "rules.yaml", spec))
        await wait_for(lambda: _rule_state(daemon) == "ok", 10, "a first evaluation")
        c = daemon.c
        # the writes the kill makes before it sends anything (audit record, latch, pending; fsynced after)
        spans.wrap(c.audit, "record", "durable")
        spans.wrap(c.store, "save_latch", "durable")
        spans.wrap(c.store, "save_pending", "durable")
        spans.wrap(c.store, "write_status", "status")  # the evaluation's status.json rewrite
        started = time.monotonic()
        for _ in range(trials):
            took, on_disk, on_status = await one_trial(sim, daemon, spec.client_id, spans)
            got.append(took)
            durable.append(on_disk)
            status.append(on_status)
        elapsed = time.monotonic() - started
    finally:
        if daemon is not None:
            await asyncio.wait_for(daemon.stop(), 20)
        await asyncio.wait_for(sim.stop(), 10)
    p50, p99 = median(got), percentile(got, 99)
    rows = [
        [
            f"trigger → wire ({len(got)} trials, min {fmt_ms(min(got))})",
            "",
            fmt_ms(p50),
            fmt_ms(percentile(got, 90)),
            fmt_ms(p99),
            fmt_ms(max(got)),
            "p99 ≤ 20 ms: " + verdict(p99 <= TARGET),
        ]
    ]
    slow = sorted(range(len(got)), key=lambda i: got[i])[-max(1, len(got) // 100) :]
    rest = [g - d - st for g, d, st in zip(got, durable, status, strict=True)]
    rows.append(
        [
            "of which: state writes (audit record, latch, pending) before the wire",
            "",
            fmt_ms(median(durable)),
            fmt_ms(percentile(durable, 90)),
            fmt_ms(percentile(durable, 99)),
            fmt_ms(max(durable)),
            "",
        ]
    )
    rows.append(
        [
            "of which: status.json rewrite before the wire",
            "",
            fmt_ms(median(status)),
            fmt_ms(percentile(status, 90)),
            fmt_ms(percentile(status, 99)),
            fmt_ms(max(status)),
            "",
        ]
    )
    rows.append(
        [
            "of which: everything else (network, decoding, evaluation, scheduling)",
            "",
            fmt_ms(median(rest)),
            fmt_ms(percentile(rest, 90)),
            fmt_ms(percentile(rest, 99)),
            fmt_ms(max(rest)),
            "",
        ]
    )
    rows.append(await startup.row(root / "startup", trials=max(1, min(trials, 10))))
    notes = [f"{len(got)} trials in {elapsed:.1f} s (including the reset between trials)."]
    if p99 > TARGET:
        share = median([(durable[i] + status[i]) / got[i] for i in slow])
        notes.append(
            f"target missed: p99 {p99 * 1000:.1f} ms > 20 ms. In the slowest 1 % of trials "
            f"{share:.0%} of the time went to file writes made between the P&L frame and the wire: "
            "the kill's `kill.triggered` audit record, latch and pending-kill record (written before "
            "the cancel, fsynced only after it: a temp file and a rename each) and status.json "
            "rewrites by evaluations in the same window. Their cost follows this VM's shared disk; the "
            "rest of the tail is the event loop being busy with other work (polls, the scheduler) "
            "when the P&L frame arrives."
        )
    method = """
One simulator and one in-process daemon (scheduler on: `start(schedule=True)`, heartbeat 1 s /
1.5 s, default polling), one rule `daily_pnl <= -2500` (no `for:`), action `cancel_all`. Each trial:
`sim.set_pnl(daily=-2600)` writes the PnL frame to the daemon's socket; the daemon evaluates on the
streamed value (`gateway.on_data` → `Daemon._request_evaluation`), fires the kill, which writes its
trigger record, latch and pending kill, sends `reqGlobalCancel`, and only then fsyncs them.
Measured: the simulator's receive stamp of the msg-58 frame (`ReceivedFrame.time`) minus the
simulator clock read just before `set_pnl`
(both `time.time()` of this process). Between trials: wait for the kill to finish,
`killswitch.reset(...)`, `sim.clear_pnl`, wait until the rule reads `ok` again, then 50 ms more: the
kill's pacer keeps order messages ≥ 1/pacing (25 ms) apart, and back-to-back trials would otherwise
measure that wait. Daemon logs go to a file at INFO, as under journald.

Start-up row: a fresh simulator whose answers to the first positions / account-summary polls are
held 1 s (a slow gateway), a daemon with a manual cancel-all requested before `start()`; measured
from the end of the connection (the daemon's `_after_connect`, `time.time()`) to the simulator's
receive stamp of the msg-58 frame. Before issue 14 the cancel waited for the whole first poll round.
"""
    headers = ["", "trials / min", "p50", "p90", "p99", "max", "target"]
    return Section("2. Trigger to wire (breaching P&L → reqGlobalCancel)", method, headers, rows, notes)
