"""Server-to-client message encoders at server version 178 (field order of ib_async 2.1 / ibapi 10.50)."""

from __future__ import annotations

import time as _time

from watchdog.sim.book import Execution, PositionState, SimOrder
from watchdog.sim.codec import UNSET_DOUBLE, UNSET_INT, Field

# Re-exported so callers find every encoder here.
from watchdog.sim.contract_messages import contract_details as contract_details
from watchdog.sim.universe import Instrument

SERVER_VERSION = 178
MIN_CLIENT_VERSION = 157

# Incoming (client -> server) message ids.
IN_PLACE_ORDER = 3
IN_CANCEL_ORDER = 4
IN_REQ_OPEN_ORDERS = 5
IN_REQ_ACCOUNT_UPDATES = 6
IN_REQ_EXECUTIONS = 7
IN_REQ_IDS = 8
IN_REQ_CONTRACT_DETAILS = 9
IN_REQ_AUTO_OPEN_ORDERS = 15
IN_REQ_ALL_OPEN_ORDERS = 16
IN_REQ_CURRENT_TIME = 49
IN_REQ_GLOBAL_CANCEL = 58
IN_REQ_MARKET_DATA_TYPE = 59
IN_REQ_POSITIONS = 61
IN_REQ_ACCOUNT_SUMMARY = 62
IN_CANCEL_ACCOUNT_SUMMARY = 63
IN_CANCEL_POSITIONS = 64
IN_START_API = 71
IN_REQ_ACCOUNT_UPDATES_MULTI = 76
IN_CANCEL_ACCOUNT_UPDATES_MULTI = 77
IN_REQ_PNL = 92
IN_CANCEL_PNL = 93
IN_REQ_PNL_SINGLE = 94
IN_CANCEL_PNL_SINGLE = 95
IN_REQ_COMPLETED_ORDERS = 99

# Outgoing (server -> client) message ids.
ORDER_STATUS = 3
ERR_MSG = 4
OPEN_ORDER = 5
ACCT_VALUE = 6
PORTFOLIO_VALUE = 7
ACCT_UPDATE_TIME = 8
NEXT_VALID_ID = 9
CONTRACT_DATA = 10
EXECUTION_DATA = 11
MANAGED_ACCTS = 15
CURRENT_TIME = 49
CONTRACT_DATA_END = 52
OPEN_ORDER_END = 53
ACCT_DOWNLOAD_END = 54
EXECUTION_DATA_END = 55
COMMISSION_REPORT = 59
POSITION_DATA = 61
POSITION_END = 62
ACCOUNT_SUMMARY = 63
ACCOUNT_SUMMARY_END = 64
ACCOUNT_UPDATE_MULTI = 73
ACCOUNT_UPDATE_MULTI_END = 74
PNL = 94
PNL_SINGLE = 95
COMPLETED_ORDERS_END = 102


def handshake_reply(version: int, epoch: float) -> list[Field]:
    """Exactly two fields: ib_async and ibapi both recognise the handshake by the count."""
    return [version, _time.strftime("%Y%m%d %H:%M:%S", _time.gmtime(epoch)) + " GMT"]


def next_valid_id(order_id: int) -> list[Field]:
    return [NEXT_VALID_ID, 1, order_id]


def managed_accounts(accounts: list[str]) -> list[Field]:
    return [MANAGED_ACCTS, 1, ",".join(accounts)]


def error(req_id: int, code: int, message: str, advanced_json: str = "") -> list[Field]:
    return [ERR_MSG, 2, req_id, code, message, advanced_json]


def current_time(epoch: int) -> list[Field]:
    return [CURRENT_TIME, 1, epoch]


def _multiplier(inst: Instrument) -> str:
    return inst.multiplier_text


def contract11(inst: Instrument, exchange: str) -> list[Field]:
    """conId, symbol, secType, lastTradeDate, strike, right, multiplier, exchange, currency, localSymbol,
    tradingClass: the contract block shared by position, openOrder and execDetails."""
    return [
        inst.con_id,
        inst.symbol,
        inst.sec_type,
        inst.last_trade_date,
        inst.strike,
        inst.right,
        _multiplier(inst),
        exchange,
        inst.currency,
        inst.local_symbol,
        inst.trading_class,
    ]


def position_exchange(inst: Instrument) -> str:
    """Position contracts carry the primary exchange (stocks) or nothing: never a routable exchange."""
    return inst.primary_exchange if inst.sec_type == "STK" else ""


def position(pos: PositionState) -> list[Field]:
    return [
        POSITION_DATA,
        3,
        pos.account,
        *contract11(pos.inst, position_exchange(pos.inst)),
        pos.qty,
        pos.avg_cost,
    ]


def position_end() -> list[Field]:
    return [POSITION_END, 1]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[Field]:
    return [ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> list[Field]:
    return [ACCOUNT_SUMMARY_END, 1, req_id]


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> list[Field]:
    return [PNL, req_id, daily, unrealized, realized]


def pnl_single(
    req_id: int, pos: float, daily: float, unrealized: float, realized: float, value: float
) -> list[Field]:
    return [PNL_SINGLE, req_id, pos, daily, unrealized, realized, value]


def account_value(key: str, value: str, currency: str, account: str) -> list[Field]:
    return [ACCT_VALUE, 2, key, value, currency, account]


def portfolio_value(pos: PositionState, mark: float, market_value: float, unrealized: float) -> list[Field]:
    i = pos.inst
    return [
        PORTFOLIO_VALUE,
        8,
        i.con_id,
        i.symbol,
        i.sec_type,
        i.last_trade_date,
        i.strike,
        i.right,
        _multiplier(i),
        i.primary_exchange,
        i.currency,
        i.local_symbol,
        i.trading_class,
        pos.qty,
        mark,
        market_value,
        pos.avg_cost,
        unrealized,
        pos.realized_today,
        pos.account,
    ]


def account_update_time(epoch: float) -> list[Field]:
    return [ACCT_UPDATE_TIME, 1, _time.strftime("%H:%M", _time.gmtime(epoch))]


def account_download_end(account: str) -> list[Field]:
    return [ACCT_DOWNLOAD_END, 1, account]


def account_update_multi(
    req_id: int, account: str, model: str, key: str, value: str, cur: str
) -> list[Field]:
    return [ACCOUNT_UPDATE_MULTI, 1, req_id, account, model, key, value, cur]


def account_update_multi_end(req_id: int) -> list[Field]:
    return [ACCOUNT_UPDATE_MULTI_END, 1, req_id]


def open_order_end() -> list[Field]:
    return [OPEN_ORDER_END, 1]


def completed_orders_end() -> list[Field]:
    return [COMPLETED_ORDERS_END]


def execution_end(req_id: int) -> list[Field]:
    return [EXECUTION_DATA_END, 1, req_id]


def contract_details_end(req_id: int) -> list[Field]:
    return [CONTRACT_DATA_END, 1, req_id]


def order_status(o: SimOrder) -> list[Field]:
    avg = o.avg_fill_price if o.filled else 0.0
    last = o.last_fill_price if o.filled else 0.0
    return [
        ORDER_STATUS,
        o.order_id,
        o.status,
        o.filled,
        o.remaining,
        avg,
        o.perm_id,
        o.parent_id,
        last,
        o.client_id,
        o.why_held,
        0,
    ]


def _price(p: float | None) -> Field:
    return UNSET_DOUBLE if p is None else p


def open_order(o: SimOrder) -> list[Field]:
    """The plain-order openOrder layout at v178 (no combo legs, algo, conditions or delta-neutral parts)."""
    unset_d: Field = UNSET_DOUBLE
    return [
        OPEN_ORDER,
        o.order_id,
        *contract11(o.inst, o.exchange),
        o.action,
        o.total_qty,
        o.order_type,
        _price(o.lmt_price),
        _price(o.aux_price),
        o.tif,
        "",  # ocaGroup
        o.account,
        "",  # openClose
        0,  # origin: customer
        o.order_ref,
        o.client_id,
        o.perm_id,
        o.outside_rth,
        False,  # hidden
        0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # sharesAllocation (deprecated)
        "",
        "",
        "",  # faGroup, faMethod, faPercentage (faProfile dropped at 177)
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        unset_d,  # percentOffset
        "",  # settlingFirm
        0,
        "",
        -1,  # shortSaleSlot, designatedLocation, exemptCode
        0,  # auctionStrategy
        unset_d,
        unset_d,
        unset_d,  # startingPrice, stockRefPrice, delta
        unset_d,
        unset_d,  # stockRangeLower, stockRangeUpper
        UNSET_INT,  # displaySize
        False,
        False,
        False,  # blockOrder, sweepToFill, allOrNone
        UNSET_INT,  # minQty
        3,  # ocaType
        False,
        False,
        unset_d,  # eTradeOnly, firmQuoteOnly, nbboPriceCap
        o.parent_id,
        0,  # triggerMethod
        unset_d,
        0,
        "",
        unset_d,  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        False,
        0,  # continuousUpdate, referencePriceType
        unset_d,
        unset_d,  # trailStopPrice, trailingPercent
        unset_d,
        UNSET_INT,  # basisPoints, basisPointsType
        "",  # comboLegsDescrip
        0,
        0,  # comboLegs count, orderComboLegs count
        0,  # smartComboRoutingParams count
        UNSET_INT,
        UNSET_INT,
        unset_d,  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        False,  # optOutSmartRouting
        "",
        "",  # clearingAccount, clearingIntent
        False,  # notHeld
        False,  # deltaNeutralContract present
        "",  # algoStrategy
        False,  # solicited
        False,  # whatIf
        o.status,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",  # margin before/change/after
        unset_d,
        unset_d,
        unset_d,
        "",  # commission, min, max, currency
        "",  # warningText
        False,
        False,  # randomizeSize, randomizePrice
        0,  # conditions count
        "",
        unset_d,
        unset_d,
        unset_d,
        unset_d,
        unset_d,
        unset_d,
        0,  # adjusted order params
        "",
        "",
        "",  # softDollarTier name, value, displayName
        unset_d,  # cashQty
        False,
        False,
        False,  # dontUseAutoPriceForHedge, isOmsContainer, discretionaryUpToLimitPrice
        False,  # usePriceMgmtAlgo
        UNSET_INT,  # duration
        UNSET_INT,  # postToAts
        False,  # autoCancelParent
        UNSET_INT,
        UNSET_INT,
        unset_d,
        unset_d,
        unset_d,  # minTradeQty .. midOffsetAtHalf (v170)
    ]


def exec_time_text(epoch: float) -> str:
    return _time.strftime("%Y%m%d %H:%M:%S", _time.gmtime(epoch)) + " UTC"


def execution(req_id: int, e: Execution) -> list[Field]:
    return [
        EXECUTION_DATA,
        req_id,
        e.order_id,
        *contract11(e.inst, e.exchange),
        e.exec_id,
        exec_time_text(e.time),
        e.account,
        e.exchange,
        e.side,
        e.shares,
        e.price,
        e.perm_id,
        e.client_id,
        0,  # liquidation
        e.cum_qty,
        e.avg_price,
        e.order_ref,
        "",
        "",  # evRule, evMultiplier
        "",  # modelCode
        2,  # lastLiquidity: removed liquidity
        False,  # pendingPriceRevision (v178)
    ]


def commission_report(e: Execution) -> list[Field]:
    realized = UNSET_DOUBLE if e.realized_pnl is None else e.realized_pnl
    return [COMMISSION_REPORT, 1, e.exec_id, e.commission, e.inst.currency, realized, UNSET_DOUBLE, 0]
