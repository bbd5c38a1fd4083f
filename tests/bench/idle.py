"""Bench 4: idle cost of a real daemon process (`python -m watchdog run`): RSS and CPU over a quiet spell."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.harness import Section, stock_universe, verdict, wait_for
from watchdog.config.schema import KillConfig
from watchdog.kill.readiness import MarketSessions, plan_readiness, readiness_json
from watchdog.market_hours import is_regular_hours
from watchdog.model import AccountState, ContractRef, GatewayStatus, Health, Position, Quote, Snapshot
from watchdog.sim import Simulator
from watchdog.state.store import StateStore

REPO = Path(__file__).resolve().parents[2]
ACCOUNTS = ("DU111111", "DU222222")
TARGET_RSS_MB = 80.0
TARGET_CPU_PCT = 0.5


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_seconds: float  # utime + stime
    rss_mb: float
    hwm_mb: float
    at: float  # monotonic


def sample(pid: int) -> ProcSample:
    """utime+stime from /proc/PID/stat, VmRSS and VmHWM from /proc/PID/status."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces
    ticks = int(rest[11]) + int(rest[12])  # fields 14 and 15
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), rss / 1024, hwm / 1024, time.monotonic())


def repo_config(port: int, state_dir: Path, readiness_interval: str | None = None) -> str:
    """The repo's rules.yaml as shipped, pointed at the simulator, a free metrics port, a temp state dir.

    `readiness_interval` replaces `kill.readiness_interval` (e.g. "5s"); None keeps the shipped value.
    """
    text = (REPO / "rules.yaml").read_text()
    text = re.sub(r"(?m)^(  port: )4002\b", rf"\g<1>{port}", text)
    text = re.sub(r"(?m)^(  port: )9108\b", r"\g<1>0", text)
    text = re.sub(r"(?m)^state_dir: \S+", f"state_dir: {state_dir}", text)
    if readiness_interval is not None:
        text, n = re.subn(r"(?m)^(  readiness_interval: )\S+", rf"\g<1>{readiness_interval}", text)
        assert n == 1, "rules.yaml should set kill.readiness_interval once"
    return text


def book(sim: Simulator, positions: int, orders: int) -> None:
    per_account = positions // len(ACCOUNTS)
    for i in range(per_account):
        for account in ACCOUNTS:
            sim.set_position(account, 910_000 + i, 10 + i % 5)
    for i in range(orders):
        account = ACCOUNTS[i % len(ACCOUNTS)]
        # resting far below the market: working orders that never fill
        sim.place_order_as(7, account, 910_000 + i % per_account, "BUY", 1, "LMT", lmt_price=1.0)


async def measure(
    root: Path, *, seconds: float, positions: int, orders: int, readiness_interval: str | None
) -> tuple[ProcSample, ProcSample, int | None, int]:
    """One daemon process over a quiet spell: (first, last samples, exit code, plans in the window)."""
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    sim = Simulator(accounts=ACCOUNTS, instruments=stock_universe(positions // len(ACCOUNTS)))
    sim.set_session("regular")
    book(sim, positions, orders)
    await sim.start()
    state_dir = root / "idle-state"
    cfg = root / "idle-rules.yaml"
    cfg.write_text(repo_config(sim.port, state_dir, readiness_interval))
    cfg.chmod(0o600)
    log = (root / "idle-daemon.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", "run", "--config", str(cfg),
        stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=str(REPO),
    )  # fmt: skip
    plans: list[float] = []
    try:
        store = StateStore(state_dir, time.time)

        def settled() -> bool:
            status = store.read_status() if (state_dir / "status.json").exists() else None
            return bool(status and status.get("positions") == positions and status["gateway"]["connected"])

        def planned() -> float | None:
            plan = store.read_readiness() if (state_dir / "readiness.json").exists() else None
            return plan.get("planned_at") if plan else None

        await wait_for(settled, 30, "the daemon's first complete status", interval=0.1)
        await asyncio.sleep(min(5.0, seconds / 4))  # start-up work (imports, first polls) is not idle
        first = sample(proc.pid)
        start_plan = planned()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(
                min(1.0, left)
            )  # a look at readiness.json once a second: costs the daemon nothing
            at = planned()
            if at is not None and at != start_plan and at not in plans:
                plans.append(at)
        last = sample(proc.pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
        await asyncio.wait_for(sim.stop(), 10)
    return first, last, proc.returncode, len(plans)


def plan_cost(positions: int, rounds: int = 20) -> float:
    """Median seconds of one readiness plan + its JSON over `positions` positions, in this process."""
    now = time.time()
    book_ = tuple(
        Position(
            account=ACCOUNTS[i % 2],
            contract=ContractRef(con_id=910_000 + i, symbol=f"BX{i:04d}", sec_type="STK"),
            quantity=10 + i % 5,
            market_price=50.0,
        )
        for i in range(positions)
    )
    snap = Snapshot(
        taken_at=now,
        accounts={a: AccountState(account=a) for a in ACCOUNTS},
        positions=book_,
        gateway=GatewayStatus(health=Health.HEALTHY, connected=True),
        positions_as_of=now,
    )
    sessions = MarketSessions(lambda: is_regular_hours)
    quote = Quote(price=50.0, source="portfolio", as_of=now)
    samples = []
    for _ in range(rounds + 1):
        t = time.perf_counter()
        r = plan_readiness(snap, KillConfig(), now=now, accounts=ACCOUNTS, table=sessions,
                           details=lambda _p: None, quote=lambda _p: quote, stale_after=11.0)  # fmt: skip
        assert r is not None
        readiness_json(r)
        samples.append(time.perf_counter() - t)
    return sorted(samples[1:])[rounds // 2]


ROWS = (("60s", "every 60 s (shipped)"), ("5s", "every 5 s"))


async def run(root: Path, *, seconds: float, positions: int = 50, orders: int = 20) -> Section:
    rows = []
    notes = []
    cpu: dict[str, float] = {}
    for interval, label in ROWS:
        first, last, code, plans = await measure(
            root / f"readiness-{interval}", seconds=seconds, positions=positions, orders=orders,
            readiness_interval=interval,
        )  # fmt: skip
        wall = last.at - first.at
        cpu_pct = (last.cpu_seconds - first.cpu_seconds) / wall * 100
        cpu[interval] = cpu_pct
        rows.append(
            [
                label,
                f"{wall:.0f} s",
                str(plans),
                f"{last.rss_mb:.1f} MB",
                f"{last.hwm_mb:.1f} MB",
                f"{cpu_pct:.2f} %",
                f"{last.cpu_seconds - first.cpu_seconds:.2f} s",
                f"RSS ≤ {TARGET_RSS_MB:.0f} MB: {verdict(last.rss_mb <= TARGET_RSS_MB)}; "
                f"CPU ≤ {TARGET_CPU_PCT} %: {verdict(cpu_pct <= TARGET_CPU_PCT)}",
            ]
        )
        notes.append(f"readiness {label}: daemon exit code after SIGTERM: {code}")
        if last.rss_mb > TARGET_RSS_MB:
            notes.append(f"target missed: RSS {last.rss_mb:.1f} MB > {TARGET_RSS_MB:.0f} MB")
    costs = {n: plan_cost(n) for n in (positions, 500)}
    notes.append(
        "one readiness plan (netting, closing orders, market sessions, JSON) in-process, median: "
        + ", ".join(f"{n} positions {c * 1000:.2f} ms" for n, c in costs.items())
        + f" — at the shipped 60 s interval that is {costs[positions] / 60 * 100:.4f} % of a core for "
        f"{positions} positions. The 5 s row minus the 60 s row: {cpu['5s'] - cpu['60s']:+.2f} points of a "
        "core (two separate daemon runs on the same machine)"
    )
    missed = [f"readiness {label}: {cpu[i]:.2f} %" for i, label in ROWS if cpu[i] > TARGET_CPU_PCT]
    if missed:
        notes.append(
            f"target missed ({'; '.join(missed)} of a core > {TARGET_CPU_PCT} %). "
            "Where it goes (cProfile of the same set-up, 40 s, after the fixes of this run: "
            "evaluations only on changed streamed values or the 1 s timer, rule metrics cached, "
            "status.json at most once a second, routine position polls read the live subscription): "
            "~60 inbound messages a second to decode in ib_async — most of them the per-position "
            "reqPnLSingle streams that value the second account's 25 positions (the portfolio "
            "subscription covers only one account) and the 2 s reqAllOpenOrders poll of 20 orders — "
            "and about one evaluation a second. Longer order/position poll intervals or fewer "
            "per-position value streams would trade detection speed for CPU; the defaults keep detection. "
            "Readiness is not where it goes (the plan cost above)."
        )
    method = f"""
A real daemon process (`python -m watchdog run --config …`) with the repo's `rules.yaml` as shipped
(heartbeat 1 s / 1.5 s, P&L subscription check 1 s, summary 5 s, positions and orders 2 s, executions
5 s, /metrics on, kill readiness every 60 s), pointed at a simulator in the bench process holding
{positions} positions (two accounts) and {orders} working orders of another client; a second run with
`kill.readiness_interval: 5s` (12× the shipped rate). After the first complete status and a short settling
time, CPU (utime + stime from `/proc/PID/stat`) and memory (`VmRSS`, `VmHWM` from `/proc/PID/status`) are
sampled {seconds:g} s apart; "plans" counts the readiness plans written to `readiness.json` in the window.
The simulator's own cost is not counted.
"""
    headers = ["readiness", "window", "plans", "RSS (end)", "peak RSS", "CPU", "CPU time", "target"]
    return Section("4. Idle cost (real daemon process)", method, headers, rows, notes)
