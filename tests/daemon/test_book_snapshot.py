"""The daemon leaves its last complete book in the state dir (book.json) for `drill --book state`."""

from __future__ import annotations

import asyncio

import pytest

from tests.daemon.conftest import DaemonFactory
from watchdog.sim import Simulator
from watchdog.state.book import load_book

pytestmark = pytest.mark.integration


async def test_a_cycle_writes_the_whole_book_with_contracts_and_marks(
    make_daemon: DaemonFactory, sim: Simulator
) -> None:
    d = await make_daemon()
    await asyncio.wait_for(d.poll_once(), 10)
    book = load_book(d.config.state_dir)
    held = {(p["account"], p["contract"]["con_id"]): p["quantity"] for p in book["positions"]}
    assert held == {(p.account, p.con_id): p.quantity for p in sim.positions()}
    aapl = next(p for p in book["positions"] if p["contract"]["symbol"] == "AAPL" and p["quantity"] == 200)
    assert aapl["market_price"] == pytest.approx(sim.price("AAPL"))
    assert {(o["client_id"], o["account"]) for o in book["orders"]} == {
        (o.client_id, o.account) for o in sim.open_orders()
    }
    assert set(book["accounts"]) == {"DU111111", "DU222222"}
