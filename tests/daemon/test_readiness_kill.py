"""A kill fired while readiness shows problems ends exactly as the plan said: the orders it sends are
the plan's orders, and the positions it leaves open are the ones the plan said would not close, for
the reasons the plan gave."""

from __future__ import annotations

import pytest

from tests.daemon.conftest import until
from tests.daemon.test_readiness import FUND, Factory, clock, make_daemon, plan  # noqa: F401  (fixtures)
from watchdog.daemon.lifecycle import Daemon
from watchdog.model import Action, KillOutcome, KillReport
from watchdog.readiness_model import PlanReason, Readiness
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
DU1, DU2 = "DU111111", "DU222222"


@pytest.fixture
def sim(bare_sim: Simulator) -> Simulator:
    """A still book (no scripted price moves): the plan's limit prices are the kill's."""
    s = bare_sim
    s.universe.add(FUND)
    for symbol, price in (("AAPL", 190.0), ("ES", 5200.0), ("SPY", 520.0), (FUND.con_id, 500.0)):
        s.set_price(symbol, price)
    s.set_position(DU1, "AAPL", 200, avg_price=180.0)
    s.set_position(DU1, "ES", 2, avg_price=5100.0)
    s.set_position(DU1, FUND.con_id, 12, avg_price=480.0)
    s.set_position(DU2, "SPY", 50, avg_price=500.0)
    return s


def planned_orders(r: Readiness) -> list[tuple[str, str, float, str, float | None, str, bool]]:
    return sorted(
        (a.account, o.contract.label, o.quantity, o.order_type, o.limit_price, o.exchange, o.outside_rth)
        for a in r.accounts
        for p in a.positions
        for o in p.orders
    )


def sent_orders(report: KillReport) -> list[tuple[str, str, float, str, float | None, str, bool]]:
    return sorted(
        (o.account, o.contract.label, o.quantity, o.order_type, o.limit_price, o.exchange, o.outside_rth)
        for o in report.close_orders
    )


def would_not_close(r: Readiness) -> dict[tuple[str, str], set[PlanReason]]:
    return {
        (a.account, p.contract.label): {x.reason for x in p.problems}
        for a in r.accounts
        for p in a.positions
        if p.problems
    }


async def fire(d: Daemon) -> KillReport:
    # positions that cannot close keep the verification polling for the whole verify_timeout
    d.c.killswitch.config = d.config.kill.model_copy(update={"verify_timeout": 1.5, "max_attempts": 1})
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="readiness check")
    [report] = await d.wait_for_kills(timeout=30)
    return report


async def test_in_regular_hours_it_closes_what_the_plan_said_and_escalates_the_rest_for_the_plans_reasons(
    sim: Simulator,
    make_daemon: Factory,  # noqa: F811
) -> None:
    sim.set_contract_details("ES", False)
    d = await make_daemon()
    r = await plan(d)
    assert would_not_close(r) == {
        (DU1, "ESZ6"): {PlanReason.UNKNOWN_CONTRACT},
        (DU1, "VFIAX"): {PlanReason.NOT_CLOSABLE},
    }

    report = await fire(d)

    assert report.outcome is KillOutcome.ESCALATED
    assert (
        sent_orders(report)
        == planned_orders(r)
        == [
            (DU1, "AAPL", 200, "MKT", None, "SMART", False),
            (DU2, "SPY", 50, "MKT", None, "SMART", False),
        ]
    )
    assert {(p.account, p.contract.label) for p in report.remaining_positions} == set(would_not_close(r))
    details = [x.detail for a in r.accounts for p in a.positions for x in p.problems]
    assert all(detail in report.reason for detail in details), (details, report.reason)


async def test_with_the_market_closed_it_sends_the_plans_limits_and_never_prices_what_had_no_price(
    sim: Simulator,
    make_daemon: Factory,  # noqa: F811
) -> None:
    sim.set_session("closed")  # nothing fills
    sim.set_market_data("AAPL", False)
    sim.rules.market_data = "none"  # no snapshot quote either: the portfolio marks are all there is
    d = await make_daemon()
    d.c.gateway.market_hours = lambda _sec_type, _now: False
    r = await plan(d)
    assert would_not_close(r) == {
        (DU1, "AAPL"): {PlanReason.NO_PRICE, PlanReason.MARKET_CLOSED},
        (DU1, "ESZ6"): {PlanReason.MARKET_CLOSED},
        (DU1, "VFIAX"): {PlanReason.NOT_CLOSABLE},
        (DU2, "SPY"): {PlanReason.MARKET_CLOSED},
    }

    report = await fire(d)

    assert report.outcome is KillOutcome.ESCALATED
    assert (
        sent_orders(report)
        == planned_orders(r)
        == [
            (DU1, "ESZ6", 2, "LMT", 5148.0, "CME", True),
            (DU2, "SPY", 50, "LMT", 514.8, "SMART", True),
        ]
    )
    assert {(p.account, p.contract.label) for p in report.remaining_positions} == set(would_not_close(r))
    assert "no usable mark price" in report.reason and "close it by hand" in report.reason


async def test_with_a_read_only_api_nothing_closes_as_the_plan_said_and_the_escalation_names_it(
    sim: Simulator,
    make_daemon: Factory,  # noqa: F811
) -> None:
    sim.set_read_only()
    d = await make_daemon()
    await d.poll_once()
    await until(lambda: d.c.gateway.write_access() is False, 5, "the probe to find read-only mode")
    r = await plan(d)
    assert {p.reason for a in r.accounts for p in a.problems} == {PlanReason.READ_ONLY_API}

    report = await fire(d)

    assert report.outcome is KillOutcome.ESCALATED
    held = {(p.account, p.contract.label) for a in r.accounts for p in a.positions}
    assert {(p.account, p.contract.label) for p in report.remaining_positions} == held
    assert "read-only" in report.reason.lower(), report.reason
    assert sim.executions() == []  # nothing traded
