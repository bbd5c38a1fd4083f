"""The watch cycle end to end: real ib_async over loopback TCP to the simulator, driven by poll_once()."""

from __future__ import annotations

import asyncio

import pytest

from tests.daemon.conftest import DaemonFactory
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_it_flattens_both_accounts_when_the_daily_loss_limit_breaks(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    sim.set_session("regular")
    d = await make_daemon()
    first = await asyncio.wait_for(d.poll_once(), 10)
    assert first.breaches == ()
    assert first.healthy

    sim.set_pnl("DU111111", daily=-2600.0)
    await asyncio.wait_for(d.poll(name="pnl"), 5)
    result = await asyncio.wait_for(d.poll_once(), 10)
    assert [b.rule for b in result.breaches] == ["daily-loss"]
    assert result.kills_started == ("daily-loss",)

    reports = await d.wait_for_kills(timeout=30)
    assert len(reports) == 1
    report = reports[0]
    assert report.action is Action.CLOSE_ALL
    assert report.outcome is KillOutcome.FLAT, report.reason
    # the rule was scoped to the breaching account; its positions and every working order are gone
    assert [p for p in sim.positions("DU111111") if p.quantity] == []
    assert sim.open_orders("DU111111") == []
    assert d.c.store.trading_state() is TradingState.TRIPPED
    assert d.c.metrics.registry.get_sample_value("ibkr_watchdog_tripped") == 1.0


async def test_a_poll_that_fails_is_counted_and_the_others_still_run(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    d = await make_daemon()
    await asyncio.wait_for(d.poll_once(), 10)
    reg = d.c.metrics.registry
    before = reg.get_sample_value("ibkr_watchdog_poll_failures_total", {"poll": "orders"}) or 0.0
    sim.faults.delay({53}, 5.0)  # openOrderEnd held back: the orders poll times out
    d.config = d.config.model_copy(update={"polling": d.config.polling.model_copy(update={"timeout": 0.3})})
    ok_orders = await asyncio.wait_for(d.poll("orders"), 5)
    ok_positions = await asyncio.wait_for(d.poll("positions"), 5)
    assert ok_orders is False
    assert ok_positions is True
    after = reg.get_sample_value("ibkr_watchdog_poll_failures_total", {"poll": "orders"})
    assert after == before + 1
    assert reg.get_sample_value("ibkr_watchdog_polls_total", {"poll": "positions"}) >= 1


async def test_the_days_high_survives_a_restart_so_a_drawdown_limit_is_not_loosened(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    rules = """
  - name: drawdown
    when: "drawdown >= 50000"
    action: close_all
"""
    first = await make_daemon(rules)
    await asyncio.wait_for(first.poll_once(), 10)
    peak = first.c.memory.day_high("DU111111", "net_liquidation")
    assert peak is not None
    await asyncio.wait_for(first.stop(), 15)
    assert {"account": "DU111111", "metric": "net_liquidation"}.items() <= next(
        r for r in first.c.store.baseline()["day_highs"] if r["account"] == "DU111111"
    ).items()

    sim.set_account_value("DU111111", "NetLiquidation", peak - 60_000)  # fell while we were down
    second = await make_daemon(rules)
    assert second.c.memory.day_high("DU111111", "net_liquidation") == peak
    await asyncio.wait_for(second.poll(name="account_summary"), 5)
    result = await asyncio.wait_for(second.poll_once(), 10)
    assert [b.rule for b in result.breaches] == ["drawdown"]  # measured from the remembered peak
    await second.wait_for_kills(timeout=30)
