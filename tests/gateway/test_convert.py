"""ib_async objects (built from ib_async's own dataclasses) become model records at the boundary."""

from __future__ import annotations

import datetime as dt
import math
from types import MappingProxyType

import pytest
from ib_async import (
    CommissionReport,
    Contract,
    Execution,
    Fill,
    Order,
    OrderStatus,
    PnLSingle,
    PortfolioItem,
    Position,
    Trade,
)
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER

from watchdog.gateway import convert
from watchdog.gateway.snapshot_cache import SnapshotCache
from watchdog.model import GatewayStatus, OpenOrder, order_key

AAPL = Contract(
    conId=265598, symbol="AAPL", secType="STK", exchange="NASDAQ", currency="USD", localSymbol="AAPL"
)
ES = Contract(
    conId=495512563,
    symbol="ES",
    secType="FUT",
    lastTradeDateOrContractMonth="20251219",
    multiplier="50",
    exchange="CME",
    currency="USD",
    localSymbol="ESZ5",
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (UNSET_DOUBLE, None),
        (UNSET_INTEGER, None),
        (math.nan, None),
        (math.inf, None),
        ("", None),
        ("abc", None),
        ("0.25", 0.25),
        (3, 3.0),
        (-1.5, -1.5),
        (True, None),
    ],
)
def test_num_folds_ib_unset_values_and_garbage_into_none(raw: object, expected: float | None) -> None:
    assert convert.num(raw) == expected


def test_contracts_keep_identity_and_routing_fields() -> None:
    ref = convert.contract_ref(ES)
    assert (ref.con_id, ref.symbol, ref.sec_type, ref.exchange) == (495512563, "ES", "FUT", "CME")
    assert ref.multiplier == 50.0 and ref.last_trade_date == "20251219" and ref.label == "ESZ5"
    assert convert.contract_ref(AAPL).multiplier == 1.0


def test_a_position_takes_market_data_from_the_portfolio_item() -> None:
    p = Position("DU1", AAPL, 100.0, 150.0)
    item = PortfolioItem(AAPL, 100.0, 190.0, 19_000.0, 150.0, 4_000.0, 0.0, "DU1")
    pos = convert.position_from(p, item)
    assert (pos.account, pos.quantity, pos.avg_cost) == ("DU1", 100.0, 150.0)
    assert (pos.market_price, pos.market_value, pos.unrealized_pnl) == (190.0, 19_000.0, 4_000.0)
    assert convert.position_from(p).market_value is None


def test_pnl_single_value_gives_market_value_and_price_for_short_futures() -> None:
    pos = convert.position_from(Position("DU2", ES, -2.0, 250_000.0))
    single = PnLSingle(account="DU2", conId=ES.conId, position=-2, unrealizedPnL=-500.0, value=-600_000.0)
    out = convert.with_pnl_single(pos, single)
    assert out.market_value == -600_000.0
    assert out.market_price == pytest.approx(6_000.0)  # -600000 / (-2 * 50)
    assert out.unrealized_pnl == -500.0
    assert convert.with_pnl_single(pos, PnLSingle(account="DU2", conId=ES.conId)) is pos  # NaN value


def test_an_order_of_another_client_without_status_derives_its_remaining_quantity() -> None:
    order = Order(
        orderId=7, clientId=3, permId=9001, action="sell", totalQuantity=10, orderType="LMT",
        lmtPrice=191.5, account="DU1", orderRef="bot-1", outsideRth=True, filledQuantity=4,
    )  # fmt: skip
    trade = Trade(contract=AAPL, order=order, orderStatus=OrderStatus(orderId=7, status="Submitted"))
    o = convert.open_order_from(trade)
    assert (o.order_id, o.perm_id, o.client_id, o.account) == (7, 9001, 3, "DU1")
    assert (o.action, o.total_quantity, o.filled, o.remaining) == ("SELL", 10.0, 4.0, 6.0)
    assert (o.order_type, o.lmt_price, o.aux_price) == ("LMT", 191.5, None)
    assert (o.status, o.order_ref, o.outside_rth, o.is_working) == ("Submitted", "bot-1", True, True)


def test_a_manual_order_keeps_client_zero_and_its_reported_remaining() -> None:
    order = Order(
        orderId=0, clientId=0, permId=77, action="BUY", totalQuantity=5, orderType="MKT", account="DU2"
    )
    status = OrderStatus(orderId=0, status="PreSubmitted", filled=1, remaining=4)
    o = convert.open_order_from(Trade(contract=AAPL, order=order, orderStatus=status))
    assert (o.client_id, o.remaining, o.filled, o.lmt_price) == (0, 4.0, 1.0, None)
    assert order_key(o) == (77, 0, 0)  # permId identifies a manual order across clients


def test_a_fill_carries_epoch_time_and_commission_only_once_reported() -> None:
    when = dt.datetime(2025, 1, 15, 15, 0, 1, tzinfo=dt.UTC)
    ex = Execution(
        execId="0001.01", time=when, acctNumber="DU1", exchange="ISLAND", side="BOT", shares=10, price=190.25,
        permId=9001, clientId=3, orderId=7, orderRef="bot-1",
    )  # fmt: skip
    pending = convert.fill_from(Fill(AAPL, ex, CommissionReport(), when))
    assert pending.commission is None
    assert pending.time == when.timestamp()
    reported = convert.fill_from(Fill(AAPL, ex, CommissionReport(execId="0001.01", commission=1.05), when))
    assert (reported.exec_id, reported.account, reported.side, reported.shares) == (
        "0001.01",
        "DU1",
        "BOT",
        10.0,
    )
    assert (reported.price, reported.perm_id, reported.commission) == (190.25, 9001, 1.05)


def _order(perm: int, account: str = "DU1") -> OpenOrder:
    return OpenOrder(
        order_id=perm, perm_id=perm, client_id=1, account=account, contract=convert.contract_ref(AAPL),
        action="BUY", total_quantity=1, remaining=1, status="Submitted",
    )  # fmt: skip


def test_snapshot_counts_only_orders_that_appear_after_the_first_poll() -> None:
    cache = SnapshotCache()
    cache.set_orders([_order(1), _order(2, "DU2")], at=100.0)  # baseline: already working
    cache.set_orders([_order(1), _order(3), _order(4, "DU9")], at=105.0)
    snap = cache.build(taken_at=106.0, watched=("DU1", "DU2"), gateway=GatewayStatus())
    assert snap.order_events == (("DU1", 105.0),)
    assert [o.perm_id for o in snap.open_orders] == [1, 3]  # DU9 is not watched
    assert snap.orders_as_of == 105.0


def test_snapshot_accounts_carry_a_receive_time_per_value() -> None:
    cache = SnapshotCache()
    cache.set_value("DU1", "net_liquidation", 100_000.0, 10.0, "EUR")
    cache.set_value("DU1", "daily_pnl", -250.0, 12.0)
    snap = cache.build(taken_at=13.0, watched=("DU1", "DU2"), gateway=GatewayStatus())
    a = snap.accounts["DU1"]
    assert (a.net_liquidation, a.daily_pnl, a.currency) == (100_000.0, -250.0, "EUR")
    assert a.as_of == MappingProxyType({"net_liquidation": 10.0, "daily_pnl": 12.0})
    assert snap.accounts["DU2"].net_liquidation is None and snap.taken_at == 13.0
