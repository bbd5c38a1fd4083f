"""`ibkr-watchdog demo`: the simulator and the daemon in one process, a scripted problem, a timeline.

Exit 0 only when the scenario's expected outcome was observed (for a kill: verified flat).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from watchdog.config.schema import Config
from watchdog.model import Action, Health, KillOutcome, KillReport, TradingState
from watchdog.outputs.logging_setup import quiet_scheduler

if TYPE_CHECKING:  # imported lazily at run time: `ibkr-watchdog --help` stays light
    from watchdog.daemon.lifecycle import Daemon
    from watchdog.sim import Simulator

DEMO_TIMEOUT = 50.0  # the whole demo finishes in under a minute
ACCOUNT = "DU111111"


class Timeline(logging.Handler):
    """Prints the daemon's notable log lines as a readable timeline with elapsed seconds."""

    SHOWN = (
        "watchdog.daemon.lifecycle",
        "watchdog.gateway.client",
        "watchdog.kill.switch",
        "watchdog.rules.evaluate",
        "watchdog.bots",
        "watchdog.demo",
    )

    def __init__(self, out: TextIO, start: float) -> None:
        super().__init__(level=logging.INFO)
        self.out = out
        self.start = start

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(self.SHOWN) and record.levelno < logging.WARNING:
            return
        self.line(record.getMessage(), record.levelname)

    def line(self, text: str, level: str = "INFO") -> None:
        mark = {"WARNING": "!", "ERROR": "‼", "CRITICAL": "‼"}.get(level, "·")
        self.out.write(f"  {time.monotonic() - self.start:6.2f}s {mark} {text}\n")
        self.out.flush()


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    script: Callable[[DemoRun], Awaitable[bool]]
    # adds what the scenario needs to the repo's rules.yaml (e.g. the bots of the dead-man demo)
    configure: Callable[[Config, Path], Config] | None = None


class DemoRun:
    """Holds the simulator, the daemon and the timeline for one demo scenario."""

    def __init__(self, sim: Simulator, daemon: Daemon, timeline: Timeline) -> None:
        self.sim = sim
        self.daemon = daemon
        self.timeline = timeline

    def say(self, text: str) -> None:
        self.timeline.line(text)

    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.timeline.line(f"gave up waiting for {what}", "ERROR")
                return False
            await asyncio.sleep(0.05)
        return True

    async def kill_report(self, timeout: float) -> KillReport | None:
        """The first finished kill of this run (waits for it)."""
        if await self.until(lambda: bool(self.daemon.kill_reports), timeout, "a kill report"):
            return self.daemon.kill_reports[0]
        return None

    def verified_flat(self, report: KillReport | None) -> bool:
        if report is None:
            self.say("no kill report")
            return False
        self.say(
            f"kill {report.kill_id}: {report.outcome.value} after {report.duration:.2f}s, "
            f"{len(report.cancelled_orders)} orders cancelled, {len(report.close_orders)} closing orders"
        )
        scope = set(report.accounts)
        positions = [p for p in self.sim.positions() if p.quantity and p.account in scope]
        orders = [o for o in self.sim.open_orders() if o.account in scope]
        self.say(
            f"simulator truth for {', '.join(sorted(scope))}: "
            f"{len(positions)} open positions, {len(orders)} working orders"
        )
        tripped = self.daemon.c.store.trading_state() is TradingState.TRIPPED
        self.say(f"latch: {'TRIPPED' if tripped else 'armed'} (persisted in {self.daemon.config.state_dir})")
        return report.outcome is KillOutcome.FLAT and not positions and not orders and tripped


async def _loss(run: DemoRun) -> bool:
    run.say(f"scripted loss: daily P&L of {ACCOUNT} slides towards the -2,500 USD limit")
    for pnl in (-500.0, -1200.0, -2100.0, -2700.0, -3100.0):
        run.sim.set_pnl(ACCOUNT, daily=pnl)
        run.say(f"sim: daily P&L {pnl:,.0f} USD")
        await asyncio.sleep(0.6)
        if run.daemon.kill_in_progress:
            break
    return run.verified_flat(await run.kill_report(timeout=20.0))


async def _manual(run: DemoRun) -> bool:
    run.say("operator sends SIGUSR1 (systemctl kill -s SIGUSR1 --kill-whom=main ibkr-watchdog)")
    os.kill(os.getpid(), __import__("signal").SIGUSR1)
    return run.verified_flat(await run.kill_report(timeout=20.0))


async def _half_open(run: DemoRun) -> bool:
    run.say("sim: gateway goes half-open (socket open, nothing answered)")
    t0 = time.monotonic()
    run.sim.faults.mute()
    ok = await run.until(lambda: run.daemon.c.gateway.status().health is Health.DOWN, 10.0, "DOWN")
    if ok:
        run.say(f"watchdog declared the gateway DOWN after {time.monotonic() - t0:.2f}s")
    run.sim.faults.unmute()
    run.say("sim: gateway answers again")
    back = await run.until(lambda: run.daemon.c.gateway.is_connected(), 15.0, "reconnect")
    if back:
        run.say("watchdog reconnected")
    return ok and back


async def _margin(run: DemoRun) -> bool:
    run.say(f"scripted margin squeeze: cushion of {ACCOUNT} falls")
    for cushion in (0.3, 0.15, 0.08, 0.04):
        run.sim.set_account_value(ACCOUNT, "Cushion", cushion)
        run.say(f"sim: cushion {cushion:.0%}")
        await asyncio.sleep(1.2)
        if run.daemon.kill_in_progress:
            break
    report = await run.kill_report(timeout=20.0)
    if report is None:
        return False
    left = [o for o in run.sim.open_orders() if o.account in report.accounts]
    run.say(f"kill {report.kill_id}: {report.outcome.value}; {len(left)} working orders left in scope")
    return report.outcome is KillOutcome.FLAT and not left


async def _runaway(run: DemoRun) -> bool:
    run.say("a runaway bot (client 7) starts firing orders")
    for i in range(80):
        run.sim.place_order_as(
            client_id=7,
            account=ACCOUNT,
            symbol="AAPL",
            action="BUY",
            quantity=1,
            order_type="LMT",
            lmt_price=100.0 + i * 0.01,
        )
        await asyncio.sleep(0.02)
        if run.daemon.kill_in_progress:
            break
    report = await run.kill_report(timeout=20.0)
    if report is None or report.action is not Action.CANCEL_ALL:
        return False
    run.say("the bot tries once more while the watchdog is tripped")
    run.sim.place_order_as(
        client_id=7,
        account=ACCOUNT,
        symbol="AAPL",
        action="BUY",
        quantity=1,
        order_type="LMT",
        lmt_price=99.0,
    )
    cleared = await run.until(lambda: not run.sim.open_orders(), 10.0, "lockout cancel")
    if cleared:
        run.say("lockout cancelled the new order")
    return report.outcome is KillOutcome.FLAT and cleared


async def _dead_bot(run: DemoRun) -> bool:
    from watchdog.demo_bots import dead_bot

    return await dead_bot(run)


def _with_bots(config: Config, state_dir: Path) -> Config:
    from watchdog.demo_bots import with_bots

    return with_bots(config, state_dir)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("loss", "daily loss limit → close all", _loss),
        Scenario("manual", "manual SIGUSR1 → close all", _manual),
        Scenario("half-open", "half-open gateway detected and recovered", _half_open),
        Scenario("margin", "margin squeeze → cancel all", _margin),
        Scenario("runaway", "runaway order loop → cancel all + lockout", _runaway),
        Scenario(
            "dead-bot",
            "a bot killed with -9 → its orders cancelled (dead-man's switch)",
            _dead_bot,
            _with_bots,
        ),
    )
}


def _demo_config(path: str | None, port: int, state_dir: str) -> Config:
    from watchdog.config.load import load_config

    cfg_path = path or str(Path.cwd() / "rules.yaml")
    config = load_config(cfg_path)
    # a reconnect attempt that starts while the simulated gateway is still mute waits this long
    gateway = config.gateway.model_copy(update={"host": "127.0.0.1", "port": port, "connect_timeout": 3.0})
    metrics = config.metrics.model_copy(update={"port": 0})
    return config.model_copy(update={"gateway": gateway, "metrics": metrics, "state_dir": state_dir})


async def run_demo(scenario: str, config_path: str | None, out: TextIO) -> int:
    from watchdog.daemon.lifecycle import Daemon
    from watchdog.daemon.wiring import build_components
    from watchdog.sim import Simulator

    chosen = SCENARIOS.get(scenario)
    if chosen is None:
        print(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    start = time.monotonic()
    timeline = Timeline(out, start)
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    for h in saved[1]:
        root.removeHandler(h)
    root.setLevel(logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.INFO)
    quiet_scheduler()
    root.addHandler(timeline)
    out.write(f"ibkr-watchdog demo — {chosen.title}\n")
    with tempfile.TemporaryDirectory(prefix="ibkr-watchdog-demo-") as state_dir:
        sim = Simulator.from_scenario("default")
        await sim.start(host="127.0.0.1", port=0)
        timeline.line(
            f"simulator listening on 127.0.0.1:{sim.port} (paper accounts {', '.join(sim.book.accounts)})"
        )
        try:
            config = _demo_config(config_path, sim.port, state_dir)
            if chosen.configure is not None:
                config = chosen.configure(config, Path(state_dir))
            daemon = Daemon(config, None, build_components(config, clock=time.time))
            await asyncio.wait_for(daemon.start(require_gateway=True), 15.0)
            port = daemon.c.metrics.port
            timeline.line(f"daemon up: metrics on http://127.0.0.1:{port}/metrics")
            run = DemoRun(sim, daemon, timeline)
            # The simulated exchange keeps its own clock: in regular session whatever the real time,
            # so the demo ends the same way on a Sunday night. The daemon asks the simulator, not the
            # calendar, whether market orders are accepted.
            sim.set_session("regular")
            daemon.c.gateway.market_hours = lambda sec_type, now: sim.session == "regular"
            timeline.line("simulated exchange: regular session (closing orders go out as market orders)")
            # signals reach the daemon as in production (SIGUSR1 → close all)
            daemon.install_signal_handlers()
            serving = asyncio.ensure_future(daemon.serve())
            try:
                ok = await asyncio.wait_for(chosen.script(run), DEMO_TIMEOUT)
            finally:
                daemon.request_stop()
                await asyncio.wait_for(serving, 5.0)
                daemon.remove_signal_handlers()
                await daemon.stop()
        finally:
            await sim.stop()
            root.removeHandler(timeline)
            root.setLevel(saved[0])
            for h in saved[1]:
                root.addHandler(h)
    out.write(("PASS" if ok else "FAIL") + f": {chosen.title} ({time.monotonic() - start:.1f}s)\n")
    return 0 if ok else 1


def demo_command(scenario: str, config_path: str | None) -> int:
    from watchdog.errors import ConfigError

    try:
        return asyncio.run(run_demo(scenario, config_path, sys.stdout))
    except ConfigError as exc:
        # the default is ./rules.yaml: the demo runs from a checkout unless --config names a file
        print(f"demo: {exc}", file=sys.stderr)
        if config_path is None:
            print("demo: run it from the repository root, or pass --config FILE", file=sys.stderr)
        return 2
    except TimeoutError:
        print("demo timed out", file=sys.stderr)
        return 1
