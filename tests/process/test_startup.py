"""How a real daemon process refuses to start, or keeps trying: exit codes and messages of `run`."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from ib_async import IB

from tests.process.conftest import (
    Launcher,
    NotifySocket,
    free_port,
    order_frames,
    start_ready,
    until,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
START_API = 71


def _start_api_ids(sim: Simulator) -> list[str]:
    """The client id of every connection attempt (startApi: msg id, version, clientId, capabilities)."""
    return [f.fields[2] for f in sim.received() if f.msg_id == START_API]


async def test_require_gateway_exits_3_quickly_when_nothing_listens(tmp_path: Path, launch: Launcher) -> None:
    config = write_config(tmp_path, free_port())

    t0 = time.monotonic()
    d = await launch(config, args=("--require-gateway",))
    rc = await d.wait(timeout=15)

    assert rc == 3, d.stderr
    assert time.monotonic() - t0 < 10
    assert "gateway unreachable at start" in d.stderr
    assert not (d.state_dir / "watchdog.pid").exists()


async def test_a_config_error_exits_2_with_file_line_key_and_message(
    tmp_path: Path, launch: Launcher
) -> None:
    config = write_config(tmp_path, free_port(), heartbeat="{interval: soon, timeout: 1s}")
    text = config.read_text()
    line = text[: text.index("heartbeat:")].count("\n") + 1

    d = await launch(config)
    rc = await d.wait(timeout=15)

    assert rc == 2, d.stderr
    assert re.search(rf"rules\.yaml:{line}: heartbeat\.interval: \S", d.stderr), d.stderr
    assert not (d.state_dir / "watchdog.pid").exists()


async def test_paper_false_against_paper_accounts_refuses_to_start_with_exit_2(
    tmp_path: Path, sim: Simulator, launch: Launcher
) -> None:
    config = write_config(tmp_path, sim.port, paper=False)

    d = await launch(config)  # no --require-gateway: a mismatch is never retried
    rc = await d.wait(timeout=15)

    assert rc == 2, d.stderr
    assert "gateway.paper is false but the gateway manages paper account(s) DU111111, DU222222" in d.stderr
    assert "refusing to start" in d.stderr
    assert order_frames(sim) == []


async def test_client_id_in_use_is_reported_and_retried_with_the_same_id(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    squatter = IB()
    await asyncio.wait_for(squatter.connectAsync("127.0.0.1", sim.port, clientId=99, timeout=5), 10)
    try:
        config = write_config(tmp_path, sim.port)
        d = await launch(config, notify=notify)
        await until(lambda: len(_start_api_ids(sim)) >= 4, 15, "the daemon to try three times")
        assert "client id 99 is already in use on the gateway (error 326)" in d.stderr
        assert d.stderr.count("notify [critical] Client id in use (326)") == 1  # told once, not per retry
        assert d.proc.returncode is None  # still running, still trying
        assert notify.count("READY", "1") == 0
        assert sim.connected_clients() == [99]  # the squatter; never the daemon under another id
        assert set(_start_api_ids(sim)) == {"99"}  # the squatter, then the daemon's retries: never another id
    finally:
        squatter.disconnect()

    # once the id is free, the same daemon connects with it
    await notify.wait_for(lambda n: n.count("READY", "1") == 1, 15, "READY=1 after the id was freed")
    assert sim.connected_clients() == [99]
    assert set(_start_api_ids(sim)) == {"99"}
    assert await d.stop() == 0


async def test_a_daemon_started_before_the_gateway_connects_when_it_appears(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    await sim.faults.daily_restart(refuse_for=2.0)
    d = await start_ready(launch, write_config(tmp_path, sim.port), notify)

    assert "gateway not reachable at start" in d.stderr
    assert sim.connected_clients() == [99]
    assert await d.stop() == 0
