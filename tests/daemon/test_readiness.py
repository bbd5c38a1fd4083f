"""Kill readiness in the daemon against the simulator: each reason appears in the plan, `plan` and the
metric when its condition is set up, disappears when it is cleared, and nothing is ever sent."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import order_messages
from tests.daemon.conftest import until, write_config
from watchdog.commands.plan import plan_command
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.model import Action
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.readiness_model import PlanReason, Readiness
from watchdog.sim import Simulator
from watchdog.sim.universe import Instrument

pytestmark = pytest.mark.integration

DU1, DU2 = "DU111111", "DU222222"
ORDER_MESSAGES = {3, 4, 58}  # placeOrder, cancelOrder, reqGlobalCancel
FUND = Instrument(880_000_001, "VFIAX", "FUND", "FUNDSERV", local_symbol="VFIAX", price=500.0)


class Clock:
    """Wall time plus an offset a test can move forward (data ages without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


Factory = Callable[..., Awaitable[Daemon]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_daemon(tmp_path: Path, sim: Simulator, clock: Clock) -> AsyncIterator[Factory]:
    started: list[Daemon] = []

    async def factory(kill: str = "") -> Daemon:
        path = write_config(tmp_path, sim.port, kill=kill)
        config = load_config(path)
        components = build_components(config, clock=clock, registry=CollectorRegistry(), sd=SdNotifier(None))
        components.gateway.market_hours = lambda _sec_type, _now: True  # the simulator's regular session
        d = Daemon(config, str(path), components)
        await asyncio.wait_for(d.start(require_gateway=True, schedule=False), 10)
        started.append(d)
        return d

    yield factory
    for d in started:
        await asyncio.wait_for(d.stop(), 15)


async def plan(d: Daemon) -> Readiness:
    """One full watch cycle (fresh reads), then the timer's readiness job."""
    await asyncio.wait_for(d.poll_once(), 10)
    await asyncio.wait_for(d.readiness_job(), 5)
    assert d.readiness.last is not None
    return d.readiness.last


def problems(d: Daemon, account: str) -> dict[str, float]:
    reg = d.c.metrics.registry
    out = {}
    for reason in PlanReason:
        v = reg.get_sample_value(
            "ibkr_watchdog_kill_plan_problems", {"account": account, "reason": reason.value}
        )
        assert v is not None, f"no series for {account} {reason.value}"
        if v:
            out[reason.value] = v
    return out


def ready(d: Daemon, account: str) -> float | None:
    return d.c.metrics.registry.get_sample_value("ibkr_watchdog_kill_ready", {"account": account})


def plan_text(d: Daemon, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    # the daemon's own (test) clock: the plan is judged current against it
    assert plan_command("", state_dir=str(d.c.store.dir), clock=d.c.clock) in (0, 4)  # ready, not ready
    return capsys.readouterr().out


def reasons_of(r: Readiness, account: str, symbol: str) -> set[PlanReason]:
    [a] = [a for a in r.accounts if a.account == account]
    return {p.reason for pos in a.positions if pos.contract.label == symbol for p in pos.problems}


async def test_the_demo_book_plans_every_close_in_regular_hours_and_nothing_reaches_the_wire(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    d = await make_daemon()
    r = await plan(d)

    assert r.ready and [a.account for a in r.accounts] == [DU1, DU2]
    got = {
        (a.account, p.contract.label): [(o.action, o.quantity, o.order_type, o.exchange) for o in p.orders]
        for a in r.accounts
        for p in a.positions
    }
    assert got == {
        (DU1, "AAPL"): [("SELL", 200, "MKT", "SMART")],
        (DU1, "ESZ6"): [("SELL", 2, "MKT", "CME")],
        (DU1, "AAPL  261218C00200000"): [("SELL", 10, "MKT", "SMART")],
        (DU2, "SPY"): [("SELL", 50, "MKT", "SMART")],
        (DU2, "MESZ6"): [("BUY", 3, "MKT", "CME")],
    }
    assert all(p.quote.price and p.quote.source for a in r.accounts for p in a.positions)
    assert ready(d, DU1) == 1 and ready(d, DU2) == 1 and problems(d, DU1) == {} and problems(d, DU2) == {}
    stamp = d.c.metrics.registry.get_sample_value("ibkr_watchdog_kill_readiness_timestamp_seconds")
    assert stamp == pytest.approx(r.planned_at)
    text = plan_text(d, capsys)
    assert "Kill readiness: READY" in text and "SELL 2 MKT on CME" in text and "BUY 3 MKT on CME" in text
    sent = order_messages(sim)  # the write-access probe (a cancel of an id never used) acts on nothing
    assert sent == [], f"order messages on the wire: {sent}"


async def test_it_plans_again_right_after_a_reconnect_and_says_gateway_down_while_it_is_away(
    sim: Simulator, make_daemon: Factory
) -> None:
    d = await make_daemon()
    first = await plan(d)
    await sim.faults.drop(99)
    await until(lambda: not d.c.gateway.status().connected, 5, "the watchdog to see the socket closed")
    await asyncio.wait_for(d.readiness_job(), 5)
    down = d.readiness.last
    assert down is not None
    assert {p.reason for a in down.accounts for p in a.problems} == {PlanReason.GATEWAY_DOWN}
    assert problems(d, DU1) == {"gateway_down": 1} and ready(d, DU1) == 0
    async with asyncio.timeout(10):  # reconnect (with its backoff); the cycle after fresh reads plans again
        while d.readiness.last is down:
            await d.poll_once()
    again = d.readiness.last
    assert again.planned_at > down.planned_at > first.planned_at
    assert again.ready and problems(d, DU1) == {} and ready(d, DU1) == 1


async def test_no_plan_after_a_reconnect_until_the_positions_are_read_again(
    make_daemon: Factory, clock: Clock
) -> None:
    d = await make_daemon()
    before = await plan(d)
    clock.offset += 30.0  # the book was last read before the gateway went away
    d.readiness.on_connect(d.c.clock())  # as a reconnect does
    await asyncio.wait_for(d.readiness_job(), 5)
    assert d.readiness.last is before  # the timer's turn would say data_stale about the old book
    await asyncio.wait_for(d.poll_once(), 10)  # the first reads on the new session: planned at once
    await until(lambda: d.readiness.last is not before, 5, "the plan after the reconnect's reads")
    assert d.readiness.last is not None and d.readiness.last.ready


def assert_shows(
    d: Daemon, r: Readiness, capsys: pytest.CaptureFixture[str], reason: PlanReason, count: int
) -> None:
    """The reason is in the plan, in the metric (with its count) and in `ibkr-watchdog plan`."""
    [a] = [a for a in r.accounts if a.account == DU1]
    assert a.problem_counts().get(reason) == count, a.problem_counts()
    assert problems(d, DU1).get(reason.value) == count and ready(d, DU1) == 0
    text = plan_text(d, capsys)
    assert f"! {reason.value}:" in text or f"NO: {reason.value}" in text or f", {reason.value}" in text, text
    assert "DU111111: NOT READY" in text


def assert_clear(d: Daemon, r: Readiness, capsys: pytest.CaptureFixture[str], reason: PlanReason) -> None:
    [a] = [a for a in r.accounts if a.account == DU1]
    assert reason not in a.problem_counts() and reason.value not in problems(d, DU1)
    assert reason.value not in plan_text(d, capsys)


async def test_market_closed_shows_the_limit_orders_it_would_send_and_clears_when_the_market_opens(
    make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    d = await make_daemon()
    d.c.gateway.market_hours = lambda _sec_type, _now: False
    r = await plan(d)
    assert_shows(d, r, capsys, PlanReason.MARKET_CLOSED, 3)
    [a] = [a for a in r.accounts if a.account == DU1]
    aapl = next(p for p in a.positions if p.contract.label == "AAPL")
    [order] = aapl.orders
    assert (order.action, order.order_type, order.limit_price, order.outside_rth) == (
        "SELL",
        "LMT",
        188.1,
        True,
    )
    # no hours in the simulator's contract details: the built-in table judged (and it never opens)
    assert (aapl.session, aapl.hours_from_table, aapl.market_until) == ("extended", True, None)
    d.c.gateway.market_hours = lambda _sec_type, _now: True
    assert_clear(d, await plan(d), capsys, PlanReason.MARKET_CLOSED)


async def test_no_price_for_a_limit_order_appears_and_clears_when_market_data_arrives(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.set_market_data("AAPL", False)  # from the start: the watchdog never saw a price for it
    sim.rules.market_data = "none"  # and a market data snapshot brings none either
    d = await make_daemon()
    d.c.gateway.market_hours = lambda _sec_type, _now: False  # a limit order needs a price
    r = await plan(d)
    assert reasons_of(r, DU1, "AAPL") == {PlanReason.NO_PRICE, PlanReason.MARKET_CLOSED}
    assert_shows(d, r, capsys, PlanReason.NO_PRICE, 1)
    assert "AAPL STK                   200  nothing" in plan_text(d, capsys)
    sim.set_market_data("AAPL", True)
    r = await plan(d)
    assert_clear(d, r, capsys, PlanReason.NO_PRICE)
    assert reasons_of(r, DU1, "AAPL") == {PlanReason.MARKET_CLOSED}


async def test_an_unknown_contract_appears_and_clears_when_its_details_are_found(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.set_contract_details("ES", False)  # error 200: the future's exchange stays unknown
    d = await make_daemon()
    r = await plan(d)
    assert reasons_of(r, DU1, "ESZ6") == {PlanReason.UNKNOWN_CONTRACT}
    assert_shows(d, r, capsys, PlanReason.UNKNOWN_CONTRACT, 1)
    sim.set_contract_details("ES", True)
    assert_clear(d, await plan(d), capsys, PlanReason.UNKNOWN_CONTRACT)


async def test_a_security_type_the_kill_does_not_close_appears_and_clears_when_it_is_gone(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.universe.add(FUND)
    d = await make_daemon()
    sim.set_position(DU1, FUND.con_id, 12, avg_price=480.0)
    r = await plan(d)
    assert reasons_of(r, DU1, "VFIAX") == {PlanReason.NOT_CLOSABLE}
    assert_shows(d, r, capsys, PlanReason.NOT_CLOSABLE, 1)
    sim.set_position(DU1, FUND.con_id, 0)
    assert_clear(d, await plan(d), capsys, PlanReason.NOT_CLOSABLE)


async def test_dry_run_appears_and_clears_with_a_reload(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = await make_daemon(kill="dry_run: true")
    r = await plan(d)
    assert_shows(d, r, capsys, PlanReason.DRY_RUN, 1)
    write_config(tmp_path, sim.port)
    assert d.reload()
    assert_clear(d, await plan(d), capsys, PlanReason.DRY_RUN)


async def test_a_stale_book_appears_when_positions_were_not_read_for_too_long_and_clears_with_a_read(
    make_daemon: Factory, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    d = await make_daemon()
    await plan(d)
    clock.offset += 60.0  # a minute without a positions poll
    await asyncio.wait_for(d.readiness_job(), 5)
    assert d.readiness.last is not None
    assert_shows(d, d.readiness.last, capsys, PlanReason.DATA_STALE, 1)
    assert "(STALE)" in plan_text(d, capsys)  # `plan` reads the wall clock: the age is not shown here
    assert_clear(d, await plan(d), capsys, PlanReason.DATA_STALE)


async def test_readiness_waits_while_a_kill_runs_so_it_never_competes_with_it(make_daemon: Factory) -> None:
    d = await make_daemon(kill="dry_run: true")
    before = await plan(d)
    task = d.start_kill(Action.CLOSE_ALL, "manual:test", reason="readiness must wait")
    assert d.kills.running
    await asyncio.wait_for(d.readiness_job(), 5)
    assert d.readiness.last is before  # skipped: the book is moving and the kill has the loop
    await asyncio.wait_for(task, 30)
    # the kill changed the book: the next plan waits for positions read after it, then runs at once
    await asyncio.wait_for(d.poll_once(), 10)
    await asyncio.wait_for(d.readiness_job(), 5)
    assert d.readiness.last is not before
    after = d.readiness.last
    assert after is not None and after.planned_at > (d.kill_reports[-1].finished if d.kill_reports else 0)


async def test_the_plan_is_made_off_the_event_loop_and_gives_way_to_a_kill_that_starts_meanwhile(
    make_daemon: Factory,
) -> None:
    d = await make_daemon(kill="dry_run: true")
    await plan(d)
    loop_thread = threading.get_ident()
    entered, release = threading.Event(), threading.Event()
    threads: set[int] = set()

    def calendar(_sec_type: str, _now: float) -> bool:
        if threading.get_ident() != loop_thread:  # the planner's calls (the loop asks once per position too)
            threads.add(threading.get_ident())
            entered.set()
            release.wait(5)  # hold the worker thread until the kill has started
        return True

    before = d.readiness.last
    d.c.gateway.market_hours = calendar
    job = asyncio.ensure_future(d.readiness_job())
    assert await asyncio.wait_for(asyncio.to_thread(entered.wait, 5), 6)
    kill = d.start_kill(Action.CLOSE_ALL, "manual:test", reason="a kill while readiness plans")
    release.set()
    await asyncio.wait_for(job, 10)
    assert threads  # the planner consulted the calendar from a worker thread, off the event loop
    assert d.readiness.last is before  # abandoned: the kill started while it was planning
    await asyncio.wait_for(kill, 30)


async def test_a_read_only_api_appears_once_the_probe_finds_it_and_clears_when_write_access_is_proven(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.set_read_only()
    d = await make_daemon()
    await asyncio.wait_for(d.poll_once(), 10)  # the heartbeat proves write access at connect
    await until(lambda: d.c.gateway.write_access() is False, 5, "the probe to find read-only mode")
    r = await plan(d)
    assert_shows(d, r, capsys, PlanReason.READ_ONLY_API, 1)
    [a] = [a for a in r.accounts if a.account == DU1]
    assert a.write_access is False and a.write_access_as_of is not None
    assert "write access READ-ONLY" in plan_text(d, capsys)
    sim.set_read_only(False)
    assert await asyncio.wait_for(d.c.gateway.check_write_access(), 5) is True
    r = await plan(d)
    assert_clear(d, r, capsys, PlanReason.READ_ONLY_API)
    assert "write access proven" in plan_text(d, capsys)


async def test_read_only_ticked_while_connected_shows_in_the_next_plan_not_after_the_5_minute_probe(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    d = await make_daemon(kill="readiness_interval: 1s")
    await asyncio.wait_for(d.poll_once(), 10)  # the heartbeat proves write access at connect
    await until(lambda: d.c.gateway.write_access() is True, 5, "the probe at connect")
    sim.set_read_only()  # ticked in the gateway's settings while the watchdog is connected

    def proof_age() -> float:
        as_of = d.c.gateway.write_access_as_of()
        return 0.0 if as_of is None else d.c.clock() - as_of

    await until(lambda: proof_age() >= 1.0, 5, "the proof to be one readiness interval old")
    r = await plan(d)  # the heartbeat's own probe is minutes away: the plan renews the proof
    assert_shows(d, r, capsys, PlanReason.READ_ONLY_API, 1)
    assert "write access READ-ONLY (found 0s ago)" in plan_text(d, capsys)


async def test_a_price_older_than_the_bound_appears_and_clears_when_a_fresh_quote_is_there(
    sim: Simulator, make_daemon: Factory, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.rules.market_data = "none"  # no snapshot: the portfolio mark is all a kill would have
    d = await make_daemon(kill="max_price_age: 30s")
    d.c.gateway.market_hours = lambda _sec_type, _now: False  # limit orders: they need a price
    await plan(d)
    for symbol in ("AAPL", "ESZ6", "AAPL  261218C00200000"):  # a change the watchdog sees dates a mark
        sim.set_price(symbol, sim.price(symbol) + 1)

    def dated() -> bool:
        marks = [d.c.gateway.quotes.mark(p.key) for p in d.c.gateway.snapshot().positions if p.account == DU1]
        return all(m is not None and m.as_of is not None for m in marks)

    await until(dated, 5, "the marks' changes to be seen")
    clock.offset += 120.0  # then they stand still for two minutes (the book is read afresh)
    r = await plan(d)
    assert reasons_of(r, DU1, "AAPL") == {PlanReason.PRICE_STALE, PlanReason.MARKET_CLOSED}
    assert_shows(d, r, capsys, PlanReason.PRICE_STALE, 3)
    sim.rules.market_data = "live"  # a snapshot now brings a fresh bid / ask
    assert_clear(d, await plan(d), capsys, PlanReason.PRICE_STALE)


async def test_a_position_whose_single_unit_is_over_the_precaution_limit_appears_and_clears_with_the_limit(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = await make_daemon(kill="max_order_value: 100000")  # one ES contract is worth about 260,000
    r = await plan(d)
    assert reasons_of(r, DU1, "ESZ6") == {PlanReason.PRECAUTION_EXCEEDED}
    assert_shows(d, r, capsys, PlanReason.PRECAUTION_EXCEEDED, 1)
    write_config(tmp_path, sim.port, kill="max_order_value: 300000")
    assert d.reload()
    r = await plan(d)
    assert_clear(d, r, capsys, PlanReason.PRECAUTION_EXCEEDED)
    [a] = [a for a in r.accounts if a.account == DU1]
    es = next(p for p in a.positions if p.contract.label == "ESZ6")
    assert [o.quantity for o in es.orders] == [1, 1]  # sliced under the limit: one contract per order


async def test_a_fractional_remainder_appears_with_the_whole_part_still_planned_and_clears(
    sim: Simulator, make_daemon: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    d = await make_daemon()
    sim.set_position(DU1, "AAPL", 57.68, avg_price=180.0)
    r = await plan(d)
    assert reasons_of(r, DU1, "AAPL") == {PlanReason.FRACTIONAL_REMAINDER}
    assert_shows(d, r, capsys, PlanReason.FRACTIONAL_REMAINDER, 1)
    [a] = [a for a in r.accounts if a.account == DU1]
    aapl = next(p for p in a.positions if p.contract.label == "AAPL")
    assert [(o.action, o.quantity) for o in aapl.orders] == [("SELL", 57)]
    sim.set_position(DU1, "AAPL", 57, avg_price=180.0)
    assert_clear(d, await plan(d), capsys, PlanReason.FRACTIONAL_REMAINDER)
