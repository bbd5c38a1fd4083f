"""Fixtures: a simulator on an ephemeral loopback port and an in-process daemon driven by poll_once()."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.kill.conftest import audit, book, clock, events, make_switch, store  # noqa: F401 (fixtures of the control tests)
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.sim import Simulator

DEFAULT_RULES = """
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: close_all
  - name: margin
    when: "cushion < 5%"
    action: cancel_all
"""


FAST_HEARTBEAT = (
    "{interval: 200ms, timeout: 300ms, misses: 1, reconnect_initial: 100ms, reconnect_max: 500ms}"
)


def write_config(
    tmp_path: Path,
    port: int,
    rules: str = DEFAULT_RULES,
    extra: str = "",
    *,
    heartbeat: str = FAST_HEARTBEAT,
    metrics_port: int = 0,
    paper: bool = True,
    kill: str = "",
    connect_timeout: str = "5s",
    name: str = "rules.yaml",
) -> Path:
    """A complete rules.yaml for the simulator, with fast heartbeats and an ephemeral metrics port.

    `extra` adds top-level sections; `kill` adds keys to the kill section (e.g. "dry_run: true").
    """
    path = tmp_path / name
    kill_keys = "".join(f"  {line}\n" for line in textwrap.dedent(kill).strip().splitlines())
    body = f"""
gateway:
  host: 127.0.0.1
  port: {port}
  client_id: 99
  paper: {str(paper).lower()}
  accounts: [DU111111, DU222222]
  connect_timeout: {connect_timeout}
heartbeat: {heartbeat}
polling:
  pnl: 200ms
  account_summary: 200ms
  positions: 200ms
  orders: 200ms
  executions: 500ms
  timeout: 2s
metrics:
  host: 127.0.0.1
  port: {metrics_port}
state_dir: {tmp_path / "state"}
kill:
  verify_timeout: 3s
  max_attempts: 3
{kill_keys}{textwrap.dedent(extra)}
rules:
{rules}
"""
    path.write_text(body)
    return path


DaemonFactory = Callable[..., Awaitable[Daemon]]


async def until(predicate: Callable[[], bool], timeout: float, what: str, *, every: float = 0.05) -> None:
    """Poll a predicate about another thread's or process's effects under a deadline (nothing to await)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        await asyncio.sleep(every)


@pytest.fixture
async def make_daemon(tmp_path: Path, sim: Simulator) -> AsyncIterator[DaemonFactory]:
    started: list[Daemon] = []

    async def factory(
        rules: str = DEFAULT_RULES,
        extra: str = "",
        *,
        schedule: bool = False,
        sd: SdNotifier | None = None,
        kill: str = "",
        connect_timeout: str = "5s",
    ) -> Daemon:
        path = write_config(tmp_path, sim.port, rules, extra, kill=kill, connect_timeout=connect_timeout)
        config = load_config(path)
        components = build_components(config, registry=CollectorRegistry(), sd=sd or SdNotifier(None))
        d = Daemon(config, str(path), components)
        await asyncio.wait_for(d.start(require_gateway=True, schedule=schedule), 10)
        started.append(d)
        return d

    yield factory
    for d in started:
        await asyncio.wait_for(d.stop(), 15)
