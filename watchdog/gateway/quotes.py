"""Fresh prices for closing orders: a market data snapshot, else the portfolio mark — each with its age.

Outside regular hours the portfolio `marketPrice` can stand still for a long time while the market
moves (it is a mark, refreshed every few minutes at best); a snapshot (`reqMktData` with snapshot=True)
carries the current bid / ask / last and the last trade's time (tick 45). The watchdog asks for market
data type 3 first: live data where the account has a subscription, delayed data (about 15 minutes,
ticks 66-68 / 88) where that is all it has (IB "Market Data Types"). Without either the snapshot is
empty (error 354) and only the portfolio mark is left.
"""
# ib_async ships py.typed but leaves many methods unannotated
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from ib_async import IB, Contract, Ticker

from watchdog.gateway import convert
from watchdog.model import Position, Quote

log = logging.getLogger("watchdog.gateway.quotes")
DELAYED_TYPES = frozenset({3, 4})
DELAY = 900.0  # seconds a delayed bid/ask is assumed to lag when it carries no time of its own
SNAPSHOT_TIMEOUT = 2.0  # seconds we wait for a snapshot's end; the ticks that came by then are used


class QuoteSource:
    """Snapshot quotes plus the portfolio marks (with the time each was seen to change, if it did)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # key -> (price, when this process saw it change; None = not since first seen: age unknown)
        self._marks: dict[tuple[str, int], tuple[float, float | None]] = {}
        self._type_asked: IB | None = None

    def note_mark(self, key: tuple[str, int], price: float | None) -> None:
        """A portfolio price arrived. IB re-sends a mark without saying when it last changed, so its
        age is known only from a change seen here; the first value seen (after every start) may have
        stood still for hours and stays of unknown age until it moves."""
        if not price:
            return
        old = self._marks.get(key)
        if old is None:
            self._marks[key] = (price, None)
        elif old[0] != price:
            self._marks[key] = (price, self._clock())

    def mark(self, key: tuple[str, int]) -> Quote | None:
        known = self._marks.get(key)
        return Quote(price=known[0], as_of=known[1], source="portfolio") if known else None

    async def snapshot(self, ib: IB, position: Position, exchange: str, side: str) -> Quote | None:
        """One snapshot for the position's contract; None when it brings no usable price."""
        if self._type_asked is not ib:
            ib.reqMarketDataType(3)  # live where subscribed, delayed otherwise
            self._type_asked = ib
        c = position.contract
        contract = Contract(conId=c.con_id, exchange=exchange, currency=c.currency)
        # ib_async keeps one Ticker per contract across requests: clear what an earlier snapshot
        # left, so only prices of this request can be picked
        known = ib.ticker(contract)
        if known is not None:
            known.bid = known.ask = known.last = math.nan
            known.lastTimestamp = known.delayedLastTimestamp = None
        try:
            tickers = await asyncio.wait_for(ib.reqTickersAsync(contract), SNAPSHOT_TIMEOUT)
        except (TimeoutError, ConnectionError) as exc:
            # a real gateway ends a snapshot only when every tick type came or ~11 s passed:
            # use what arrived for this request by now
            partial = ib.ticker(contract)
            log.info("market data snapshot for %s incomplete (%r)", c.label, exc)
            return pick(partial, side, self._clock()) if partial is not None else None
        return pick(tickers[0], side, self._clock()) if tickers else None

    async def best(self, ib: IB | None, position: Position, exchange: str, side: str) -> Quote | None:
        """A real (live or delayed) quote from a new snapshot; the portfolio mark only when there is
        none, or when the mark was seen to change more recently than the quote's time. A mark of
        unknown age never beats a quote."""
        mark = self.mark(position.key)
        quote = None
        if ib is not None and ib.isConnected():
            quote = await self.snapshot(ib, position, exchange, side)
        if quote is None:
            return mark
        if (
            mark is not None
            and mark.as_of is not None
            and quote.as_of is not None
            and mark.as_of > quote.as_of
        ):
            return mark
        return quote


def pick(ticker: Ticker, side: str, now: float) -> Quote | None:
    """SELL at the bid, BUY at the ask (the side a closing order meets), else the last trade."""
    delayed = ticker.marketDataType in DELAYED_TYPES
    near = convert.num(ticker.bid if side == "SELL" else ticker.ask)
    if near is not None and near > 0:
        return Quote(
            price=near, as_of=now - DELAY if delayed else now, source="bid" if side == "SELL" else "ask",
            delayed=delayed, estimated=delayed,
        )  # fmt: skip
    last = convert.num(ticker.last)
    if last is None or last <= 0:
        return None
    stamp = ticker.delayedLastTimestamp if delayed else ticker.lastTimestamp
    as_of = stamp.timestamp() if stamp is not None else (now - DELAY if delayed else now)
    estimated = delayed and stamp is None
    return Quote(price=last, as_of=min(as_of, now), source="last", delayed=delayed, estimated=estimated)
