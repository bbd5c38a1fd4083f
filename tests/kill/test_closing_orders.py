"""Closing orders a real exchange accepts (issue 13), each against the simulator with real ib_async:
tick ladders, each contract's own hours, fractions, stale marks, order precautions, read-only API."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID, Harness
from watchdog.config.schema import KillConfig
from watchdog.gateway.client import Gateway
from watchdog.kill.run import KillEvent
from watchdog.kill.switch import KillSwitch
from watchdog.model import Action, KillOutcome, KillReport
from watchdog.sim import Simulator
from watchdog.state.audit import AuditLog
from watchdog.state.store import StateStore

pytestmark = pytest.mark.integration
DU1 = ACCOUNTS[0]
PLACE_ORDER = 3
OPTION = "AAPL  261218C00200000"


class Clock:
    """One settable wall clock shared by the simulator and the watchdog (calendar tests)."""

    def __init__(self, at: dt.datetime | None = None) -> None:
        self.offset = 0.0 if at is None else at.timestamp() - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[Simulator]:
    s = Simulator(accounts=ACCOUNTS, clock=clock, master_client_id=CLIENT_ID, pnl_interval=0.1)
    await asyncio.wait_for(s.start(), 5)
    try:
        yield s
    finally:
        await asyncio.wait_for(s.stop(), 10)


@pytest.fixture
async def harness(sim: Simulator) -> AsyncIterator[Harness]:
    h = Harness(sim)
    try:
        yield h
    finally:
        await h.close()


async def connected(harness: Harness, clock: Callable[[], float], regular: bool | None = None) -> Gateway:
    g = harness.gateway(clock=clock, accounts=(DU1,))  # DU1's portfolio (marketPrice) is subscribed
    if regular is not None:  # the fallback table's answer (used when contract details carry no hours)
        g.market_hours = lambda sec_type, now: regular
    await asyncio.wait_for(g.connect(), 5)
    await asyncio.wait_for(g.poll_positions(), 5)  # contract details, like the daemon's polls
    return g


def kill_switch(
    gateway: Gateway, tmp_path: Path, clock: Callable[[], float], events: list[KillEvent], **kill: object
) -> KillSwitch:
    cfg = KillConfig.model_validate({"verify_timeout": "1s", "max_attempts": 3, **kill})
    store = StateStore(tmp_path / "state", clock)
    store.dir.mkdir(parents=True, exist_ok=True)
    audit = AuditLog(store.audit_path, clock)
    return KillSwitch(
        gateway,
        cfg,
        store,
        audit,
        clock=clock,
        accounts=ACCOUNTS,
        client_id=CLIENT_ID,
        on_event=events.append,
    )


def placed(sim: Simulator) -> list[list[str]]:
    return [f.fields for f in sim.received(CLIENT_ID) if f.msg_id == PLACE_ORDER]


async def close_all(ks: KillSwitch) -> KillReport:
    return await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test", accounts=[DU1]), 30)


def open_quantity(sim: Simulator, symbol: str) -> float:
    return sum(p.quantity for p in sim.positions(DU1) if p.symbol == symbol)


# ---------------------------------------------------------------------------------------- 1 tick ladder
async def test_a_limit_on_a_two_level_option_ladder_lands_on_the_upper_tick_and_fills(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.set_price(OPTION, 2.98)  # 0.05 below 3.00, 0.10 from 3.00 up (market rule 32)
    sim.set_position(DU1, OPTION, -10, avg_price=3.2)
    g = await connected(harness, clock, regular=False)
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.FLAT, report.reason
    prices = [float(f[19]) for f in placed(sim)]
    assert prices == [3.1]  # 2.98 × 1.01 = 3.0098, rounded up onto the 0.10 ladder
    assert 110 not in g.error_counts


# ---------------------------------------------------------------------------------------- 2 own hours
async def test_on_an_exchange_holiday_it_sends_nothing_and_escalates_at_once_naming_the_calendar(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    clock.offset = (
        dt.datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("America/New_York")).timestamp() - time.time()
    )
    sim.rules.publish_hours = sim.rules.calendar_sessions = True  # Thanksgiving: NYSE closed
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    g = await connected(harness, clock, regular=True)  # the US table alone would say "regular"
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.ESCALATED
    assert "market closed by the contract's own calendar (US/Eastern)" in report.reason
    assert "next session 2026-11-27 04:00" in report.reason
    assert placed(sim) == []  # no market order held until the next open
    assert report.attempts == 1  # at once, not after max_attempts rounds


async def test_a_xetra_stock_after_its_close_gets_a_limit_outside_rth_while_new_york_trades(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    clock.offset = (
        dt.datetime(2026, 11, 30, 15, 0, tzinfo=ZoneInfo("America/New_York")).timestamp() - time.time()
    )
    sim.rules.publish_hours = sim.rules.calendar_sessions = True  # 21:00 in Frankfurt: XETRA after hours
    sim.set_position(DU1, "SAP", 40, avg_price=240.0)
    g = await connected(harness, clock, regular=True)
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.FLAT, report.reason
    first = placed(sim)[0]
    assert (first[18], first[33]) == ("LMT", "1")  # never a market order by New York's clock
    assert 201 not in g.error_counts


# ---------------------------------------------------------------------------------------- 3 fractions
async def test_a_fractional_position_closes_its_whole_shares_and_reports_the_fraction_at_once(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.set_position(DU1, "AAPL", 57.68, avg_price=180.0)
    g = await connected(harness, clock, regular=True)
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.ESCALATED
    assert [float(f[17]) for f in placed(sim)] == [57.0]  # 57.68 is never sent
    assert open_quantity(sim, "AAPL") == pytest.approx(0.68)
    manual = [e for e in events if "needs a manual close" in e.message]
    assert manual and manual[0].at < report.finished  # said during the kill, not only at its end
    assert "0.68 of 57.68" in report.reason
    assert 10243 not in g.error_counts


@pytest.mark.parametrize(("held", "left"), [(-57.68, -0.68), (0.5, 0.5)])
async def test_a_fraction_is_named_once_in_the_reason_short_or_alone(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path, held: float, left: float
) -> None:
    """Review of issue 13: the fraction text appeared twice in the reason; a short fraction and a
    position of half a share (nothing whole to send) escalate the same way."""
    sim.set_position(DU1, "AAPL", held, avg_price=180.0)
    g = await connected(harness, clock, regular=True)
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.ESCALATED
    assert open_quantity(sim, "AAPL") == pytest.approx(left)  # never over-closed
    assert report.reason.count("is a fraction the API cannot close") == 1, report.reason
    assert "needs a manual close" in report.reason


# ---------------------------------------------------------------------------------------- 4 stale marks
async def test_a_frozen_portfolio_mark_is_replaced_by_a_live_quote(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.set_price("AAPL", 190.0)
    sim.set_session("extended")
    g = await connected(harness, clock, regular=False)
    sim.freeze_portfolio_price("AAPL", 190.0)
    sim.set_price("AAPL", 170.0)  # the market moved; the portfolio still says 190
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert [float(f[19]) for f in placed(sim)] == [168.3]  # bid 170 − 1 %, not 190 − 1 % = 188.10
    assert any("priced from bid 170" in e.message for e in events)


async def test_delayed_data_is_used_when_it_is_all_the_account_has_and_its_age_is_stated(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.rules.market_data = "delayed"
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.set_price("AAPL", 190.0)
    sim.set_session("extended")
    g = await connected(harness, clock, regular=False)
    sim.freeze_portfolio_price("AAPL", 190.0)
    sim.set_price("AAPL", 170.0)
    clock.offset += 3600.0  # the portfolio's 190 has not moved for an hour; delayed data is 15 min old
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert any("priced from delayed bid 170, delayed ~15 min" in e.message for e in events)


async def test_a_mark_frozen_before_the_start_never_beats_delayed_data(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    """Review of issue 13: the mark froze at 190 hours before this daemon started; five minutes after
    the start it must not pass for 300 s old and beat a delayed quote (~900 s) at 170."""
    sim.rules.market_data = "delayed"
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.set_price("AAPL", 190.0)
    sim.set_session("extended")
    sim.freeze_portfolio_price("AAPL", 190.0)  # frozen for hours before the daemon (re)started
    sim.set_price("AAPL", 170.0)
    g = await connected(harness, clock, regular=False)
    clock.offset += 300.0  # the daemon has been up for 5 minutes
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert [float(f[19]) for f in placed(sim)] == [168.3]  # delayed bid 170 − 1 %, not 190 − 1 %
    assert any("priced from delayed bid 170, delayed ~15 min" in e.message for e in events)


async def test_each_retry_widens_the_collar_until_the_limit_fills(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.rules.market_data = "none"  # only the frozen portfolio mark: each retry must still move the price
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.set_price("AAPL", 190.0)
    sim.set_session("extended")
    g = await connected(harness, clock, regular=False)
    sim.freeze_portfolio_price("AAPL", 190.0)
    sim.set_price("AAPL", 185.0)  # 2.6 % below the mark: the third collar (3 %) reaches it
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert [float(f[19]) for f in placed(sim)] == [188.1, 186.2, 184.3]


# ---------------------------------------------------------------------------------------- 5 precautions
async def test_a_short_is_bought_back_in_uneven_slices_under_a_quantity_limit(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.set_position(DU1, "AAPL", -10, avg_price=180.0)
    g = await connected(harness, clock, regular=True)
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events, max_order_quantity=3))

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert [(f[16], float(f[17])) for f in placed(sim)] == [("BUY", 3.0)] * 3 + [("BUY", 1.0)]
    assert open_quantity(sim, "AAPL") == 0
    assert any("(kill.max_order_quantity 3)" in e.message for e in events)


async def test_closes_are_sliced_under_the_configured_order_value(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.rules.max_order_value = 100_000  # TWS precaution: Total Value Limit
    sim.set_position(DU1, "AAPL", 1_000, avg_price=180.0)
    sim.set_price("AAPL", 190.0)
    g = await connected(harness, clock, regular=True)
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events, max_order_value=90_000))

    assert report.outcome is KillOutcome.FLAT, report.reason
    assert [float(f[17]) for f in placed(sim)] == [473.0, 473.0, 54.0]
    assert 451 not in g.error_counts


async def test_a_precaution_reject_escalates_at_once_naming_the_tws_setting(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.rules.max_order_value = 100_000
    sim.set_position(DU1, "AAPL", 1_000, avg_price=180.0)
    sim.set_price("AAPL", 190.0)
    g = await connected(harness, clock, regular=True)
    events: list[KillEvent] = []

    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.ESCALATED
    assert "Precautionary Settings" in report.reason and "kill.max_order_value" in report.reason
    assert len(placed(sim)) == 1  # the refused order is never re-sent
    assert report.attempts <= 2  # not max_attempts rounds of the same reject


# ---------------------------------------------------------------------------------------- 8 read-only
async def test_a_read_only_api_is_found_before_the_kill_and_named_in_its_escalation(
    sim: Simulator, harness: Harness, clock: Clock, tmp_path: Path
) -> None:
    sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    sim.place_order_as(client_id=7, account=DU1, symbol="AAPL", action="BUY", quantity=5, lmt_price=1.0)
    sim.set_read_only()
    g = await connected(harness, clock, regular=True)

    assert await asyncio.wait_for(g.check_write_access(), 5) is False
    assert g.status().write_access is False
    assert any(e.code == 321 and "read-only" in e.message for e in harness.events)

    events: list[KillEvent] = []
    report = await close_all(kill_switch(g, tmp_path, clock, events))

    assert report.outcome is KillOutcome.ESCALATED
    assert "Read-Only API" in report.reason
    assert len(sim.open_orders()) == 1 and open_quantity(sim, "AAPL") == 100


async def test_a_writable_api_is_proven_with_a_cancel_that_can_touch_nothing(
    sim: Simulator, harness: Harness, clock: Clock
) -> None:
    sim.place_order_as(client_id=7, account=DU1, symbol="AAPL", action="BUY", quantity=5, lmt_price=1.0)
    g = await connected(harness, clock)
    assert g.status().write_access is None  # not proven yet: the gauge reads NaN, the alert stays quiet

    assert await asyncio.wait_for(g.check_write_access(), 5) is True

    assert len(sim.open_orders()) == 1
    assert not [e for e in harness.events if e.kind.value == "error"]  # the probe's 10147 is no error event
