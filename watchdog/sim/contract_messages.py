"""contractDetails encoder at server version 178 (the longest fixed-layout message after openOrder)."""

from __future__ import annotations

from watchdog.sim.codec import Field
from watchdog.sim.universe import Instrument

CONTRACT_DATA = 10

VALID_EXCHANGES = {
    "STK": "SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,ISLAND,DRCTEDGE,BEX,BATS,EDGEA,IEX,NASDAQ",
    "FUT": "CME,QBALGO",
    "OPT": "SMART,AMEX,CBOE,PHLX,PSE,ISE,BOX,BATS,NASDAQOM,CBOE2,MIAX,EMERALD,PEARL,MEMX",
    "CASH": "IDEALPRO",
}
ORDER_TYPES = ",".join(
    [
        "ACTIVETIM",
        "AD",
        "ADJUST",
        "ALERT",
        "ALLOC",
        "AVGCOST",
        "BASKET",
        "DAY",
        "GAT",
        "GTC",
        "GTD",
        "IOC",
        "LIT",
        "LMT",
        "MIT",
        "MKT",
        "MOC",
        "REL",
        "STP",
        "STPLMT",
        "TRAIL",
    ]
)
LIQUID_HOURS = "20260101:0930-20260101:1600"


def contract_details(
    req_id: int, inst: Instrument, hours: tuple[str, str, str] | None = None, rule_id: int = 26
) -> list[Field]:
    """contractDetails at v164+: no version field; minSize, sizeIncrement, suggestedSizeIncrement last.

    `hours` = (timeZoneId, tradingHours, liquidHours); None = a fixed sample day in US/Eastern.
    `marketRuleIds` has one id per valid exchange, in the same order."""
    exchange = inst.exchange
    valid = VALID_EXCHANGES.get(inst.sec_type, exchange)
    time_zone, trading, liquid = hours or ("US/Eastern", LIQUID_HOURS, LIQUID_HOURS)
    size_inc = 0.0001 if inst.sec_type == "STK" else 1
    return [
        CONTRACT_DATA,
        req_id,
        inst.symbol,
        inst.sec_type,
        inst.last_trade_date,
        inst.strike,
        inst.right,
        exchange,
        inst.currency,
        inst.local_symbol,
        inst.trading_class,  # marketName
        inst.trading_class,
        inst.con_id,
        inst.min_tick,
        inst.multiplier_text,
        ORDER_TYPES,
        valid,
        1,  # priceMagnifier
        inst.under_con_id,
        inst.long_name,
        inst.primary_exchange,
        inst.last_trade_date[:6] if inst.sec_type in ("FUT", "OPT") else "",  # contractMonth
        "",
        "",
        "",  # industry, category, subcategory
        time_zone,
        trading,
        liquid,
        "",
        "",  # evRule, evMultiplier
        0,  # secIdList count
        1,  # aggGroup
        inst.symbol if inst.sec_type in ("FUT", "OPT") else "",  # underSymbol
        {"FUT": "IND", "OPT": "STK"}.get(inst.sec_type, ""),  # underSecType
        ",".join([str(rule_id)] * len(valid.split(","))),  # marketRuleIds
        inst.last_trade_date,  # realExpirationDate
        "COMMON" if inst.sec_type == "STK" else "",  # stockType
        size_inc,
        size_inc,
        1 if inst.sec_type != "STK" else 100,  # minSize, sizeIncrement, suggested
    ]
