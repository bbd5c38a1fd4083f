"""Fixtures for the kill switch tests: a virtual clock and a fake book, or the simulator and a Gateway."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID, Harness
from tests.kill.fakes import FakeBook, FakeBroker, FakeClock
from watchdog.config.schema import KillConfig
from watchdog.gateway.client import Gateway
from watchdog.kill.switch import KillEvent, KillSwitch
from watchdog.sim import Simulator
from watchdog.state.audit import AuditLog
from watchdog.state.store import StateStore

MakeSwitch = Callable[..., KillSwitch]


def kill_config(**overrides: Any) -> KillConfig:
    base: dict[str, Any] = {"verify_timeout": "2s", "max_attempts": 3}
    return KillConfig.model_validate(base | overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def book(clock: FakeClock) -> FakeBook:
    return FakeBook(clock)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> StateStore:
    return StateStore(tmp_path / "state", clock)


@pytest.fixture
def audit(store: StateStore, clock: FakeClock) -> AuditLog:
    store.dir.mkdir(parents=True, exist_ok=True)
    return AuditLog(store.audit_path, clock)


@pytest.fixture
def events() -> list[KillEvent]:
    return []


@pytest.fixture
def make_switch(
    book: FakeBook, store: StateStore, audit: AuditLog, clock: FakeClock, events: list[KillEvent]
) -> MakeSwitch:
    def make(
        *,
        client_id: int = 99,
        accounts: tuple[str, ...] = (),
        store_: StateStore | None = None,
        audit_: AuditLog | None = None,
        **config: Any,
    ) -> KillSwitch:
        return KillSwitch(
            FakeBroker(book, client_id),
            kill_config(**config),
            store_ or store,
            audit_ or audit,
            clock=clock,
            sleep=clock.sleep,
            on_event=events.append,
            accounts=accounts,
            client_id=client_id,
        )

    return make


# ---------------------------------------------------------------------- against the simulator
@pytest.fixture
def sim(bare_sim: Simulator) -> Simulator:
    return bare_sim


@pytest.fixture
def harness(sim: Simulator) -> Harness:
    return Harness(sim)


@pytest.fixture
async def gateway(harness: Harness) -> AsyncIterator[Gateway]:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    try:
        yield g
    finally:
        await asyncio.wait_for(g.close(), 5)


def kill_switch(
    gateway: Gateway,
    tmp_path: Path,
    *,
    on_event: Callable[[KillEvent], None] | None = None,
    **kill: object,
) -> KillSwitch:
    cfg = KillConfig.model_validate({"verify_timeout": "2s", "max_attempts": 3, **kill})
    store = StateStore(tmp_path / "state", time.time)
    store.dir.mkdir(parents=True, exist_ok=True)
    audit = AuditLog(store.audit_path, time.time)
    return KillSwitch(
        gateway, cfg, store, audit,
        clock=time.time, on_event=on_event, accounts=ACCOUNTS, client_id=CLIENT_ID,
    )  # fmt: skip


def net_fills_by_watchdog(sim: Simulator) -> dict[tuple[str, int], float]:
    """Signed quantity the watchdog's own fills moved, per (account, conId)."""
    out: dict[tuple[str, int], float] = defaultdict(float)
    for e in sim.executions():
        if e.client_id == CLIENT_ID:
            out[(e.account, e.inst.con_id)] += e.shares if e.side == "BOT" else -e.shares
    return dict(out)


def holdings(sim: Simulator, account: str | None = None) -> dict[tuple[str, int], float]:
    return {(p.account, p.con_id): p.quantity for p in sim.positions(account) if p.quantity}


def con_id(sim: Simulator, symbol: str) -> int:
    return sim.book.universe.get(symbol).con_id


BOT = 7  # the trading bot's client id in the life-cycle tests


def bot_sells_50_of_200(sim: Simulator) -> int:
    """Long 200 AAPL; a bot's resting SELL 50 LMT (not marketable). Returns its order id."""
    sim.set_price("AAPL", 200.0)
    sim.set_position(ACCOUNTS[0], "AAPL", 200, avg_price=180.0)
    sim.set_session("regular")
    return sim.place_order_as(BOT, ACCOUNTS[0], "AAPL", "SELL", 50, lmt_price=260.0)


def bot_order_status(sim: Simulator, order_id: int) -> str:
    order = sim.book.find_order(BOT, order_id)
    assert order is not None
    return order.status
