"""plan_close is a pure function: (need, contract details, quote, clock, config) → orders or reasons."""

from __future__ import annotations

import pytest

from tests.kill.fakes import future, option, stock
from watchdog.config.schema import KillConfig
from watchdog.kill.plan import CloseNeed
from watchdog.kill.pricing import collar_for, on_ladder, plan_close, slices
from watchdog.market_hours import parse_hours
from watchdog.model import ContractDetails, Position, Quote

NOW = 1_764_600_000.0  # 2025-12-01 14:40 UTC, a Monday
CFG = KillConfig()
OPTION_LADDER = ((0.0, 0.05), (3.0, 0.10))


def need(quantity: float, action: str = "SELL", contract=None) -> CloseNeed:  # type: ignore[no-untyped-def]
    c = contract or stock()
    signed = quantity if action == "SELL" else -quantity
    return CloseNeed(Position(account="DU1", contract=c, quantity=signed), action, quantity, 0.0)


def quote(price: float, age: float = 1.0, source: str = "bid") -> Quote:
    return Quote(price=price, as_of=NOW - age, source=source)


@pytest.mark.parametrize(
    ("raw", "side", "expected"),
    [
        (3.0098, "BUY", 3.1),  # crosses the 3.00 edge: the upper ladder's tick
        (2.98, "BUY", 3.0),
        (2.98, "SELL", 2.95),
        (3.04, "SELL", 3.0),
        (2.9999, "SELL", 2.95),
        (0.03, "SELL", 0.0),
    ],
)
def test_prices_round_onto_the_ladder_away_from_the_market(raw: float, side: str, expected: float) -> None:
    assert on_ladder(raw, side, OPTION_LADDER) == pytest.approx(expected)


def test_a_limit_on_an_option_ladder_goes_to_the_upper_tick() -> None:
    details = ContractDetails(con_id=3, price_ladder=OPTION_LADDER)
    planned = plan_close(need(10, "BUY", option()), details, quote(2.98, source="ask"), NOW, CFG)
    assert [(o.order_type, o.limit_price, o.outside_rth) for o in planned.orders] == [("LMT", 3.1, True)]
    assert any("no trading hours from contract details" in n for n in planned.notes)
    assert planned.hours_from_table and planned.problem == ""


def test_a_quote_older_than_the_bound_is_reported_not_used() -> None:
    planned = plan_close(need(100), None, quote(170.0, age=3600.0, source="portfolio"), NOW, CFG)
    assert planned.orders == ()
    assert "3600s old" in planned.refusal and "kill.max_price_age" in planned.refusal
    assert planned.problem == "stale_price"


def test_a_fraction_is_left_for_a_manual_close_and_only_whole_shares_are_sent() -> None:
    planned = plan_close(need(57.68), None, None, NOW, CFG, fallback_regular=lambda s, t: True)
    assert [(o.order_type, o.quantity) for o in planned.orders] == [("MKT", 57.0)]
    assert "0.68 of 57.68" in planned.manual
    only_fraction = plan_close(need(0.68), None, None, NOW, CFG, fallback_regular=lambda s, t: True)
    assert only_fraction.orders == () and "needs a manual close" in only_fraction.refusal
    assert only_fraction.problem == "fraction"


def test_slices_stay_under_value_and_quantity_limits_and_never_add_quantity() -> None:
    cfg = KillConfig(max_order_value=90_000, max_order_quantity=400)
    planned = plan_close(need(1000), None, quote(190.0), NOW, cfg, fallback_regular=lambda s, t: True)
    sizes = [o.quantity for o in planned.orders]
    assert sizes == [400.0, 400.0, 200.0]
    assert sum(sizes) == 1000
    too_big = plan_close(need(1), None, quote(190.0), NOW, KillConfig(max_order_value=100))
    assert "cannot slice" in too_big.refusal and too_big.problem == "slice_limit"


def test_the_contracts_own_calendar_decides_and_a_closed_market_is_refused() -> None:
    trading, span = parse_hours("20251201:0400-20251201:2000;20251202:0400-20251202:2000", "US/Eastern")
    liquid, _ = parse_hours("20251201:0930-20251201:1600;20251202:0930-20251202:1600", "US/Eastern")
    details = ContractDetails(
        con_id=1, time_zone="US/Eastern", trading_hours=trading, liquid_hours=liquid, hours_span=span
    )
    at_open = plan_close(need(10), details, None, NOW, CFG, fallback_regular=lambda s, t: False)
    assert [o.order_type for o in at_open.orders] == ["MKT"]  # 09:40 New York: regular, table ignored
    night = NOW + 12 * 3600  # 21:40 New York
    closed = plan_close(need(10), details, quote(100.0, age=0.0), night, CFG)
    assert closed.orders == () and "next session 2025-12-02 04:00 EST" in closed.refusal
    assert closed.problem == "market_closed" and not at_open.hours_from_table


def test_the_collar_widens_per_retry_up_to_its_maximum() -> None:
    assert [collar_for(n, CFG) for n in (1, 2, 3, 9)] == pytest.approx([0.01, 0.02, 0.03, 0.05])


def test_hours_text_with_holidays_and_overnight_sessions_parses_in_the_exchange_zone() -> None:
    trading, span = parse_hours("20251130:1700-20251201:1600;20251127:CLOSED", "US/Central")
    assert trading == ((1764543600.0, 1764626400.0),)
    assert span is not None and span[0] <= 1764543600.0 and span[1] >= 1764626400.0
    assert parse_hours("garbage", "US/Central") == ((), None)
    assert parse_hours("20251201:0900-20251201:1730", "Nowhere/Land") == ((), None)


def test_a_mark_of_unknown_age_is_used_and_said_so_never_refused_as_stale() -> None:
    mark = Quote(price=190.0, as_of=None, source="portfolio")
    planned = plan_close(need(100), None, mark, NOW, CFG, fallback_regular=lambda s, t: False)
    assert [o.limit_price for o in planned.orders] == [188.1]
    assert any("priced from portfolio mark 190, age unknown" in n for n in planned.notes)


@pytest.mark.parametrize(
    ("limits", "price", "expected_sizes", "named"),
    [
        ({"max_order_quantity": 3}, 190.0, [3.0, 3.0, 3.0, 1.0], "kill.max_order_quantity 3"),
        ({"max_order_value": 1000}, 190.0, [5.0, 5.0], "kill.max_order_value 1000 at 190 a unit"),
        (
            {"max_order_quantity": 4, "max_order_value": 1000},
            190.0,
            [4.0, 4.0, 2.0],
            "kill.max_order_quantity 4",
        ),
        (
            {"max_order_value": 100},
            190.0,
            [],
            "kill.max_order_value 100 at 190 a unit leaves less than one unit",
        ),
    ],
)
def test_slices_name_the_limit_that_binds(
    limits: dict[str, float], price: float, expected_sizes: list[float], named: str
) -> None:
    sizes, why = slices(10.0, price, 1.0, "STK", KillConfig.model_validate(limits))
    assert sizes == expected_sizes
    assert named in why


@pytest.mark.parametrize(
    ("raw", "side", "expected"),
    [(-2.53, "BUY", -2.5), (-2.53, "SELL", -2.55), (-2.5, "BUY", -2.5), (-0.02, "BUY", 0.0)],
)
def test_a_negative_price_rounds_on_the_ladder_of_its_size_towards_the_market(
    raw: float, side: str, expected: float
) -> None:
    assert on_ladder(raw, side, ((0.0, 0.05),)) == expected


def test_a_future_below_zero_gets_a_negative_limit_a_stock_names_the_negative_price() -> None:
    spread = plan_close(need(1, "BUY", future()), None, quote(-2.5), NOW, CFG)
    assert [o.limit_price for o in spread.orders] == [-2.47]  # −2.5 + 1 % of 2.5, on cents: higher
    planned = plan_close(need(1, "BUY"), None, quote(-2.5), NOW, CFG, fallback_regular=lambda s, t: False)
    assert planned.orders == () and "a negative price (-2.5) for STK" in planned.refusal


def test_a_large_price_on_a_fine_tick_is_sent_with_the_ticks_decimals() -> None:
    price = on_ladder(1e8 + 0.07, "BUY", ((0.0, 0.01),))
    assert repr(price) == "100000000.07"
    assert repr(on_ladder(9876543.21, "BUY", ((0.0, 0.01),))) == "9876543.21"  # on a tick: stays
