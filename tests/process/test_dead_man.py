"""The dead-man's switch with real processes: a daemon, bots heartbeating over HTTP, the simulator.

A bot killed with SIGKILL has its orders cancelled within its silence limit + 1 s; a bot that stops
cleanly (`/stop`) is left alone; a wrong token is refused, counted and changes nothing; 2,000 idle
connections to the listener delay neither a manual kill nor the heartbeat to the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.bots.conftest import request
from tests.process.conftest import (
    GLOBAL_CANCEL,
    REPO,
    DaemonProcess,
    Launcher,
    NotifySocket,
    free_port,
    metric,
    scrape,
    scrape_until,
    start_ready,
    until,
    watched_orders,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

ALPHA, BETA = "alpha-token-0123456789abcdef", "beta-token-0123456789abcdef"
SILENCE = 2.0  # seconds: the bots' silence limit in these tests
CURRENT_TIME = 49  # reqCurrentTime: the watchdog's heartbeat to the gateway
BOT = ("-m", "watchdog.bots.example")  # README's heartbeat task as a bot process


def dead_man_config(tmp_path: Path, port: int, listen: int, metrics: int) -> Path:
    for name, token in (("alpha", ALPHA), ("beta", BETA)):
        (tmp_path / f"{name}.token").write_text(token)
        (tmp_path / f"{name}.token").chmod(0o600)
    bots = f"""
bots:
  listen: 127.0.0.1:{listen}
  heartbeats:
    - name: alpha
      token: file:{tmp_path / "alpha.token"}
      accounts: [DU111111]
    - name: beta
      token: file:{tmp_path / "beta.token"}
      accounts: [DU222222]
"""
    rules = "".join(
        f"""
  - name: {name}-silent
    when: "bot_silence > {SILENCE:g}s"
    bot: {name}
    action: cancel_all
"""
        for name in ("alpha", "beta")
    )
    return write_config(tmp_path, port, rules, bots, metrics_port=metrics)


class Bot:
    """A heartbeat_bot.py process; `beats` counts the heartbeats it saw accepted."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.beats = 0
        self.last_beat = math.nan  # time.time() of the last accepted heartbeat
        self.stopped = False
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            if line.startswith(b"beat"):
                self.beats += 1
                self.last_beat = time.time()
            elif line.startswith(b"stopped"):
                self.stopped = True

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 10)
        await asyncio.wait_for(asyncio.gather(self._reader, return_exceptions=True), 5)


@pytest.fixture
async def bots(tmp_path: Path) -> AsyncIterator[Callable[[str, int], object]]:
    started: list[Bot] = []

    async def start(name: str, listen: int, every: float = 0.2) -> Bot:
        url, token_file = f"http://127.0.0.1:{listen}", str(tmp_path / f"{name}.token")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *BOT, url, name, token_file, str(every), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        bot = Bot(proc)
        started.append(bot)
        await until(lambda: bot.beats >= 2, 10, f"{name}'s first heartbeats")
        return bot

    try:
        yield start  # type: ignore[misc]
    finally:
        for bot in started:
            await bot.close()


async def started_daemon(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> tuple[DaemonProcess, int, int]:
    listen, metrics = free_port(), free_port()
    d = await start_ready(launch, dead_man_config(tmp_path, sim.port, listen, metrics), notify)
    return d, listen, metrics


def kills(d: DaemonProcess) -> list[str]:
    return [str(r.details["trigger"]) for r in d.events("kill.triggered")]


async def test_a_bot_killed_with_sigkill_has_its_orders_cancelled_within_the_silence_limit_plus_1s(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher, bots: Callable[..., object]
) -> None:
    assert {o.client_id for o in watched_orders(sim)} == {0, 7, 12}
    d, listen, metrics = await started_daemon(tmp_path, sim, notify, launch)
    alpha: Bot = await bots("alpha", listen)  # type: ignore[misc]
    await scrape_until(
        metrics, lambda t: (metric(t, "ibkr_watchdog_bot_up", {"bot": "alpha"}) or 0) == 1, 10, "alpha up"
    )

    alpha.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await until(lambda: watched_orders(sim) == [], SILENCE + 1.0, "no working orders (silence limit + 1 s)")
    took = time.monotonic() - killed_at

    assert kills(d) == ["rule:alpha-silent"]
    triggered = d.events("kill.triggered")[0]
    # never before the limit: the kill came at least SILENCE after the bot's last accepted heartbeat
    assert triggered.ts - alpha.last_beat >= SILENCE - 0.05, (triggered.ts, alpha.last_beat)
    assert triggered.details["accounts"] == ["DU111111"]  # the accounts alpha trades
    assert took <= SILENCE + 1.0
    # the evaluation sets the gauges after the kill has its cancel on the wire: wait for them
    up = {"bot": "alpha"}
    text = await scrape_until(metrics, lambda t: metric(t, "ibkr_watchdog_bot_up", up) == 0, 5, "alpha down")
    assert metric(text, "ibkr_watchdog_bot_heartbeats_total", up) == alpha.beats
    assert await d.stop() == 0


async def test_a_clean_stop_never_kills_and_a_wrong_token_is_refused_counted_and_changes_nothing(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher, bots: Callable[..., object]
) -> None:
    orders = watched_orders(sim)
    d, listen, metrics = await started_daemon(tmp_path, sim, notify, launch)

    # a wrong token for a bot that never heartbeated: 401, counted, and no effect at all
    code, _ = await request(listen, "/v1/heartbeat/alpha", token=BETA)
    assert code == 401
    text = await scrape_until(
        metrics,
        lambda t: metric(t, "ibkr_watchdog_bot_heartbeat_rejected_total", {"reason": "unauthorized"}) == 1,
        5,
        "the refusal counted",
    )
    assert metric(text, "ibkr_watchdog_bot_heartbeats_total", {"bot": "alpha"}) == 0
    assert math.isnan(
        metric(text, "ibkr_watchdog_bot_last_heartbeat_timestamp_seconds", {"bot": "alpha"}) or 0
    )

    beta: Bot = await bots("beta", listen)  # type: ignore[misc]
    beta.proc.send_signal(signal.SIGTERM)  # a planned stop: /stop, then exit
    assert await asyncio.wait_for(beta.proc.wait(), 10) == 0 and beta.stopped
    stopped_at = time.monotonic()
    await scrape_until(
        metrics,
        lambda t: (
            metric(
                t, "ibkr_watchdog_rule_state", {"rule": "beta-silent", "account": "all", "state": "suspended"}
            )
            == 1
        ),
        5,
        "beta's rule at rest",
    )
    # well past the silence limit: still no kill, every order still working, no alert-worthy state
    await until(lambda: time.monotonic() - stopped_at > SILENCE + 1.5, SILENCE + 3, "the limit to pass")
    await d.next_status()
    assert kills(d) == []
    assert len(watched_orders(sim)) == len(orders)
    text = scrape(metrics)
    assert math.isnan(metric(text, "ibkr_watchdog_bot_up", {"bot": "beta"}) or 0)  # not armed, not "down"
    assert metric(text, "ibkr_watchdog_tripped") == 0
    for secret in (ALPHA, BETA):
        assert secret not in d.stderr
    assert await d.stop() == 0


async def test_2000_idle_connections_delay_neither_a_manual_kill_nor_the_gateway_heartbeat(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher, bots: Callable[..., object]
) -> None:
    d, listen, metrics = await started_daemon(tmp_path, sim, notify, launch)
    alpha: Bot = await bots("alpha", listen, 0.2)  # type: ignore[misc]
    idle: list[asyncio.StreamWriter] = []
    try:
        for _ in range(2000):
            with contextlib.suppress(ConnectionError):
                idle.append((await asyncio.wait_for(asyncio.open_connection("127.0.0.1", listen), 5))[1])
        # the gateway heartbeat (every 200 ms) keeps going while the flood sits there
        before = sum(1 for f in sim.received(99) if f.msg_id == CURRENT_TIME)
        await until(
            lambda: sum(1 for f in sim.received(99) if f.msg_id == CURRENT_TIME) >= before + 3,
            1.5,
            "three gateway heartbeats",
        )
        # the bot's heartbeats still get through (a new connection evicts an idle one)
        beats = alpha.beats
        await until(lambda: alpha.beats >= beats + 2, 2, "alpha's heartbeats through the flood")
        # and a manual kill goes on the wire at once
        sent = time.time()
        d.send(signal.SIGUSR2)
        await until(
            lambda: any(f.msg_id == GLOBAL_CANCEL and f.time >= sent for f in sim.received(99)),
            1.0,
            "the global cancel of the manual kill",
        )
        text = scrape(metrics)
        assert (
            metric(text, "ibkr_watchdog_bot_heartbeat_rejected_total", {"reason": "overloaded"}) or 0
        ) >= 1900
    finally:
        for w in idle:
            w.close()
    await until(lambda: bool(d.events("kill.finished")), 15, "the kill to finish")
    assert kills(d) == ["manual:SIGUSR2"] and watched_orders(sim) == []
    assert await d.stop() == 0
