"""Fixtures: a simulator on an ephemeral loopback port and a Gateway wired to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from watchdog.config.schema import GatewayConfig, HeartbeatConfig, PollingConfig
from watchdog.gateway.client import Gateway, GatewayEvent
from watchdog.sim import Simulator

ACCOUNTS = ("DU111111", "DU222222")
CLIENT_ID = 99
# small, fast settings: tests measure behaviour, not production timing
FAST_HB = HeartbeatConfig(
    interval="200ms", timeout="150ms", misses=2, reconnect_initial="50ms", reconnect_max="200ms"
)
FAST_POLL = PollingConfig(timeout="1s")


@pytest.fixture
def sim(bare_sim: Simulator) -> Simulator:
    return bare_sim


class Harness:
    """Builds gateways against the simulator, records their events, closes them all at the end."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.events: list[GatewayEvent] = []
        self.gateways: list[Gateway] = []
        self.mono_calls: list[float] = []

    def monotonic(self) -> float:
        t = time.monotonic()
        self.mono_calls.append(t)
        return t

    def gateway(
        self,
        *,
        client_id: int = CLIENT_ID,
        paper: bool = True,
        accounts: tuple[str, ...] = (),
        hb: HeartbeatConfig = FAST_HB,
        polling: PollingConfig = FAST_POLL,
        port: int | None = None,
        on_event: Callable[[GatewayEvent], None] | None = None,
        on_heartbeat: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        **gw: Any,
    ) -> Gateway:
        cfg = GatewayConfig(
            host="127.0.0.1",
            port=self.sim.port if port is None else port,
            client_id=client_id,
            paper=paper,
            accounts=accounts,
            connect_timeout=gw.pop("connect_timeout", "1s"),
            base_currency=gw.pop("base_currency", None),
        )
        g = Gateway(
            cfg,
            hb,
            polling,
            clock=clock,
            monotonic=self.monotonic,
            on_event=on_event or self.events.append,
            on_heartbeat=on_heartbeat,
            rand=lambda: 0.5,
        )
        self.gateways.append(g)
        return g

    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]

    async def close(self) -> None:
        for g in self.gateways:
            await asyncio.wait_for(g.close(), 5)


@pytest.fixture
async def harness(sim: Simulator) -> AsyncIterator[Harness]:
    h = Harness(sim)
    try:
        yield h
    finally:
        await h.close()


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition driven by the other side of a socket (bounded polling)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the state changes on the far side of a TCP socket
            await asyncio.sleep(0.01)
