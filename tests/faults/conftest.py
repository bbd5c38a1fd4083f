"""Fault-matrix fixtures: a simulator, in-process daemons on fast timers, and the checks every row ends with.

Every row ends with the same four checks (`Row.check`): no over-close (the watchdogs' executions per
contract never exceed the starting position, never cross zero), no lost audit record (the expected
step records are in audit.jsonl), the state visible in a metric, and a clear one-line log message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.bench.harness import ConfigSpec, config_text
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.sim import Simulator
from watchdog.state.audit import read_audit

ACCOUNTS = ("DU111111", "DU222222")
RULES = """
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: close_all
"""
Key = tuple[str, int]


def fast_spec(**kw: object) -> ConfigSpec:
    """Fast heartbeats and polls so a row takes a second or two, not a minute."""
    base: dict[str, object] = {
        "rules": RULES,
        "accounts": ACCOUNTS,
        "heartbeat": 0.2,
        "heartbeat_timeout": 0.3,
        "reconnect_initial": 0.1,
        "reconnect_max": 0.3,
        "connect_timeout": 2.0,
        "polling": {
            "pnl": 0.2,
            "account_summary": 0.2,
            "positions": 0.2,
            "orders": 0.2,
            "executions": 0.5,
            "timeout": 1.0,
        },
        "metrics_port": 0,
        "kill": "verify_timeout: 2s\nmax_attempts: 3",
    }
    base.update(kw)
    return ConfigSpec(**base)  # type: ignore[arg-type]


DaemonFactory = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def make_daemon(tmp_path: Path, sim: Simulator) -> AsyncIterator[DaemonFactory]:
    """`await make_daemon(schedule=True, name="a", **ConfigSpec fields)`; all are stopped at the end."""
    started: list[Daemon] = []

    async def factory(*, schedule: bool = True, name: str = "a", start: bool = True, **kw: object) -> Daemon:
        kw.setdefault("state_dir", tmp_path / f"state-{name}")
        kw.setdefault("port", sim.port)
        spec = fast_spec(**kw)
        path = tmp_path / f"rules-{name}.yaml"
        path.write_text(config_text(spec))
        path.chmod(0o600)
        config = load_config(path)
        components = build_components(config, registry=CollectorRegistry(), sd=SdNotifier(None))
        components.gateway.market_hours = lambda _sec_type, _now: True  # the simulator's regular session
        d = Daemon(config, str(path), components)
        started.append(d)
        if start:
            await asyncio.wait_for(d.start(require_gateway=True, schedule=schedule), 15)
        return d

    yield factory
    for d in started:
        await asyncio.wait_for(d.stop(), 20)


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for a condition the daemon reaches on its own (it runs on this loop) under a timeout."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}") from None


def book(sim: Simulator) -> dict[Key, float]:
    return {(p.account, p.con_id): p.quantity for p in sim.positions() if p.quantity}


@dataclass
class Row:
    """The four checks every fault-matrix row ends with."""

    sim: Simulator
    start: dict[Key, float]
    watchdog_clients: tuple[int, ...] = (99,)

    def no_over_close(self) -> None:
        moved: dict[Key, float] = defaultdict(float)
        for e in self.sim.executions():
            if e.client_id in self.watchdog_clients:
                moved[(e.account, e.inst.con_id)] += e.shares if e.side == "BOT" else -e.shares
        for key, qty in moved.items():
            before = self.start.get(key, 0.0)
            assert abs(qty) <= abs(before) + 1e-9, f"over-close of {key}: moved {qty:+g} from {before:+g}"
            assert qty * before <= 0, f"{key}: the watchdog traded away from flat ({qty:+g} on {before:+g})"
        for p in self.sim.positions():
            before = self.start.get((p.account, p.con_id), 0.0)
            assert p.quantity * before >= 0, (
                f"{p.account} {p.symbol} crossed zero: {before:+g} → {p.quantity:+g}"
            )

    @staticmethod
    def audit(daemon: Daemon, expected: Iterable[str], absent: Iterable[str] = ()) -> list[str]:
        events = [r.event for r in read_audit(daemon.c.store.audit_path)]
        for e in expected:
            assert e in events, f"audit record {e!r} missing; have {events}"
        for e in absent:
            assert e not in events, f"unexpected audit record {e!r} in {events}"
        return events

    @staticmethod
    def metric(daemon: Daemon, name: str, labels: dict[str, str] | None = None) -> float | None:
        return daemon.c.metrics.registry.get_sample_value(name, labels or {})

    @staticmethod
    def message(caplog: pytest.LogCaptureFixture, *fragments: str) -> str:
        for rec in caplog.records:
            text = rec.getMessage()
            if all(f in text for f in fragments):
                assert "\n" not in text.strip(), f"not a one-line message: {text!r}"
                return text
        shown = "\n".join(r.getMessage()[:160] for r in caplog.records[-40:])
        raise AssertionError(f"no log line with {fragments}; last lines:\n{shown}")


@pytest.fixture
def row(sim: Simulator, caplog: pytest.LogCaptureFixture) -> Row:
    caplog.set_level(logging.INFO)
    return Row(sim, book(sim))
