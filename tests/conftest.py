"""Fixtures shared by every test directory: simulators on ephemeral loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from watchdog.sim import Simulator

WATCHDOG_CLIENT_ID = 99
ACCOUNTS = ("DU111111", "DU222222")


async def _served(sim: Simulator) -> AsyncIterator[Simulator]:
    await asyncio.wait_for(sim.start(host="127.0.0.1", port=0), 5)
    try:
        yield sim
    finally:
        await asyncio.wait_for(sim.stop(), 10)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """The built-in demo book (positions, other clients' orders), regular session."""
    s = Simulator.from_scenario("default")
    s.set_session("regular")
    async for served in _served(s):
        yield served


@pytest.fixture
async def bare_sim() -> AsyncIterator[Simulator]:
    """Two empty paper accounts; the watchdog's client id is the master client; P&L every 100 ms."""
    s = Simulator(accounts=ACCOUNTS, master_client_id=WATCHDOG_CLIENT_ID, pnl_interval=0.1)
    async for served in _served(s):
        yield served


def order_messages(sim: Simulator, client_id: int = WATCHDOG_CLIENT_ID) -> list[int]:
    """Message ids of the order messages a client sent (placeOrder 3, cancelOrder 4, reqGlobalCancel 58).

    A cancelOrder of an id the client never placed is the write-access probe (gateway.write_access):
    it can act on nothing, so it is not counted."""
    frames = sim.received(client_id)
    placed = {f.fields[1] for f in frames if f.msg_id == 3}
    return [f.msg_id for f in frames if f.msg_id in (3, 58) or (f.msg_id == 4 and f.fields[2] in placed)]
