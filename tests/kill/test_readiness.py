"""Pure kill readiness: the kill's own netting and order planning against a snapshot, sending nothing."""

from __future__ import annotations

import math
from typing import Any

from tests.kill.conftest import kill_config
from tests.kill.fakes import WATCHDOG_REF, future, option, stock
from watchdog import market_hours
from watchdog.kill.readiness import MarketSessions, WriteAccess, plan_readiness, readiness_json
from watchdog.model import (
    AccountState,
    ContractDetails,
    ContractRef,
    GatewayStatus,
    Health,
    OpenOrder,
    Position,
    Quote,
    Snapshot,
)
from watchdog.readiness_model import PlanReason, Readiness

NOW = 1_700_000_000.0


def snapshot(*positions: Position, orders: tuple[OpenOrder, ...] = (), connected: bool = True) -> Snapshot:
    return Snapshot(
        taken_at=NOW,
        accounts={"DU1": AccountState(account="DU1")},
        positions=positions,
        open_orders=orders,
        gateway=GatewayStatus(health=Health.HEALTHY if connected else Health.DOWN, connected=connected),
        positions_as_of=NOW - 1,
    )


def position(contract: ContractRef, qty: float, account: str = "DU1") -> Position:
    return Position(account=account, contract=contract, quantity=qty, market_price=100.0)


def table(open_: bool) -> MarketSessions:
    return MarketSessions(lambda: lambda _sec_type, _t: open_)


def plan(snap: Snapshot, *, open_: bool = True, price: float | None = 100.0, **kw: Any) -> Readiness:
    config = kill_config(**kw.pop("config", {}))
    r = plan_readiness(
        snap,
        config,
        now=NOW,
        accounts=("DU1",),
        table=table(open_),
        details=lambda _p: None,
        quote=lambda _p: None if price is None else Quote(price=price, source="portfolio", as_of=NOW - 5),
        stale_after=10.0,
        **kw,
    )
    assert r is not None
    return r


def working(con_id: int, action: str, qty: float, ref: str = WATCHDOG_REF) -> OpenOrder:
    return OpenOrder(
        order_id=7, perm_id=70 + con_id, client_id=99, account="DU1", contract=stock(con_id), action=action,
        total_quantity=qty, remaining=qty, order_type="LMT", status="Submitted", order_ref=ref,
    )  # fmt: skip


def test_it_nets_the_close_against_our_working_closing_orders_like_the_kill() -> None:
    r = plan(snapshot(position(stock(1), 100), orders=(working(1, "SELL", 30),)))
    [pos] = r.accounts[0].positions
    assert pos.pending == 30
    assert [(o.action, o.quantity, o.order_type) for o in pos.orders] == [("SELL", 70, "MKT")]
    assert r.ready


def test_our_closing_order_on_the_wrong_side_is_cancelled_first_so_nothing_new_is_planned() -> None:
    r = plan(snapshot(position(stock(1), 100), orders=(working(1, "BUY", 10),)))
    [pos] = r.accounts[0].positions
    assert pos.orders == () and math.isnan(pos.pending)
    assert readiness_json(r)["accounts"][0]["positions"][0]["pending"] is None


def test_outside_the_session_it_plans_the_kills_limit_and_says_the_market_is_closed() -> None:
    r = plan(snapshot(position(stock(1), 100), position(future(2), -2)), open_=False, config={"collar": "2%"})
    orders = {p.contract.con_id: [(o.order_type, o.limit_price, o.outside_rth) for o in p.orders]
              for p in r.accounts[0].positions}  # fmt: skip
    assert orders == {1: [("LMT", 98.0, True)], 2: [("LMT", 102.0, True)]}
    assert r.accounts[0].problem_counts() == {PlanReason.MARKET_CLOSED: 2}  # judged by the table: may rest


def test_outside_regular_hours_by_the_table_only_us_stocks_have_an_extended_session() -> None:
    # NOW is a Tuesday 17:13 in New York: after-market for stocks; options, futures (table: closed) none
    r = plan(snapshot(position(stock(1), 100), position(option(3), 2), position(future(2), -2)), open_=False)
    sessions = {p.contract.sec_type: (p.session, p.hours_from_table) for p in r.accounts[0].positions}
    assert sessions == {"STK": ("extended", True), "OPT": ("closed", True), "FUT": ("closed", True)}
    late = NOW + 4 * 3600  # 21:13 New York: after the after-market
    assert market_hours.table_session("STK", False, late) == "closed"
    assert market_hours.table_session("OPT", True, late) == "regular"


def test_read_only_api_is_an_account_wide_critical_reason_counted_once() -> None:
    r = plan(
        snapshot(position(stock(1), 100), position(stock(2, "MSFT"), 5)),
        write_access={"DU1": WriteAccess(allowed=False, as_of=NOW - 3)},
    )
    a = r.accounts[0]
    assert a.problem_counts() == {PlanReason.READ_ONLY_API: 1} and not a.ready
    assert PlanReason.READ_ONLY_API.severity.value == "critical"
    assert a.write_access is False and a.write_access_as_of == NOW - 3


def test_a_disconnected_gateway_is_gateway_down_not_stale_data() -> None:
    r = plan(snapshot(position(stock(1), 100), connected=False))
    assert r.accounts[0].problem_counts() == {PlanReason.GATEWAY_DOWN: 1}


def test_an_account_without_positions_is_still_planned_for_account_wide_reasons() -> None:
    r = plan(snapshot(), config={"dry_run": True})
    assert r.accounts[0].account == "DU1" and r.accounts[0].positions == ()
    assert r.accounts[0].problem_counts() == {PlanReason.DRY_RUN: 1}


def test_the_json_lists_problems_first_and_stays_bounded_while_counts_cover_everything() -> None:
    positions = [position(stock(i, f"S{i:03d}"), 10) for i in range(1, 40)]
    positions.append(position(ContractRef(con_id=99, symbol="IDX", sec_type="IND"), 1))
    data = readiness_json(plan(snapshot(*positions)), max_listed=5)
    [a] = data["accounts"]
    assert len(a["positions"]) == 5 and a["omitted"] == 35
    assert a["positions"][0]["symbol"] == "IDX" and a["positions"][0]["would_close"] is False
    assert a["problem_counts"] == {"not_closable": 1}


def test_market_sessions_keep_the_next_change_until_it_passes_and_follow_a_swapped_calendar() -> None:
    calls: list[float] = []

    def weekdays(sec_type: str, t: float) -> bool:
        calls.append(t)
        return int(t // 3600) % 2 == 0  # open every other hour

    calendar: list[Any] = [weekdays]
    sessions = MarketSessions(lambda: calendar[0])
    start = 3600.0 * 10 + 60
    assert sessions(stock(), start) == (True, 3600.0 * 11)
    n = len(calls)
    assert sessions(stock(), start + 60) == (True, 3600.0 * 11) and len(calls) == n + 1  # cached
    assert sessions(stock(), 3600.0 * 11 + 1) == (False, 3600.0 * 12)  # passed: computed again
    calendar[0] = lambda _s, _t: True
    assert sessions(stock(), 3600.0 * 11 + 2) == (True, None)


def test_with_no_account_known_it_is_not_ready() -> None:
    never = Snapshot(taken_at=NOW, accounts={}, gateway=GatewayStatus(health=Health.DOWN))
    r = plan_readiness(
        never, kill_config(), now=NOW, accounts=(), table=table(True), details=lambda _p: None,
        quote=lambda _p: None, stale_after=10.0,
    )  # fmt: skip
    assert r is not None and r.accounts == () and not r.ready and readiness_json(r)["ready"] is False


def test_a_position_our_working_closing_order_covers_gets_no_new_order_and_shows_what_is_pending() -> None:
    r = plan(snapshot(position(stock(1), 100), orders=(working(1, "SELL", 100),)))
    [pos] = r.accounts[0].positions
    assert pos.orders == () and pos.pending == 100 and r.ready


def test_a_plan_asked_to_give_way_stops_and_returns_nothing() -> None:
    asked: list[int] = []

    def abandon() -> bool:
        asked.append(1)
        return len(asked) > 1  # a kill starts while the first positions are planned

    book = snapshot(*(position(stock(i, f"S{i}"), 10) for i in range(1, 600)))
    r = plan_readiness(
        book, kill_config(), now=NOW, accounts=("DU1",), table=table(True), details=lambda _p: None,
        quote=lambda _p: None, stale_after=10.0, abandon=abandon,
    )  # fmt: skip
    assert r is None and len(asked) == 2  # looked at position 0 and 256, stopped there


def test_the_kills_own_planner_names_fractions_slices_precautions_stale_prices_and_closed_calendars() -> None:
    fraction = plan(snapshot(position(stock(1), 57.68)))
    [pos] = fraction.accounts[0].positions
    assert [(o.quantity, o.order_type) for o in pos.orders] == [(57, "MKT")]  # the whole part still closes
    assert [p.reason for p in pos.problems] == [PlanReason.FRACTIONAL_REMAINDER]
    assert "0.68 of 57.68 is a fraction the API cannot close" in pos.problems[0].detail

    sliced = plan(snapshot(position(stock(1), 100)), config={"max_order_quantity": 40})
    assert [o.quantity for o in sliced.accounts[0].positions[0].orders] == [40, 40, 20] and sliced.ready

    too_big = plan(snapshot(position(stock(1), 100)), config={"max_order_value": 50})  # one share is 100
    assert too_big.accounts[0].problem_counts() == {PlanReason.PRECAUTION_EXCEEDED: 1}

    stale = plan_readiness(
        snapshot(position(stock(1), 100)), kill_config(), now=NOW, accounts=("DU1",), table=table(False),
        details=lambda _p: None, quote=lambda _p: Quote(price=100.0, source="portfolio", as_of=NOW - 7200),
        stale_after=10.0,
    )  # fmt: skip
    assert stale is not None
    [pos] = stale.accounts[0].positions
    assert pos.orders == () and PlanReason.PRICE_STALE in {p.reason for p in pos.problems}
    assert "7200s old) is over kill.max_price_age" in pos.problems[0].detail

    closed = ContractDetails(
        con_id=1, time_zone="US/Eastern", hours_span=(NOW - 86400, NOW + 86400),
        trading_hours=((NOW + 3600, NOW + 7200),), liquid_hours=((NOW + 3600, NOW + 7200),),
    )  # fmt: skip
    by_calendar = plan_readiness(
        snapshot(position(stock(1), 100)), kill_config(), now=NOW, accounts=("DU1",), table=table(True),
        details=lambda _p: closed, quote=lambda _p: None, stale_after=10.0,
    )  # fmt: skip
    assert by_calendar is not None
    [pos] = by_calendar.accounts[0].positions
    assert (pos.session, pos.hours_from_table, pos.market_until) == ("closed", False, NOW + 3600)
    assert [p.reason for p in pos.problems] == [PlanReason.MARKET_CLOSED]
    assert "market closed by the contract's own calendar" in pos.problems[0].detail
