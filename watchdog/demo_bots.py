"""`ibkr-watchdog demo --scenario dead-bot`: two bot processes heartbeat; one stops cleanly, one is killed -9.

The repo's rules.yaml gets two bots (tokens made up for the run, in the temporary state dir) and a
`bot_silence > 3s` rule each. beta stops cleanly first (`POST …/stop`): nothing happens, its orders
keep working. Then alpha is killed with SIGKILL: after its silence limit the watchdog cancels. The
cancel is IB's global cancel, which takes every working order of the gateway session (beta's too).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from watchdog.config.bots import BotHeartbeat, BotsConfig
from watchdog.config.schema import Config, Rule
from watchdog.model import Action, KillOutcome, KillReport, TradingState

if TYPE_CHECKING:  # imported lazily at run time, like in demo.py
    from watchdog.daemon.lifecycle import Daemon
    from watchdog.sim import Simulator


class DemoRun(Protocol):
    """What the script needs of `watchdog.demo.DemoRun` (a Protocol: demo imports this module)."""

    sim: Simulator
    daemon: Daemon

    def say(self, text: str) -> None: ...
    async def until(self, predicate: Callable[[], bool], timeout: float, what: str) -> bool: ...
    async def kill_report(self, timeout: float) -> KillReport | None: ...


SILENCE = 3.0  # seconds: the demo bots' silence limit
EVERY = 0.5  # seconds between heartbeats
BOTS = (("alpha", "DU111111", 7), ("beta", "DU222222", 8))  # name, account, TWS API client id


def with_bots(config: Config, state_dir: Path) -> Config:
    heartbeats = []
    for name, account, _ in BOTS:
        token = secrets.token_hex(16)
        path = state_dir / f"{name}.token"
        path.write_text(token)
        path.chmod(0o600)
        heartbeats.append(BotHeartbeat(name=name, token=token, accounts=(account,)))
    rules = tuple(
        Rule.model_validate(
            {
                "name": f"{name}-silent",
                "when": f"bot_silence > {SILENCE:g}s",
                "bot": name,
                "action": "cancel_all",
            }
        )
        for name, _, _ in BOTS
    )
    bots = BotsConfig(listen="127.0.0.1:0", heartbeats=tuple(heartbeats))
    return config.model_copy(update={"bots": bots, "rules": config.rules + rules})


async def dead_bot(run: DemoRun) -> bool:
    bots = run.daemon.c.bots
    assert bots is not None
    url = f"http://127.0.0.1:{bots.port}"
    state_dir = Path(run.daemon.config.state_dir)
    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name, account, client_id in BOTS:
            for i in range(3):
                run.sim.place_order_as(
                    client_id=client_id, account=account, symbol="AAPL", action="BUY", quantity=10,
                    order_type="LMT", lmt_price=90.0 + i,
                )  # fmt: skip
            procs[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "watchdog.bots.example", url, name, str(state_dir / f"{name}.token"),
                str(EVERY), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            pid = procs[name].pid
            run.say(
                f"bot {name} (pid {pid}, client {client_id}) trades {account}, heartbeats every {EVERY:g}s"
            )

        def heard(name: str) -> bool:
            status = bots.registry.get(name)
            return status is not None and status.last_seen is not None

        if not await run.until(lambda: all(heard(n) for n, _, _ in BOTS), 10.0, "both bots' heartbeats"):
            return False
        orders = len(run.sim.open_orders())
        run.say(f"simulator: {orders} working orders; alpha-silent, beta-silent: bot_silence > {SILENCE:g}s")

        run.say("beta shuts down cleanly (SIGTERM → POST /v1/heartbeat/beta/stop)")
        procs["beta"].send_signal(signal.SIGTERM)
        await asyncio.wait_for(procs["beta"].wait(), 10)
        stopped = time.monotonic()
        await run.until(
            lambda: time.monotonic() - stopped > SILENCE + 1.5, SILENCE + 3, "beta's limit to pass"
        )
        quiet = not run.daemon.kill_reports and len(run.sim.open_orders()) == orders
        outcome = "no kill" if quiet else "a kill?!"
        run.say(f"{SILENCE + 1.5:g}s later: {outcome}, {len(run.sim.open_orders())} working orders")

        status = bots.registry.get("alpha")
        last = status.last_seen if status is not None and status.last_seen is not None else time.time()
        run.say(f"alpha crashes: kill -9 {procs['alpha'].pid}")
        procs["alpha"].send_signal(signal.SIGKILL)
        report = await run.kill_report(timeout=SILENCE + 15)
        if report is None:
            return False
        left = [o for o in run.sim.open_orders() if o.account in report.accounts]
        run.say(
            f"kill {report.kill_id} ({report.trigger}, {report.action.value}) started "
            f"{report.started - last:.2f}s after alpha's last heartbeat: {report.outcome.value}, "
            f"{len(left)} working orders left in {', '.join(report.accounts)}"
        )
        tripped = run.daemon.c.store.trading_state() is TradingState.TRIPPED
        return (
            quiet
            and tripped
            and report.trigger == "rule:alpha-silent"
            and report.action is Action.CANCEL_ALL
            and report.outcome is KillOutcome.FLAT
            and not left
        )
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
