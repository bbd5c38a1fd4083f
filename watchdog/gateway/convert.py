"""Convert ib_async objects into `watchdog.model` records at the boundary (pure functions).

Only `gateway.py` and this module touch ib_async types; nothing downstream sees camelCase, IB's
"unset" sentinels (2147483647 / 1.797e308) or NaN — those become None.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from ib_async import Contract, PnLSingle, PortfolioItem, Trade
from ib_async import Fill as IbFill
from ib_async import Position as IbPosition
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER

from watchdog.model import ContractRef, Fill, OpenOrder, OrderKey, Position, is_terminal, latest_revisions

# account summary tag -> AccountState field
SUMMARY_TAGS: Mapping[str, str] = {
    "NetLiquidation": "net_liquidation",
    "ExcessLiquidity": "excess_liquidity",
    "Cushion": "cushion",
    "MaintMarginReq": "maint_margin_req",
    "InitMarginReq": "init_margin_req",
    "AvailableFunds": "available_funds",
    "PreviousDayEquityWithLoanValue": "previous_day_equity",
    "GrossPositionValue": "gross_position_value",
}


def num(value: object) -> float | None:
    """A float, or None for IB's unset sentinels, NaN, infinities, empty strings and garbage."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int):
        return None if value == UNSET_INTEGER else float(value)
    if isinstance(value, float | Decimal):
        f = float(value)
        if math.isnan(f) or math.isinf(f) or f == UNSET_DOUBLE:
            return None
        return f
    return None


def contract_ref(c: Contract) -> ContractRef:
    multiplier = num(c.multiplier) if c.multiplier else None
    strike = num(c.strike)
    return ContractRef(
        con_id=int(c.conId or 0),
        symbol=c.symbol or "",
        sec_type=c.secType or "",
        currency=c.currency or "",
        exchange=c.exchange or "",
        primary_exchange=c.primaryExchange or "",
        local_symbol=c.localSymbol or "",
        trading_class=c.tradingClass or "",
        last_trade_date=c.lastTradeDateOrContractMonth or "",
        strike=strike if strike is not None else 0.0,
        right=c.right or "",
        multiplier=multiplier if multiplier else 1.0,
    )


def position_from(p: IbPosition, item: PortfolioItem | None = None) -> Position:
    """A position from reqPositions, enriched with the portfolio's market data when available."""
    return Position(
        account=p.account,
        contract=contract_ref(p.contract),
        quantity=float(p.position),
        avg_cost=num(p.avgCost) or 0.0,
        market_price=num(item.marketPrice) if item is not None else None,
        market_value=num(item.marketValue) if item is not None else None,
        unrealized_pnl=num(item.unrealizedPNL) if item is not None else None,
    )


def position_from_portfolio(item: PortfolioItem) -> Position:
    return Position(
        account=item.account,
        contract=contract_ref(item.contract),
        quantity=float(item.position),
        avg_cost=num(item.averageCost) or 0.0,
        market_price=num(item.marketPrice),
        market_value=num(item.marketValue),
        unrealized_pnl=num(item.unrealizedPNL),
    )


def with_pnl_single(pos: Position, single: PnLSingle) -> Position:
    """Market value (and price) from a reqPnLSingle stream, for accounts without portfolio data."""
    value = num(single.value)
    if value is None:
        return pos
    units = pos.quantity * pos.contract.multiplier
    unrealized = pos.unrealized_pnl if pos.unrealized_pnl is not None else num(single.unrealizedPnL)
    return dataclasses.replace(
        pos, market_value=value, market_price=value / units if units else None, unrealized_pnl=unrealized
    )


def open_order_from(trade: Trade, reported_status: str | None = None) -> OpenOrder:
    """A working order as reported by reqAllOpenOrders (any client, manual orders included).

    `reported_status` is the status the gateway itself put in this answer's openOrder message. It
    wins over the Trade's: ib_async writes statuses of its own into the Trade (Cancelled after any
    order error or on cancelling an Inactive order, PendingCancel on cancelOrder, ValidationError),
    and only the gateway can confirm that an order is finished."""
    o, s = trade.order, trade.orderStatus
    status = reported_status if reported_status else s.status
    total = num(o.totalQuantity) or 0.0
    filled = num(s.filled) or 0.0
    order_filled = num(o.filledQuantity)
    if order_filled is not None:
        filled = max(filled, order_filled)
    remaining = num(s.remaining)
    if not remaining:
        # an order first seen through reqAllOpenOrders has no orderStatus yet: derive it
        remaining = max(0.0, total - filled)
    return OpenOrder(
        order_id=int(o.orderId),
        perm_id=int(o.permId),
        client_id=int(o.clientId),
        account=o.account,
        contract=contract_ref(trade.contract),
        action=o.action.upper(),
        total_quantity=total,
        filled=filled,
        remaining=remaining,
        order_type=o.orderType,
        lmt_price=num(o.lmtPrice),
        aux_price=num(o.auxPrice),
        status=status,
        order_ref=o.orderRef or "",
        outside_rth=bool(o.outsideRth),
        why_held=s.whyHeld or "",
    )


def heard_orders(trades: Iterable[Trade], heard: Callable[[OrderKey], str | None]) -> list[OpenOrder]:
    """The orders whose latest status the gateway sent (`heard` by `model.order_key`) is not terminal."""
    out = []
    for trade in trades:
        o = trade.order
        key: OrderKey = (o.permId, 0, 0) if o.permId else (0, o.clientId, o.orderId)
        status = heard(key)
        if status is not None and not is_terminal(status):
            out.append(open_order_from(trade, status))
    return out


def executed(fills: Iterable[IbFill], order: OpenOrder) -> float:
    """Shares executed so far for `order` (execDetails matched by permId, else client and order id)."""

    def same(f: IbFill) -> bool:
        e = f.execution
        if order.perm_id:
            return bool(e.permId == order.perm_id)
        return (e.clientId, e.orderId) == (order.client_id, order.order_id)

    # a correction replaces what it corrects: a price-only correction is not a second fill
    mine = latest_revisions((f for f in fills if same(f)), lambda f: f.execution.execId)
    return sum(num(f.execution.shares) or 0.0 for f in mine)


def fill_from(f: IbFill) -> Fill:
    e, report = f.execution, f.commissionReport
    # a commission report is linked by execId; until it arrives the commission is unknown
    commission = num(report.commission) if report.execId else None
    return Fill(
        exec_id=e.execId,
        time=e.time.timestamp(),
        account=e.acctNumber,
        contract=contract_ref(f.contract),
        side=e.side,
        shares=float(e.shares),
        price=float(e.price),
        order_id=int(e.orderId),
        perm_id=int(e.permId),
        client_id=int(e.clientId),
        order_ref=e.orderRef or "",
        commission=commission,
    )
