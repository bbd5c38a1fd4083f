"""Small behaviours of the shared records."""

from __future__ import annotations

import math

from watchdog.model import AccountState, Action, ContractRef, OpenOrder


def test_signed_remaining_follows_the_order_side() -> None:
    c = ContractRef(con_id=1, symbol="AAPL", sec_type="STK")
    buy = OpenOrder(
        order_id=1,
        perm_id=1,
        client_id=1,
        account="DU1",
        contract=c,
        action="BUY",
        total_quantity=10,
        remaining=7,
        status="Submitted",
    )
    sell = OpenOrder(
        order_id=2,
        perm_id=2,
        client_id=1,
        account="DU1",
        contract=c,
        action="SELL",
        total_quantity=10,
        remaining=4,
        status="Filled",
    )
    assert buy.signed_remaining == 7
    assert sell.signed_remaining == -4
    assert buy.is_working and not sell.is_working


def test_nan_account_values_read_as_unknown() -> None:
    a = AccountState(account="DU1", daily_pnl=math.nan, net_liquidation=1000.0)
    assert a.value("daily_pnl") is None
    assert a.value("net_liquidation") == 1000.0


def test_only_cancel_and_close_are_kills() -> None:
    assert not Action.ALERT.is_kill
    assert Action.CANCEL_ALL.is_kill and Action.CLOSE_ALL.is_kill
