"""Closing limit prices land on the contract's tick and stay on the marketable side of the mark."""

from __future__ import annotations

import pytest

from watchdog.kill.plan import limit_price


@pytest.mark.parametrize(
    ("mark", "side", "tick", "expected"),
    [
        (5200.0, "SELL", 0.25, 5148.0),  # 5148.0 exactly on the ES tick
        (5201.1, "SELL", 0.25, 5149.0),  # 5149.089 rounds down to the tick below
        (5201.1, "BUY", 0.25, 5253.25),  # 5253.111 rounds up to the tick above
        (12.5, "SELL", 0.05, 12.35),  # 12.375 → 12.35, not the off-tick 12.37
        (1.08, "BUY", 0.00005, 1.0908),
    ],
)
def test_a_known_tick_puts_the_limit_on_a_tick_away_from_the_mark(
    mark: float, side: str, tick: float, expected: float
) -> None:
    price = limit_price(mark, side, 0.01, "FUT", tick)
    assert price == pytest.approx(expected, abs=1e-9)
    assert price is not None
    steps = price / tick
    assert abs(steps - round(steps)) < 1e-6
    assert (price <= mark) if side == "SELL" else (price >= mark)


def test_without_a_tick_cents_are_used_as_before() -> None:
    assert limit_price(12.5, "SELL", 0.01, "OPT") == 12.37
    assert limit_price(0.0, "SELL", 0.01, "OPT", 0.05) is None
