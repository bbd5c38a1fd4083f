"""The dead-man's switch inside the daemon (in-process, against the simulator): restart, damage, deafness."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.bots.conftest import request
from tests.daemon.conftest import DaemonFactory, until, write_config
from watchdog.bots.registry import BOTS_FILE
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.model import GatewayStatus
from watchdog.outputs.messages import format_breach
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

TOKEN = "alpha-token-0123456789abcdef"
RULES = """
  - name: alpha-silent
    when: "bot_silence > 30s"
    bot: alpha
    action: cancel_all
    unknown_after: 1h
"""


def bots_section(listen: str = "127.0.0.1:0") -> str:
    return f"""
bots:
  listen: {listen}
  heartbeats:
    - name: alpha
      token: {TOKEN}
      accounts: [DU111111]
"""


def persisted(tmp_path: Path, **record: float | None) -> None:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (state / BOTS_FILE).write_text(json.dumps({"version": 1, "bots": {"alpha": record}}))


def alpha_status(d: Daemon) -> tuple[str, str]:
    status = next(s for s in d.c.memory.status() if s.rule == "alpha-silent")
    return status.state, status.why


async def test_a_bot_that_died_while_the_watchdog_was_down_is_caught_one_limit_after_the_restart(
    tmp_path: Path, make_daemon: DaemonFactory
) -> None:
    persisted(tmp_path, last_seen=time.time() - 45.0)  # its last heartbeat, 45 s before this start
    d = await make_daemon(RULES.replace("30s", "1s"), bots_section())
    started = time.time()
    # armed from the state dir, and given one full limit from the watchdog's return: no kill yet
    assert (await d.poll_once()).kills_started == ()
    assert alpha_status(d)[0] == "ok"
    await until(lambda: time.time() - started > 1.1, 5, "the silence limit to pass")
    result = await d.poll_once()
    assert result.kills_started == ("alpha-silent",)
    (report,) = await d.wait_for_kills(timeout=15)
    assert report.accounts == ("DU111111",) and report.trigger == "rule:alpha-silent"
    # the notification names what the kill touches: the bot's accounts, not "all accounts"
    (breach,) = result.breaches
    note = format_breach(breach, now=time.time())
    assert note.title == "[BREACH] alpha-silent on bot alpha's accounts (DU111111)"
    assert "all accounts" not in note.title + note.body


async def test_silence_is_unknown_while_the_gateway_is_down_and_counts_again_from_the_reconnect(
    tmp_path: Path, make_daemon: DaemonFactory
) -> None:
    persisted(tmp_path, last_seen=time.time() - 3600.0)  # heard an hour ago, through an hour-long outage
    d = await make_daemon(RULES, bots_section())
    assert d.c.bots is not None
    down = d.c.bots.statuses(GatewayStatus(connected=False))["alpha"]
    assert down.unknown_reason.startswith("the watchdog cannot reach the gateway")
    back = d.c.bots.statuses(GatewayStatus(connected=True))["alpha"]
    # the outage is not silence: the count restarts at the reconnect, the bot has its full limit
    assert not back.unknown_reason and back.silence == 0.0
    assert back.last_seen is not None and back.last_seen < time.time() - 3000  # displayed as it was


async def test_a_bot_that_stopped_cleanly_before_the_restart_stays_disarmed(
    tmp_path: Path, make_daemon: DaemonFactory
) -> None:
    persisted(tmp_path, last_seen=None, stopped_at=time.time() - 3600.0)
    d = await make_daemon(RULES, bots_section())
    assert (await d.poll_once()).kills_started == ()
    assert alpha_status(d)[0] == "suspended"


async def test_a_heartbeat_over_http_arms_the_rule_and_a_restart_keeps_it(
    tmp_path: Path, make_daemon: DaemonFactory
) -> None:
    d = await make_daemon(RULES, bots_section())
    await d.poll_once()
    assert alpha_status(d)[0] == "unknown"  # never heard from: never a kill
    assert d.c.bots is not None
    assert (await request(d.c.bots.port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204
    await d.poll_once()
    assert alpha_status(d)[0] == "ok"
    assert d.c.metrics.registry.get_sample_value("ibkr_watchdog_bot_up", {"bot": "alpha"}) == 1
    await d.stop()
    restored = json.loads((tmp_path / "state" / BOTS_FILE).read_text())["bots"]["alpha"]
    assert restored["last_seen"] is not None and restored["stopped_at"] is None


async def test_a_damaged_heartbeat_file_never_blocks_the_start_and_is_reported(
    tmp_path: Path, make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / BOTS_FILE).write_bytes(b"\x00garbage")
    d = await make_daemon(RULES, bots_section())
    assert (await d.poll_once()).kills_started == ()
    state, why = alpha_status(d)
    assert state == "unknown" and "no heartbeat from bot alpha yet" in why
    assert "damaged" in caplog.text and (tmp_path / "state" / (BOTS_FILE + ".damaged")).exists()


async def test_a_listener_that_cannot_bind_leaves_the_bots_unknown_and_the_watchdog_running(
    tmp_path: Path, make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    persisted(tmp_path, last_seen=time.time() - 45.0)  # would fire, if the watchdog could hear at all
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        caplog.set_level(logging.ERROR)
        d = await make_daemon(RULES, bots_section(f"127.0.0.1:{taken.getsockname()[1]}"))
        result = await d.poll_once()
    assert result.kills_started == () and result.healthy
    state, why = alpha_status(d)
    assert state == "unknown" and "heartbeat listener not running" in why
    assert "heartbeat listener not running" in caplog.text


async def test_a_connection_flood_holds_the_silence_kill_until_a_whole_limit_passed_without_one(
    tmp_path: Path, make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A request can only postpone a kill: connect-only clients that evict the bot's heartbeats make
    its silence unknown (held, with the reason) until a whole silence limit passed without eviction;
    a bot that is really dead is still caught after that."""
    d = await make_daemon(RULES.replace("30s", "1s"), bots_section() + "  max_connections: 2\n")
    bots = d.c.bots
    assert bots is not None
    await d.poll_once()  # the gateway is connected: silence counts from here
    assert (await request(bots.port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204
    heard = time.monotonic()
    flood: list[asyncio.StreamWriter] = []

    async def flooding() -> None:  # a connect-only client, paced: one connection every 50 ms
        while True:
            flood.append((await asyncio.open_connection("127.0.0.1", bots.port))[1])
            await asyncio.sleep(0.05)

    flooder = asyncio.ensure_future(flooding())
    try:
        await until(lambda: time.monotonic() - heard > 1.2 and bots.receiver.evicted > 10, 5, "a flood")
        assert (await d.poll_once()).kills_started == ()  # without the hold: cancel_all here
        state, why = alpha_status(d)
        assert state == "unknown" and "heartbeat listener is flooded" in why, why
        assert d.c.metrics.registry.get_sample_value("ibkr_watchdog_bot_listener_flooded") == 1
        assert "is evicting or refusing connections" in caplog.text
    finally:
        flooder.cancel()
        await asyncio.gather(flooder, return_exceptions=True)
        for writer in flood:
            writer.close()
    assert bots.receiver.last_pressure is not None
    last_eviction = bots.receiver.last_pressure
    await until(lambda: time.monotonic() - last_eviction > 1.1, 5, "a whole limit without eviction")
    assert (await d.poll_once()).kills_started == ("alpha-silent",)  # the bot is still dead: caught
    assert d.c.metrics.registry.get_sample_value("ibkr_watchdog_bot_listener_flooded") == 0
    await d.wait_for_kills(timeout=15)


class SteppedWallClock:
    """time.time() plus a step, as after an NTP step (the monotonic clock does not move with it)."""

    def __init__(self) -> None:
        self.step = 0.0

    def __call__(self) -> float:
        return time.time() + self.step


async def stepped_daemon(tmp_path: Path, sim: Simulator, rules: str, wall: SteppedWallClock) -> Daemon:
    path = write_config(tmp_path, sim.port, rules, bots_section())
    components = build_components(
        load_config(path), clock=wall, registry=CollectorRegistry(), sd=SdNotifier(None)
    )
    d = Daemon(load_config(path), str(path), components)
    await asyncio.wait_for(d.start(require_gateway=True, schedule=False), 10)
    return d


async def test_a_wall_clock_step_forward_never_kills_a_healthy_bot(tmp_path: Path, sim: Simulator) -> None:
    wall = SteppedWallClock()
    d = await stepped_daemon(tmp_path, sim, RULES, wall)
    try:
        assert d.c.bots is not None
        await d.poll_once()
        assert (await request(d.c.bots.port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204
        wall.step = 60.0  # NTP steps the clock a minute ahead, past the 30 s limit
        assert (await d.poll_once()).kills_started == ()
        status = next(s for s in d.c.memory.status() if s.rule == "alpha-silent")
        assert status.state == "ok" and status.value is not None and status.value < 5
    finally:
        await asyncio.wait_for(d.stop(), 15)


async def test_a_wall_clock_step_back_never_spares_a_dead_bot(tmp_path: Path, sim: Simulator) -> None:
    wall = SteppedWallClock()
    d = await stepped_daemon(tmp_path, sim, RULES.replace("30s", "1s"), wall)
    try:
        assert d.c.bots is not None
        await d.poll_once()  # the gateway is connected: silence counts from here
        assert (await request(d.c.bots.port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204
        heard = time.monotonic()
        wall.step = -3600.0  # an hour back: the last heartbeat now looks an hour in the future
        await until(lambda: time.monotonic() - heard > 1.1, 5, "the silence limit to pass")
        assert (await d.poll_once()).kills_started == ("alpha-silent",)
        await d.wait_for_kills(timeout=15)
    finally:
        await asyncio.wait_for(d.stop(), 15)


async def test_a_last_heartbeat_from_the_future_counts_as_heard_at_the_start(
    tmp_path: Path, make_daemon: DaemonFactory
) -> None:
    persisted(tmp_path, last_seen=time.time() + 10 * 365 * 86400)  # written under a clock years ahead
    d = await make_daemon(RULES.replace("30s", "1s"), bots_section())
    started = time.monotonic()
    assert (await d.poll_once()).kills_started == ()
    await until(lambda: time.monotonic() - started > 1.1, 5, "the silence limit to pass")
    assert (await d.poll_once()).kills_started == ("alpha-silent",)  # not spared for ten years
    assert d.c.bots is not None and d.c.bots.registry.get("alpha").last_seen <= time.time()  # type: ignore[union-attr]
    await d.wait_for_kills(timeout=15)


async def test_a_heartbeat_file_linked_to_dev_zero_is_not_read_and_the_start_goes_on(
    tmp_path: Path, make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / BOTS_FILE).symlink_to("/dev/zero")
    d = await make_daemon(RULES, bots_section())
    assert (await d.poll_once()).kills_started == ()
    state, why = alpha_status(d)
    assert state == "unknown" and "no heartbeat from bot alpha yet" in why
    assert "a symbolic link, not read" in caplog.text
    aside = tmp_path / "state" / (BOTS_FILE + ".damaged")
    assert aside.is_symlink() and not (tmp_path / "state" / BOTS_FILE).is_symlink()
