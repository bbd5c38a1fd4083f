"""Market data and market rules on the wire: reqMktData snapshots, reqMarketDataType, reqMarketRule.

Layouts at server version 178 (ib_async 2.1 decoder): tickPrice `[1, 6, reqId, tickType, price, size,
attrMask]`, tickString `[46, 6, reqId, tickType, value]`, tickSnapshotEnd `[57, 1, reqId]`,
marketDataType `[58, 1, reqId, type]`, marketRule `[93, ruleId, n, (lowEdge, increment) × n]`.
Tick types (IB "Available Tick Types"): 1 bid, 2 ask, 4 last, 45 last timestamp; delayed 66 / 67 / 68
and 88. Market data type 1 = live, 3 = delayed (live where subscribed). Without a subscription a
gateway answers 354 "Requested market data is not subscribed."
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watchdog.sim.codec import Field, field_at, to_bool, to_int
from watchdog.sim.exchange import MARKET_RULES
from watchdog.sim.server import ClientConn

if TYPE_CHECKING:
    from watchdog.sim.simulator import Simulator

IN_REQ_MKT_DATA = 1
IN_CANCEL_MKT_DATA = 2
IN_REQ_MARKET_RULE = 91
TICK_PRICE = 1
TICK_STRING = 46
TICK_SNAPSHOT_END = 57
MARKET_DATA_TYPE = 58
MARKET_RULE = 93

LIVE = {"bid": 1, "ask": 2, "last": 4, "last_time": 45}
DELAYED = {"bid": 66, "ask": 67, "last": 68, "last_time": 88}
DELAY_SECONDS = 900.0  # delayed data lags 15 minutes
NOT_SUBSCRIBED = (
    "Requested market data is not subscribed. Check API status by selecting the Account menu then under "
    "Management choose Market Data Subscription Manager and/or enable delayed data."
)


def tick_price(req_id: int, tick_type: int, price: float, size: float = 100) -> list[Field]:
    return [TICK_PRICE, 6, req_id, tick_type, price, size, 0]


def tick_string(req_id: int, tick_type: int, value: str) -> list[Field]:
    return [TICK_STRING, 6, req_id, tick_type, value]


def market_rule(rule_id: int, increments: tuple[tuple[float, float], ...]) -> list[Field]:
    fields: list[Field] = [MARKET_RULE, rule_id, len(increments)]
    for low, inc in increments:
        fields += [low, inc]
    return fields


def req_market_data_type(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    conn.market_data_type = to_int(field_at(f, 2)) or 1


def req_mkt_data(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    """A snapshot (or the first ticks of a stream) from the book's mark: bid = ask = last = mark."""
    req_id, con_id = to_int(f[2]), to_int(field_at(f, 3))
    snapshot = to_bool(field_at(f, 17))
    inst = sim.universe.find(con_id) if con_id else sim.universe.find(field_at(f, 4))
    if inst is None:
        conn.error(req_id, 200, "No security definition has been found for the request")
        return
    mode = sim.rules.market_data
    delayed = mode == "delayed"
    if mode == "none" or (delayed and conn.market_data_type not in (3, 4)):
        conn.error(req_id, 354, NOT_SUBSCRIBED)
        return
    ticks = DELAYED if delayed else LIVE
    price = sim.book.mark(inst.con_id)
    traded_at = sim.clock() - (DELAY_SECONDS if delayed else 1.0)
    conn.send([MARKET_DATA_TYPE, 1, req_id, 3 if delayed else 1])
    for name in ("bid", "ask", "last"):
        conn.send(tick_price(req_id, ticks[name], price))
    conn.send(tick_string(req_id, ticks["last_time"], str(int(traded_at))))
    if snapshot:
        conn.send([TICK_SNAPSHOT_END, 1, req_id])


def cancel_mkt_data(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    """Streams are not kept: every request answers at once."""


def req_market_rule(sim: Simulator, conn: ClientConn, f: list[str]) -> None:
    rule_id = to_int(field_at(f, 1))
    rule = MARKET_RULES.get(rule_id)
    if rule is None:
        conn.error(-1, 124, f"No market rule is available for conid: {rule_id}")
        return
    conn.send(market_rule(rule_id, rule))
