"""Bench 7: bot silent → global cancel on the wire (dead-man's switch; DESIGN.md: limit + ≤ 1 s)."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from pathlib import Path

from tests.bench.harness import (
    ACCOUNT,
    ConfigSpec,
    Section,
    config_text,
    fmt_ms,
    median,
    percentile,
    start_daemon,
    verdict,
    wait_for,
)
from watchdog.bots.ping import ping
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Action
from watchdog.sim import Simulator

GLOBAL_CANCEL = 58  # reqGlobalCancel
LIMIT = 1.0  # seconds: the rule's silence limit
EVERY = 0.25  # seconds between the bot's heartbeats
TARGET = 1.0  # at most this long after the limit
TOKEN = "bench-heartbeat-token-0123456789"
FLOOD_TARGET = 0.050  # a manual kill's global cancel on the wire within this while the listener is flooded
# A connect-only client as fast as it can (non-blocking connects, closed in batches): the review's
# flood of plain TCP connections to the heartbeat listener. Prints connections attempted per second.
FLOOD = """
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end, n, open_ = time.monotonic() + seconds, 0, []
while time.monotonic() < end:
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    open_.append(s)
    n += 1
    if len(open_) > 200:
        for x in open_[:100]:
            x.close()
        del open_[:100]
print(int(n / seconds))
"""
RULES = f"""
  - name: bot-silent
    when: "bot_silence > {LIMIT:g}s"
    bot: bench
    action: cancel_all
"""


class Bot:
    """An in-process bot heartbeating over real HTTP; `die()` stops it as a crash would (no /stop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.last = math.nan  # time.time() right after the last accepted heartbeat (204)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            sent = time.time()
            code = await asyncio.to_thread(ping, self.url, "bench", TOKEN, timeout=2.0)
            if code == 204:
                self.last = sent  # the receiver stamps it between these two: take the earlier
            await asyncio.sleep(EVERY)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def die(self) -> float:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.last


async def manual_kill(sim: Simulator, daemon: Daemon, client_id: int) -> float:
    """Seconds from start_kill() to reqGlobalCancel arriving at the simulator (then reset)."""
    before = sum(1 for f in sim.received(client_id) if f.msg_id == GLOBAL_CANCEL)
    frames: list[float] = []

    def arrived() -> bool:
        frames[:] = [f.time for f in sim.received(client_id) if f.msg_id == GLOBAL_CANCEL]
        return len(frames) > before

    started = time.time()
    daemon.start_kill(Action.CANCEL_ALL, "manual:bench", reason="bench")
    await wait_for(arrived, 5, "reqGlobalCancel", interval=0.001)
    took = frames[before] - started
    await daemon.wait_for_kills(timeout=15)
    await wait_for(lambda: not daemon.kill_in_progress, 15, "the kill to finish")
    daemon.c.killswitch.reset("bench: next trial", who="bench")
    return took


async def flooded_kills(
    sim: Simulator, daemon: Daemon, client_id: int, port: int, trials: int
) -> tuple[list[float], list[float], int]:
    """Manual kills without, then during, a connect-only flood of the heartbeat listener."""
    quiet = [await manual_kill(sim, daemon, client_id) for _ in range(trials)]
    seconds = 2.0 + 0.2 * trials
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD, str(port), f"{seconds:g}", stdout=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.sleep(1.0)  # let the flood build up (a pacing of the bench, not a sync point)
        flooded = []
        for _ in range(trials):
            flooded.append(await manual_kill(sim, daemon, client_id))
            await asyncio.sleep(0.05)
        out, _ = await asyncio.wait_for(flood.communicate(), seconds + 10)
    finally:
        if flood.returncode is None:
            flood.kill()
            await flood.wait()
    return quiet, flooded, int(out.decode().strip() or 0)


def _state(daemon: Daemon) -> str:
    return next((s.state for s in daemon.c.memory.status() if s.rule == "bot-silent"), "none")


async def one_trial(sim: Simulator, daemon: Daemon, bot: Bot, client_id: int) -> float:
    """Seconds from the bot's last accepted heartbeat to reqGlobalCancel arriving at the simulator."""
    bot.start()
    await wait_for(lambda: _state(daemon) == "ok", 10, "the bot heartbeating")
    await asyncio.sleep(EVERY * 2)  # a few heartbeats, as a live bot sends them
    before = sum(1 for f in sim.received(client_id) if f.msg_id == GLOBAL_CANCEL)
    last = await bot.die()
    frames: list[float] = []

    def arrived() -> bool:
        frames[:] = [f.time for f in sim.received(client_id) if f.msg_id == GLOBAL_CANCEL]
        return len(frames) > before

    await wait_for(arrived, LIMIT + 5, "reqGlobalCancel", interval=0.001)
    took = frames[before] - last
    await daemon.wait_for_kills(timeout=15)
    await wait_for(lambda: not daemon.kill_in_progress, 15, "the kill to finish")
    daemon.c.killswitch.reset("bench: next trial", who="bench")
    return took


async def run(root: Path, *, trials: int) -> Section:
    sim = Simulator(accounts=(ACCOUNT,))
    sim.set_session("regular")
    await sim.start()
    daemon: Daemon | None = None
    got: list[float] = []
    try:
        spec = ConfigSpec(port=sim.port, state_dir=root / "state", rules=RULES)
        bots = f"""
bots:
  listen: 127.0.0.1:0
  heartbeats:
    - name: bench
      token: {TOKEN}
"""
        path = root / "rules.yaml"
        path.write_text(config_text(spec).replace("\nrules:", bots + "rules:", 1))
        path.chmod(0o600)
        daemon = await start_daemon(path)
        assert daemon.c.bots is not None
        bot = Bot(f"http://127.0.0.1:{daemon.c.bots.port}")
        started = time.monotonic()
        for _ in range(trials):
            got.append(await one_trial(sim, daemon, bot, spec.client_id))
        elapsed = time.monotonic() - started
        await asyncio.to_thread(ping, bot.url, "bench", TOKEN, stop=True)  # the bot's rule rests meanwhile
        quiet, flooded, rate = await flooded_kills(sim, daemon, spec.client_id, daemon.c.bots.port, trials)
    finally:
        if daemon is not None:
            await asyncio.wait_for(daemon.stop(), 20)
        await asyncio.wait_for(sim.stop(), 10)
    over = [g - LIMIT for g in got]
    rows = [
        [
            f"last heartbeat → reqGlobalCancel ({len(got)} trials)",
            fmt_ms(median(got)),
            fmt_ms(percentile(got, 90)),
            fmt_ms(max(got)),
            "",
        ],
        [
            f"of which after the {LIMIT:g} s silence limit",
            fmt_ms(median(over)),
            fmt_ms(percentile(over, 90)),
            fmt_ms(max(over)),
            "limit + ≤ 1 s: " + verdict(max(over) <= TARGET),
        ],
    ]
    method = f"""
One simulator, one in-process daemon (scheduler on, default polling), a rule `bot_silence > {LIMIT:g}s` on
bot `bench` with `action: cancel_all`, the receiver on an ephemeral loopback port. A bot task in the
same process heartbeats over real HTTP (`ibkr-watchdog ping`'s client, urllib in a thread) every
{EVERY * 1000:.0f} ms, then dies as a crash would (no `/stop`). Measured: the simulator's receive stamp of
the msg-58 frame minus the time the last accepted heartbeat was sent (both `time.time()`). The daemon
wakes for the limit itself (a timer set by each heartbeat), not at its next evaluation tick. Between
trials: the kill finishes, the latch is reset, the bot starts again and the rule reads ok.
"""
    rows += [
        [
            f"manual kill → reqGlobalCancel, listener idle ({len(quiet)} trials)",
            fmt_ms(median(quiet)),
            fmt_ms(percentile(quiet, 90)),
            fmt_ms(max(quiet)),
            "",
        ],
        [
            f"manual kill → reqGlobalCancel, listener flooded ({len(flooded)} trials, ~{rate:,} conn/s)",
            fmt_ms(median(flooded)),
            fmt_ms(percentile(flooded, 90)),
            fmt_ms(max(flooded)),
            f"≤ {FLOOD_TARGET * 1000:.0f} ms: " + verdict(max(flooded) <= FLOOD_TARGET),
        ],
    ]
    method += """
Then the same daemon's manual kill (`start_kill(cancel_all)`, as SIGUSR1 starts it) from the call to the
simulator's receive stamp of msg 58: first with the listener idle, then while another process floods the
heartbeat listener with plain TCP connections as fast as it can (no request, non-blocking connects;
its rate is in the row). The listener accepts at most 16 connections a loop turn and 1,000 a second
(`watchdog/bots/listener.py`), so the flood costs the kill path's loop little; the bots' silence kills
are held meanwhile (docs/rules.md). The flood shares the machine's CPUs with the daemon.
"""
    notes = [f"{len(got)} trials in {elapsed:.1f} s (each includes the silence limit and the reset)."]
    headers = ["", "p50", "p90", "max", "target"]
    return Section(
        "7. Bot silent → global cancel on the wire (dead-man's switch)", method, headers, rows, notes
    )
