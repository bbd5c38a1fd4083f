"""The real daemon's /metrics against 16 clients that trickle a byte a second (issue 15, review item D):
before, each read within the 5 s per-read timeout kept its slot, so all 16 held every slot for ever."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from tests.process.conftest import Launcher, NotifySocket, free_port, scrape, start_ready, write_config
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def _connect(port: int) -> asyncio.StreamWriter:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")
    await writer.drain()
    return writer


async def _trickle(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    try:
        while not stop.is_set():
            writer.write(b"X")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    except OSError:
        pass  # cut by the server: what this test wants
    finally:
        writer.close()


async def test_sixteen_trickling_clients_never_keep_a_scrape_out(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    port = free_port()
    d = await start_ready(launch, write_config(tmp_path, sim.port, metrics_port=port), notify)
    stop = asyncio.Event()
    tricklers = []
    for _ in range(16):  # one after another, as a client would: the listen backlog is small
        tricklers.append(asyncio.ensure_future(_trickle(await _connect(port), stop)))
        await asyncio.sleep(0.05)
    try:
        t0 = time.monotonic()
        text = await asyncio.wait_for(asyncio.to_thread(scrape_retrying, port, 12.0), 15)
        assert "ibkr_watchdog_gateway_connected" in text
        assert time.monotonic() - t0 < 8.0  # at the cap the scrape evicts an idle one; deadline 5 s
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tricklers, return_exceptions=True), 10)
    assert await d.stop() == 0


def scrape_retrying(port: int, within: float) -> str:
    deadline = time.monotonic() + within
    while True:
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
