"""The dead-man's switch inside the daemon (in-process, against the simulator): restart, damage, deafness."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest

from tests.bots.conftest import request
from tests.daemon.conftest import DaemonFactory, until
from watchdog.bots.registry import BOTS_FILE
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import GatewayStatus

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
    assert (await d.poll_once()).kills_started == ("alpha-silent",)
    (report,) = await d.wait_for_kills(timeout=15)
    assert report.accounts == ("DU111111",) and report.trigger == "rule:alpha-silent"


async def test_silence_is_unknown_while_the_gateway_is_down_and_counts_again_from_the_reconnect(
    tmp_path: Path, make_daemon: DaemonFactory
) -> None:
    persisted(tmp_path, last_seen=time.time() - 3600.0)  # heard an hour ago, through an hour-long outage
    d = await make_daemon(RULES, bots_section())
    assert d.c.bots is not None
    down = d.c.bots.statuses(GatewayStatus(connected=False))["alpha"]
    assert down.unknown_reason.startswith("the watchdog cannot reach the gateway")
    reconnected = time.time()
    back = d.c.bots.statuses(GatewayStatus(connected=True))["alpha"]
    # the outage is not silence: the count restarts at the reconnect, the bot has its full limit
    assert not back.unknown_reason and back.last_seen is not None and back.last_seen >= reconnected
    assert d.c.bots.registry.get("alpha").last_seen < reconnected - 3000  # type: ignore[union-attr]


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
