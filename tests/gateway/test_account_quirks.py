"""Account data as real accounts send it (issue 13): summary rows in several currencies, execution
corrections — against the simulator with real ib_async."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.gateway.conftest import ACCOUNTS, Harness, eventually
from watchdog.gateway.convert import BaseCurrencyRows, exec_stem
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
DU1, DU2 = ACCOUNTS


async def test_a_second_currency_row_never_replaces_the_base_currency_value(harness: Harness) -> None:
    sim: Simulator = harness.sim
    sim.set_account_value(DU1, "NetLiquidation", 1_190_000.0)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    await asyncio.wait_for(g.poll_account_summary(), 5)
    assert g.snapshot().accounts[DU1].net_liquidation == pytest.approx(1_190_000.0)

    sim.add_currency_rows(DU1, "EUR", {"NetLiquidation": 400_000.0, "ExcessLiquidity": 300_000.0})
    await asyncio.wait_for(g.poll_account_summary(), 5)

    state = g.snapshot().accounts[DU1]
    assert state.net_liquidation == pytest.approx(1_190_000.0)  # the EUR row came last and lost
    assert state.excess_liquidity == pytest.approx(float(sim.account_values(DU1)["ExcessLiquidity"]))
    assert state.currency == "USD"


async def test_an_execution_correction_replaces_the_fill_it_corrects(harness: Harness) -> None:
    sim: Simulator = harness.sim
    for _ in range(3):
        sim.place_order_as(
            client_id=7, account=DU1, symbol="AAPL", action="BUY", quantity=10, order_type="MKT"
        )
    originals = [e.exec_id for e in sim.executions(DU1)]
    corrected = [sim.correct_execution(exec_id, price=101.5) for exec_id in originals]
    assert len(sim.executions(DU1)) == 6  # the gateway reports both the original and the correction
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)

    await asyncio.wait_for(g.poll_executions(), 5)

    fills = g.snapshot().fills
    assert sorted(f.exec_id for f in fills) == sorted(corrected)  # 3 trades, not 6 fills
    assert {f.price for f in fills} == {101.5}


def test_base_rows_win_and_two_unknown_currencies_are_unknown() -> None:
    rows = BaseCurrencyRows()
    rows.new_answer()
    assert rows.read(DU1, "NetLiquidation", "400000", "EUR") == ("400000", "EUR")  # alone: learned as base
    rows2 = BaseCurrencyRows()
    rows2.new_answer()
    rows2.read(DU2, "NetLiquidation", "400000", "EUR")
    rows2.base.clear()  # nothing learned: two competing currencies and no BASE row
    assert rows2.read(DU2, "NetLiquidation", "1190000", "USD") == (None, "")
    assert rows2.read(DU2, "NetLiquidation", "1190000", "BASE") == ("1190000", "")
    assert exec_stem("0000e0d5.00000001.01.02") == ("0000e0d5.00000001.01", 2)


async def test_the_heartbeat_proves_write_access_after_connect_and_finds_read_only_mode(
    harness: Harness,
) -> None:
    sim: Simulator = harness.sim
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    assert g.write_access() is None

    await asyncio.wait_for(g.heartbeat(), 5)  # what the daemon's heartbeat job calls
    await eventually(lambda: g.write_access() is True)
    probes = [f for f in sim.received(99) if f.msg_id == 4]
    assert len(probes) == 1
    await asyncio.wait_for(g.heartbeat(), 5)
    await asyncio.wait_for(g.heartbeat(), 5)
    assert len([f for f in sim.received(99) if f.msg_id == 4]) == 1  # not again before the interval

    sim.set_read_only()
    g.write_probe.checked_at = None  # the interval has passed
    await asyncio.wait_for(g.heartbeat(), 5)
    await eventually(lambda: g.write_access() is False)
    assert g.status().write_access is False
    assert [e.code for e in harness.events if e.kind.value == "error"] == [321]


async def test_the_probes_expected_answer_leaves_no_error_line_in_the_log(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    with caplog.at_level(logging.INFO):
        assert await asyncio.wait_for(g.check_write_access(), 5) is True
    assert not [r for r in caplog.records if "10147" in r.getMessage()]


async def test_a_probe_without_an_answer_never_holds_the_heartbeat_up(harness: Harness) -> None:
    sim: Simulator = harness.sim
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    sim.faults.delay({4}, 5.0)  # every error message (the probe's answer) arrives 5 s late

    for _ in range(3):
        await asyncio.wait_for(g.heartbeat(), 0.5)  # each answered in time, the probe waits on its own

    assert len([f for f in sim.received(99) if f.msg_id == 4]) == 1  # one probe in flight, not one per beat
    assert g.write_access() is None
