"""Combining a contract's market rules into one tick ladder (issue 13 review)."""

from __future__ import annotations

from watchdog.gateway.contract_details import ladder_for


def test_ladders_whose_increments_do_not_divide_combine_to_their_least_common_multiple() -> None:
    rules = {26: ((0.0, 0.03),), 99: ((0.0, 0.05),)}
    assert ladder_for("SMART", "ARCA,ISE", "26,99", rules) == ((0.0, 0.15),)
    nested = {32: ((0.0, 0.05), (3.0, 0.10)), 99: ((0.0, 0.01), (3.0, 0.05))}
    assert ladder_for("SMART", "SMART,ARCA,ISE", "32,26,99", nested) == ((0.0, 0.05), (3.0, 0.1))
