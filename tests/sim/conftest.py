"""Fixtures for simulator tests: a running Simulator on an ephemeral loopback port and ib_async clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from ib_async import IB

from watchdog.sim import Simulator

ACCOUNT = "DU111111"
OTHER_ACCOUNT = "DU222222"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(accounts=(ACCOUNT, OTHER_ACCOUNT))
    await s.start(host="127.0.0.1", port=0)
    try:
        yield s
    finally:
        await s.stop()


Connect = Callable[..., Awaitable[IB]]


@pytest.fixture
async def connect(sim: Simulator) -> AsyncIterator[Connect]:
    """Connect real ib_async clients to the simulator; every one is disconnected afterwards."""
    clients: list[IB] = []

    async def _connect(client_id: int, wait: float = 3.0, **kwargs: object) -> IB:
        ib = IB()
        clients.append(ib)
        await ib.connectAsync(sim.host, sim.port, clientId=client_id, timeout=wait, **kwargs)
        return ib

    try:
        yield _connect
    finally:
        for ib in clients:
            ib.disconnect()
