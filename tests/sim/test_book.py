"""Book arithmetic: P&L, cash and account values stay consistent through fills and price moves."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.sim.book import Book
from watchdog.sim.universe import Universe

U = Universe.builtin()


def book() -> Book:
    return Book(U, ("DU1",), 100_000.0, lambda: 1_760_000_000.0)


def test_setting_a_position_creates_no_daily_pnl_and_leaves_cash() -> None:
    b = book()
    b.set_position("DU1", U.get("AAPL"), 100, 180.0)
    assert b.pnl("DU1") == (0.0, 1000.0, 0.0)
    values = b.account_values("DU1")
    assert values["TotalCashValue"] == "100000.00"
    assert values["NetLiquidation"] == "119000.00"


def test_round_trip_in_a_future_realizes_pnl_minus_commission_into_cash() -> None:
    b = book()
    es = U.get("ES")
    b.apply_fill("DU1", es, 2, 5200.0, 4.5)
    b.set_mark(es.con_id, 5210.0)
    assert b.pnl("DU1") == pytest.approx((1000.0 - 4.5, 1000.0, -4.5))
    realized = b.apply_fill("DU1", es, -2, 5210.0, 4.5)
    assert realized == pytest.approx(1000.0 - 4.5)
    assert b.pnl("DU1") == pytest.approx((991.0, 0.0, 991.0))
    assert float(b.account_values("DU1")["TotalCashValue"]) == pytest.approx(100_991.0)


def test_flipping_through_zero_resets_the_average_price() -> None:
    b = book()
    aapl = U.get("AAPL")
    b.apply_fill("DU1", aapl, 10, 100.0, 0.0)
    b.apply_fill("DU1", aapl, -15, 110.0, 0.0)
    pos = b.positions[("DU1", aapl.con_id)]
    assert (pos.qty, pos.avg_price, pos.realized_today) == (-5, 110.0, 100.0)


def test_overrides_win_and_derived_tags_follow_net_liquidation() -> None:
    b = book()
    b.set_account_value("DU1", "NetLiquidation", 50_000.0)
    b.set_account_value("DU1", "MaintMarginReq", 10_000.0)
    values = b.account_values("DU1")
    assert (values["NetLiquidation"], values["ExcessLiquidity"], values["Cushion"]) == (
        "50000.00",
        "40000.00",
        "0.8000",
    )
    b.account("DU1").pnl_override["daily"] = -2600.0
    assert b.pnl("DU1")[0] == -2600.0


@given(
    fills=st.lists(
        st.tuples(st.integers(-50, 50).filter(bool), st.floats(50, 300, allow_nan=False)),
        min_size=1,
        max_size=12,
    ),
    mark=st.floats(50, 300, allow_nan=False),
)
def test_daily_pnl_equals_realized_plus_unrealized_for_a_day_started_flat(
    fills: list[tuple[int, float]], mark: float
) -> None:
    b = book()
    aapl = U.get("AAPL")
    for qty, price in fills:
        b.apply_fill("DU1", aapl, qty, price, 1.0)
    b.set_mark(aapl.con_id, mark)
    daily, unrealized, realized = b.pnl("DU1")
    assert daily == pytest.approx(realized + unrealized, abs=1e-6)
    values = b.account_values("DU1")
    assert float(values["NetLiquidation"]) == pytest.approx(100_000.0 + daily, abs=0.01)
