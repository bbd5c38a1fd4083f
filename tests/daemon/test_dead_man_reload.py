"""The dead-man's switch across a reload (new bots and tokens apply at once) and a listener that
could not bind (retried, alerted once, silence counted from the bind)."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest

from tests.bots.conftest import request
from tests.daemon.conftest import DEFAULT_RULES, DaemonFactory, until, write_config
from tests.daemon.test_dead_man import RULES, TOKEN, alpha_status, bots_section, persisted
from watchdog.daemon import bot_watch
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

NEW_TOKEN = "alpha-rotated-0123456789abcdef"
BETA_TOKEN = "beta-token-0123456789abcdefgh"


def rotated_section(listen: str) -> str:
    return f"""
bots:
  listen: {listen}
  heartbeats:
    - name: alpha
      token: {NEW_TOKEN}
      accounts: [DU111111]
    - name: beta
      token: {BETA_TOKEN}
"""


async def test_a_reload_applies_rotated_tokens_and_new_bots_and_a_new_listen_needs_a_restart(
    tmp_path: Path, make_daemon: DaemonFactory, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    d = await make_daemon(RULES, bots_section())
    assert d.c.bots is not None
    port = d.c.bots.port
    assert (await request(port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204
    assert (await request(port, "/v1/heartbeat/beta", token=BETA_TOKEN))[0] == 404
    write_config(tmp_path, sim.port, RULES, rotated_section("127.0.0.1:1"))
    assert d.reload()
    # the leaked token stops working at the reload; the new one and the new bot work on the same port
    assert (await request(port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 401
    assert (await request(port, "/v1/heartbeat/alpha", token=NEW_TOKEN))[0] == 204
    assert (await request(port, "/v1/heartbeat/beta", token=BETA_TOKEN))[0] == 204
    assert "stays on 127.0.0.1:0 until the watchdog restarts" in caplog.text
    assert "bots reloaded: alpha, beta (added: beta; removed: none; new token: alpha)" in caplog.text
    records = [json.loads(line) for line in d.c.store.audit_path.read_text().splitlines()]
    (reload,) = [r for r in records if r["event"] == "reload"]
    assert reload["details"]["bots"] == ["alpha", "beta"]
    assert "restarts" in reload["details"]["restart_needed"][0]
    for secret in (TOKEN, NEW_TOKEN, BETA_TOKEN):
        assert secret not in caplog.text and secret not in d.c.store.audit_path.read_text()
    # the kept bot kept its heartbeat; the reload neither armed nor disarmed anything
    assert d.c.bots.registry.heard_at("alpha") is not None
    write_config(tmp_path, sim.port, RULES, bots_section())  # beta removed again
    assert d.reload()
    assert (await request(port, "/v1/heartbeat/beta", token=BETA_TOKEN))[0] == 404


async def test_a_reload_that_adds_the_first_bot_starts_the_listener(
    tmp_path: Path, make_daemon: DaemonFactory, sim: Simulator
) -> None:
    d = await make_daemon(DEFAULT_RULES)
    assert d.c.bots is None
    write_config(tmp_path, sim.port, RULES, bots_section())
    assert d.reload()
    bots = d.c.bots
    assert bots is not None
    await until(lambda: bots.receiver.listening, 5, "the listener")
    assert (await request(bots.port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204
    await d.poll_once()
    assert alpha_status(d)[0] == "ok"


async def test_a_listener_that_could_not_bind_is_retried_alerted_once_and_counts_from_its_bind(
    tmp_path: Path,
    make_daemon: DaemonFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot_watch, "BIND_RETRY", 0.05)
    persisted(tmp_path, last_seen=time.time() - 45.0)  # would fire at once, if counted from then
    caplog.set_level(logging.INFO)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        d = await make_daemon(RULES.replace("30s", "2s"), bots_section(f"127.0.0.1:{port}"))
        bots = d.c.bots
        assert bots is not None
        await until(lambda: bots.bind_attempts >= 3, 5, "three attempts to bind")
        assert (await d.poll_once()).kills_started == ()
        assert "heartbeat listener not running" in alpha_status(d)[1]
    finally:
        taken.close()
    await until(lambda: bots.receiver.listening, 5, "the listener to bind")
    assert caplog.text.count("heartbeat listener not running") == 1  # alerted once, not per attempt
    assert "heartbeat listener bound on port" in caplog.text  # the recovery message
    assert (await d.poll_once()).kills_started == ()  # silence counts from the bind, not 45 s ago
    assert alpha_status(d)[0] == "ok"
    assert (await request(port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204


async def test_a_listener_that_could_not_bind_retries_on_the_address_a_reload_gives_it(
    tmp_path: Path,
    make_daemon: DaemonFactory,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot_watch, "BIND_RETRY", 0.05)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        d = await make_daemon(RULES, bots_section(f"127.0.0.1:{taken.getsockname()[1]}"))
        bots = d.c.bots
        assert bots is not None and not bots.receiver.listening
        write_config(tmp_path, sim.port, RULES, bots_section("127.0.0.1:0"))  # the operator moves it
        assert d.reload()
        await until(lambda: bots.receiver.listening, 5, "the listener on the new address")
    assert bots.port != 0
    assert (await request(bots.port, "/v1/heartbeat/alpha", token=TOKEN))[0] == 204
