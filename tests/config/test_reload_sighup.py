"""SIGHUP to a real daemon process against the simulator: a good file is swapped in, a bad one is refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

RULES = """
  - name: daily-loss
    when: "daily_pnl <= -250000"
    action: close_all
"""
EXTRA_RULE = """
  - name: added-by-reload
    when: "open_order_count > 1000"
    action: alert
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, sim_port: int, metrics_port: int, rules: str, paper: str = "true") -> str:
    return f"""
gateway: {{host: 127.0.0.1, port: {sim_port}, client_id: 99, paper: {paper}, accounts: [DU111111, DU222222]}}
heartbeat: {{interval: 200ms, timeout: 300ms, reconnect_initial: 100ms, reconnect_max: 500ms}}
polling: {{pnl: 200ms, account_summary: 200ms, positions: 200ms, orders: 200ms, executions: 500ms}}
metrics: {{host: 127.0.0.1, port: {metrics_port}}}
state_dir: {tmp_path / "state"}
rules:
{rules}
"""


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return str(r.read().decode())


async def _until(port: int, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
    """Poll the daemon's metrics (an external process) until the predicate holds."""
    last = ""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError):
                last = await asyncio.to_thread(_scrape, port)
                if predicate(last):
                    return last
            await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not seen; last scrape:\n{last}")  # pragma: no cover - timeout raises


async def test_sighup_swaps_in_a_good_file_and_keeps_the_running_config_on_a_bad_one(
    tmp_path: Path, sim: Simulator
) -> None:
    metrics_port = _free_port()
    path = tmp_path / "rules.yaml"
    path.write_text(_config(tmp_path, sim.port, metrics_port, RULES))
    path.chmod(0o600)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", "run", "--config", str(path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stderr is not None
    stderr = asyncio.ensure_future(
        proc.stderr.read()
    )  # drained all along: a full pipe would block the daemon
    try:
        await _until(
            metrics_port, lambda t: 'rule_value{account="DU111111",rule="daily-loss"}' in t, 20, "start"
        )

        path.write_text(_config(tmp_path, sim.port, metrics_port, RULES + EXTRA_RULE))
        proc.send_signal(signal.SIGHUP)
        good = await _until(metrics_port, lambda t: 'rule="added-by-reload"' in t, 10, "the reloaded rule")
        assert "ibkr_watchdog_config_last_reload_successful 1.0" in good

        path.write_text(_config(tmp_path, sim.port, metrics_port, "  - name: x\n    when: 'daly_pnl < 0'\n"))
        proc.send_signal(signal.SIGHUP)
        bad = await _until(
            metrics_port, lambda t: "ibkr_watchdog_config_last_reload_successful 0.0" in t, 10, "rejection"
        )
        assert 'rule="added-by-reload"' in bad  # the running config stayed
        assert proc.returncode is None
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            await proc.wait()
            err = await stderr
    log = err.decode()
    assert "config reloaded: 2 rules" in log
    assert "reload rejected:" in log and "unknown metric 'daly_pnl'" in log
    assert proc.returncode == 0
