"""The watchdog's only door to TWS / IB Gateway: `Gateway` = connection + polls + snapshot + orders.

Implements `watchdog.kill.broker.Broker`. The connection half (safety valve, heartbeat, half-open
detection, reconnect) lives in `watchdog.gateway.connection`; ib_async objects are turned into model records
by `watchdog.gateway.convert`. Nothing outside these three modules imports ib_async.
"""
# ib_async ships py.typed but leaves many methods unannotated
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

from ib_async import (
    IB,
    AccountValue,
    Contract,
    LimitOrder,
    MarketOrder,
    Order,
    PnL,
    PortfolioItem,
)
from ib_async import Position as IbPosition

from watchdog import market_hours as hours
from watchdog.config.schema import GatewayConfig, HeartbeatConfig, PollingConfig
from watchdog.errors import GatewayError
from watchdog.gateway import convert, executions
from watchdog.gateway.base_currency import REAL_CURRENCY, BaseCurrencyRows
from watchdog.gateway.connection import EventKind, GatewayConnection, GatewayEvent
from watchdog.gateway.contract_details import ContractDetailsCache
from watchdog.gateway.quotes import QuoteSource
from watchdog.gateway.request_queue import ahead_of_queue
from watchdog.gateway.snapshot_cache import SnapshotCache
from watchdog.gateway.unlisted_orders import UnlistedOrders, status_key
from watchdog.model import (
    CloseOrderRequest,
    ContractDetails,
    Fill,
    OpenOrder,
    OrderKey,
    Position,
    Quote,
    Snapshot,
    order_key,
)

__all__ = ["EventKind", "Gateway", "GatewayEvent"]

log = logging.getLogger("watchdog.gateway.client")
POSITIONS_RESYNC = 30.0  # seconds between full reqPositions round trips in routine polls
DETAILS_PER_POLL = 20  # contract details look-ups per positions poll (each may add market rule requests)
SMART_ROUTED = frozenset({"STK", "OPT", "CASH", "CRYPTO", "WAR", "FUND"})  # routable without a listing


class Gateway(GatewayConnection):
    """The gateway connection plus the account data the rules and the kill switch need."""

    def __init__(
        self,
        gw: GatewayConfig,
        hb: HeartbeatConfig,
        polling: PollingConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_event: Callable[[GatewayEvent], None] | None = None,
        on_heartbeat: Callable[[float], None] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            gw, hb, polling, clock=clock, monotonic=monotonic, on_event=on_event,
            on_heartbeat=on_heartbeat, rand=rand,
        )  # fmt: skip
        self._cache = SnapshotCache()
        self._marks: dict[tuple[str, int], float] = {}
        self.quotes = QuoteSource(clock)
        # several currencies per tag: only the base one counts (gateway.base_currency when configured)
        self._summary = BaseCurrencyRows(gw.base_currency)
        self._portfolio_account = ""
        self._positions_lock = asyncio.Lock()
        self._orders_lock = asyncio.Lock()
        self._positions_synced: float | None = None  # epoch of the last reqPositions round trip
        self.details = ContractDetailsCache(clock)  # conId → exchange, tick ladder, own trading hours
        # the trading calendar; the demo swaps in its simulated exchange's session
        self.market_hours: Callable[[str, float], bool] = hours.is_regular_hours
        self.on_data: Callable[[], None] | None = None  # set by the daemon: streamed P&L / summary arrived
        # order key → the status the gateway sent in an openOrder message of the running
        # reqAllOpenOrders answer (None while no answer is being collected)
        self._reported: dict[tuple[int, int], str] | None = None
        self._unlisted = UnlistedOrders(monotonic)
        self.executions = executions.ExecutionFeed()  # the daemon sets its on_execution

    def snapshot(self) -> Snapshot:
        """One immutable Snapshot from the latest polled values (each with its receive time)."""
        return self._cache.build(taken_at=self._clock(), watched=self._watched, gateway=self.status())

    # ------------------------------------------------------------------ subscriptions

    def _attach_data(self, ib: IB) -> None:
        wrapper = ib.wrapper
        original, original_status = wrapper.openOrder, wrapper.orderStatus

        def open_order(order_id: int, contract: Contract, order: Order, state: Any) -> None:
            # the gateway's own word on the order's status: ib_async keeps its local one instead
            if self._reported is not None:
                self._reported[(int(order.clientId), int(order.permId or order_id))] = str(state.status)
            self._unlisted.heard(
                status_key(int(order.clientId), order_id, int(order.permId)), str(state.status)
            )
            original(order_id, contract, order, state)

        def order_status(order_id: int, status: str, *args: Any, **kw: Any) -> None:
            # (orderId, status, filled, remaining, avgFillPrice, permId, parentId, lastFillPrice,
            # clientId, whyHeld, mktCapPrice): a terminal status from the gateway ends an unlisted order
            with contextlib.suppress(IndexError, TypeError, ValueError):
                self._unlisted.heard(status_key(int(args[6]), order_id, int(args[3])), str(status))
            original_status(order_id, status, *args, **kw)

        wrapper.openOrder = open_order  # type: ignore[method-assign,assignment]
        wrapper.orderStatus = order_status  # type: ignore[method-assign,assignment]
        ib.pnlEvent += self._on_pnl
        ib.accountSummaryEvent += self._on_summary
        ib.accountValueEvent += self._on_account_value
        ib.updatePortfolioEvent += self._on_portfolio
        self.executions.attach(ib)

    def _detach_data(self, ib: IB) -> None:
        ib.pnlEvent -= self._on_pnl
        ib.accountSummaryEvent -= self._on_summary
        ib.accountValueEvent -= self._on_account_value
        ib.updatePortfolioEvent -= self._on_portfolio
        self.executions.detach(ib)

    def _after_connect(self, ib: IB) -> None:
        self._positions_synced = None  # the first poll after a connect is a full round trip
        managed = ib.managedAccounts()
        # the account ib_async subscribed reqAccountUpdates (portfolio) for at connect, if any
        gw = self._gw
        self._portfolio_account = gw.accounts[0] if gw.accounts else (managed[0] if len(managed) == 1 else "")
        for account in self._watched:
            ib.reqPnL(account)
        for p in ib.positions():  # known from the connect sync: market values by the first poll
            # the portfolio subscription already carries the market values of its account: one
            # reqPnLSingle per position there would only add a burst of requests and a stream each
            if p.account in self._watched and p.position and p.account != self._portfolio_account:
                ib.reqPnLSingle(p.account, "", p.contract.conId)

    def _after_data_lost(self, ib: IB) -> None:
        self._positions_synced = None  # 1101: the next poll re-requests (and re-subscribes) positions
        for account in self._watched:
            if ib.pnl(account):
                ib.cancelPnL(account)
            ib.reqPnL(account)
            ib.client.reqAccountUpdatesMulti(ib.client.getReqId(), account, "", False)
        if self._portfolio_account:
            ib.client.reqAccountUpdates(True, self._portfolio_account)
        for single in ib.pnlSingle():  # poll_positions re-requests the ones still needed
            ib.cancelPnLSingle(single.account, "", single.conId)

    def _on_pnl(self, pnl: PnL) -> None:
        if pnl.account not in self._watched:
            return
        now, cache = self._clock(), self._cache
        changed = cache.set_value(pnl.account, "daily_pnl", convert.num(pnl.dailyPnL), now)
        changed |= cache.set_value(pnl.account, "unrealized_pnl", convert.num(pnl.unrealizedPnL), now)
        changed |= cache.set_value(pnl.account, "realized_pnl", convert.num(pnl.realizedPnL), now)
        if changed:  # IB streams P&L every second whether it moved or not: only news is worth a look
            self._data_changed()

    def _on_summary(self, v: AccountValue) -> None:
        """A row of the running summary answer; the answer is judged whole at its end."""
        if (v.tag in convert.SUMMARY_TAGS or v.tag == REAL_CURRENCY) and v.account in self._watched:
            self._summary.add(v.account, v.tag, v.value, v.currency)

    def _on_account_value(self, v: AccountValue) -> None:
        """reqAccountUpdates rows: the `BASE` ledger block names the account's base currency."""
        self._summary.learn(v.account, v.tag, v.value, v.currency)

    def _apply_summary(self) -> None:
        now, changed = self._clock(), False
        for (account, tag), (value, currency) in self._summary.end_answer().items():
            name = convert.SUMMARY_TAGS.get(tag)
            if name is not None:
                changed |= self._cache.set_value(account, name, convert.num(value), now, currency)
        if changed:
            self._data_changed()

    def _data_changed(self) -> None:
        """Streamed values changed: let the daemon evaluate now instead of at the next timer tick."""
        if self.on_data is not None:
            try:
                self.on_data()
            except Exception:  # a listener's bug must not break the data feed
                log.exception("gateway on_data callback failed")

    def _on_portfolio(self, item: PortfolioItem) -> None:
        price = convert.num(item.marketPrice)
        if price:
            self._marks[(item.account, item.contract.conId)] = price
            self.quotes.note_mark((item.account, item.contract.conId), price)

    # ------------------------------------------------------------------ polls

    async def poll_pnl(self) -> None:
        """PnL streams in (reqPnL per account, stamped on receipt); the poll keeps subscriptions alive."""
        ib = self._require()
        for account in self._watched:
            if not ib.pnl(account):
                ib.reqPnL(account)

    async def poll_account_summary(self) -> None:
        """A fresh reqAccountSummary round trip for the risk tags (values stamped on receipt)."""
        ib = self._require()

        async def request() -> None:
            asked_at = self._clock()
            req_id = ib.client.getReqId()
            self._summary.new_answer()
            done = ib.wrapper.startReq(req_id)
            ib.client.reqAccountSummary(req_id, "All", ",".join(convert.SUMMARY_TAGS))
            try:
                await done
            finally:
                # one-shot: IB allows only two live account summary subscriptions per client
                if ib.client.isConnected():
                    ib.client.cancelAccountSummary(req_id)
            self._apply_summary()  # a whole answer: which currency is the base is decided on all of it
            self.account_data_read(asked_at)

        await self._timed("account summary", request)

    async def poll_positions(self, *, fresh: bool = False) -> list[Position]:
        """Positions enriched with market data (portfolio, else reqPnLSingle value).

        The reqPositions subscription ib_async opens at connect streams every change, so a routine
        poll reads ib_async's live copy; a full round trip runs when `fresh` (the kill switch's reads),
        after a (re)connect or 1101, and every POSITIONS_RESYNC seconds as a cross-check.
        """
        ib = self._require()
        at = self._clock()
        raw: list[IbPosition]
        if fresh or self._positions_synced is None or at - self._positions_synced >= POSITIONS_RESYNC:
            # ib_async keys reqPositions by name: overlapping calls would steal each other's answers
            async with self._positions_lock:
                raw = await self._timed("positions", ib.reqPositionsAsync)
            self._positions_synced = at = self._clock()
        else:
            raw = ib.positions()
        latest = {(p.account, p.contract.conId): p for p in raw if p.account in self._watched}
        portfolio = {(i.account, i.contract.conId): i for i in ib.portfolio()}
        singles = {(s.account, s.conId): s for s in ib.pnlSingle()}
        out: list[Position] = []
        for key, p in latest.items():
            if not p.position:
                continue
            pos = convert.position_from(p, portfolio.get(key))
            single = singles.get(key)
            if pos.market_value is None:
                # reqAccountUpdates (portfolio) covers one account at a time; reqPnLSingle covers all
                if single is None:
                    ib.reqPnLSingle(p.account, "", p.contract.conId)  # value arrives for the next poll
                else:
                    pos = convert.with_pnl_single(pos, single)
            if pos.market_price:
                self._marks[key] = pos.market_price
                self.quotes.note_mark(key, pos.market_price)
            out.append(pos)
        for key in singles.keys() - {k for k, p in latest.items() if p.position}:
            ib.cancelPnLSingle(key[0], "", key[1])
        out = await self._with_listing_exchange(ib, out)
        self._cache.set_positions(out, at)
        return out

    async def _with_listing_exchange(self, ib: IB, positions: list[Position]) -> list[Position]:
        """Fill in the listing exchange and tick size of positions from contract details.

        Positions arrive with the exchange empty for futures (a closing order for a future must name
        its exchange: no SMART routing) and without a tick ladder or trading hours. Looking them up
        here (per conId, refreshed daily: `gateway.contract_details`) keeps the lookup off the kill
        path. A failed lookup leaves them unknown: the kill switch then escalates a future instead of
        guessing, and judges hours by the fallback table (saying so).
        """
        wanted = {p.contract.con_id: p.contract.sec_type in SMART_ROUTED for p in positions}
        due = [(smart, con_id) for con_id, smart in wanted.items() if self.details.due(con_id)]
        # futures first (their closing orders need the exchange); a large book is looked up over
        # several polls so one poll never turns into hundreds of requests
        for smart, con_id in sorted(due)[:DETAILS_PER_POLL]:
            await self.details.refresh(ib, con_id, smart, self._timed)
        return [self._enrich(p) for p in positions]

    def _enrich(self, p: Position) -> Position:
        known = self.details.get(p.contract.con_id)
        if known is None:
            return p
        exchange, tick = known.exchange, known.min_tick
        routed = (
            p.contract.exchange if p.contract.exchange or p.contract.sec_type in SMART_ROUTED else exchange
        )
        return replace(p, contract=replace(p.contract, exchange=routed, min_tick=tick))

    async def poll_orders(self) -> list[OpenOrder]:
        """reqAllOpenOrders round trip: working orders of every client (client 0 = manual) included."""
        ib = self._require()
        async with self._orders_lock:  # same single-slot request key as reqPositions
            reported: dict[tuple[int, int], str] = {}
            self._reported = reported
            try:
                trades = await self._timed("open orders", ib.reqAllOpenOrdersAsync)
            finally:
                self._reported = None
        at = self._clock()
        orders: dict[OrderKey, OpenOrder] = {}
        listed: set[OrderKey] = set()
        for trade in trades:
            key = (int(trade.order.clientId), int(trade.order.permId or trade.order.orderId))
            o = convert.open_order_from(trade, reported.get(key))
            listed.add(order_key(o))
            if o.account in self._watched and o.is_working:
                orders[order_key(o)] = o
        # an order gone from the answer without a terminal status may still fill: kept until confirmed
        # the master client hears every order's status between answers: those still alive count too
        heard = self._unlisted.last_heard
        pushed = [o for o in convert.heard_orders(ib.trades(), heard) if o.account in self._watched]
        out = self._unlisted.merge(orders.values(), listed, lambda o: convert.executed(ib.fills(), o), pushed)
        self._cache.set_orders(out, at)
        return out

    async def poll_executions(self) -> None:
        """Today's executions (reqExecutions round trip) with their commissions where reported; each
        also goes to `executions.on_execution` (a closing fill heard while disconnected is audited)."""
        today = await executions.read_today(self._require(), self._timed)
        fills = [f for f in today if f.account in self._watched]
        self._cache.set_fills(fills, self._clock())
        self.executions.report(fills)

    # ------------------------------------------------------------------ Broker

    def _writable(self, what: str) -> IB:
        if self.read_only:
            raise GatewayError(f"{what} refused: this is a read-only connection (nothing is ever sent)")
        return self._require()

    async def global_cancel(self) -> None:
        ib = self._writable("global cancel")
        with ahead_of_queue(ib.client, unpaced=True):
            ib.reqGlobalCancel()

    async def cancel_order(self, order_id: int) -> None:
        ib = self._writable("cancel")
        mine = self._gw.client_id
        for trade in ib.trades():
            if trade.order.orderId == order_id and trade.order.clientId == mine:
                with ahead_of_queue(ib.client):
                    ib.cancelOrder(trade.order)
                return
        with ahead_of_queue(ib.client):
            ib.cancelOrder(Order(orderId=order_id, clientId=mine))

    async def open_orders(self) -> list[OpenOrder]:
        return await self.poll_orders()

    async def positions(self) -> list[Position]:
        return await self.poll_positions(fresh=True)

    async def place_close_order(self, request: CloseOrderRequest) -> int:
        """Place one closing order (conId + routable exchange, DAY, transmit); returns its order id."""
        if request.account not in self._watched:
            raise ValueError(f"account {request.account} is not watched by this gateway connection")
        if request.quantity <= 0 or request.action not in ("BUY", "SELL"):
            raise ValueError(f"bad close order: {request.action} {request.quantity}")
        common: dict[str, Any] = {
            "account": request.account,
            "orderRef": request.order_ref,
            "outsideRth": request.outside_rth,
            "tif": "DAY",
            "transmit": True,
        }
        order: Order
        if request.order_type == "MKT":
            order = MarketOrder(request.action, request.quantity, **common)
        elif request.order_type == "LMT" and request.limit_price and request.limit_price > 0:
            order = LimitOrder(request.action, request.quantity, request.limit_price, **common)
        else:
            raise ValueError(f"bad close order type {request.order_type} / limit {request.limit_price}")
        c = request.contract
        contract = Contract(
            conId=c.con_id, secType=c.sec_type, exchange=request.exchange, currency=c.currency
        )
        ib = self._writable("closing order")
        with ahead_of_queue(ib.client):
            trade = ib.placeOrder(contract, order)
        return int(trade.order.orderId)

    def order_fills(self, order_ids: Collection[int]) -> list[Fill]:
        """Executions of this client's orders so far (ib_async's memory, no round trip; never raises)."""
        return executions.order_fills(self._ib, self._gw.client_id, order_ids)

    def contract_details(self, position: Position) -> ContractDetails | None:
        return self.details.get(position.contract.con_id)

    async def quote(self, position: Position, exchange: str, side: str) -> Quote | None:
        """The fresher of a market data snapshot and the portfolio mark, with its age."""
        return await self.quotes.best(self._ib, position, exchange, side)

    async def mark_price(self, position: Position) -> float | None:
        key = position.key
        ib = self._ib
        if ib is not None:
            for item in ib.portfolio(position.account):
                if item.contract.conId == key[1]:
                    price = convert.num(item.marketPrice)
                    if price:
                        return price
        return self._marks.get(key) or position.market_price

    def is_regular_hours(self, position: Position, now: float) -> bool:
        return self.market_hours(position.contract.sec_type, now)
