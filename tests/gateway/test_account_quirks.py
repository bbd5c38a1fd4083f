"""Account data as real accounts send it (issue 13): summary rows in several currencies, execution
corrections — against the simulator with real ib_async."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.gateway.conftest import ACCOUNTS, Harness, eventually
from watchdog.gateway.base_currency import BaseCurrencyRows
from watchdog.model import exec_stem
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


@pytest.mark.parametrize("first", [False, True])
async def test_a_foreign_row_first_or_last_never_becomes_the_base(harness: Harness, first: bool) -> None:
    """Review of issue 13: with the EUR rows first, EUR was learned as the base for good."""
    sim: Simulator = harness.sim
    sim.set_account_value(DU2, "NetLiquidation", 1_190_000.0)
    sim.add_currency_rows(DU2, "EUR", {"NetLiquidation": 400_000.0}, first=first)
    g = harness.gateway(accounts=(DU1, DU2))  # ib_async syncs account updates (the ledger) of both

    await asyncio.wait_for(g.connect(), 5)
    await asyncio.wait_for(g.poll_account_summary(), 5)

    state = g.snapshot().accounts[DU2]
    assert (state.net_liquidation, state.currency) == (pytest.approx(1_190_000.0), "USD")
    configured = harness.gateway(client_id=98, accounts=(DU2,), base_currency="EUR")  # configured: decides
    await asyncio.wait_for(configured.connect(), 5)
    await asyncio.wait_for(configured.poll_account_summary(), 5)
    assert configured.snapshot().accounts[DU2].net_liquidation == pytest.approx(400_000.0)


async def test_the_base_ledger_block_of_the_account_updates_names_the_base(harness: Harness) -> None:
    sim: Simulator = harness.sim
    sim.set_account_value(DU1, "NetLiquidation", 1_190_000.0)
    sim.add_currency_rows(DU1, "EUR", {"NetLiquidation": 400_000.0}, first=True)
    g = harness.gateway(accounts=(DU1,))  # reqAccountUpdates for DU1: RealCurrency = USD in BASE
    await asyncio.wait_for(g.connect(), 5)

    await asyncio.wait_for(g.poll_account_summary(), 5)

    assert g.snapshot().accounts[DU1].net_liquidation == pytest.approx(1_190_000.0)


def test_the_base_is_never_the_first_row_but_a_whole_single_currency_answer_or_a_base_row() -> None:
    rows = BaseCurrencyRows()
    rows.new_answer()
    rows.add(DU1, "NetLiquidation", "400000", "EUR")
    rows.add(DU1, "NetLiquidation", "1190000", "USD")
    assert rows.end_answer() == {(DU1, "NetLiquidation"): (None, "")}  # nothing learned from row order
    assert DU1 not in rows.base
    rows.new_answer()
    rows.add(DU1, "NetLiquidation", "400000", "EUR")
    rows.add(DU1, "NetLiquidation", "1190000", "BASE")
    assert rows.end_answer() == {(DU1, "NetLiquidation"): ("1190000", "")}
    rows.new_answer()
    rows.add(DU1, "NetLiquidation", "1190000", "USD")
    rows.add(DU1, "ExcessLiquidity", "900000", "USD")
    rows.add(DU1, "Cushion", "0.7", "")
    rows.end_answer()
    assert rows.base[DU1] == "USD"  # a whole answer in one currency: that is the base
    rows.new_answer()
    rows.add(DU1, "NetLiquidation", "400000", "EUR")
    rows.add(DU1, "NetLiquidation", "1190000", "USD")
    assert rows.end_answer() == {(DU1, "NetLiquidation"): ("1190000", "USD")}
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
