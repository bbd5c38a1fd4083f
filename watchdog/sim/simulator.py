"""The Simulator facade: wires book, order engine, faults and server; the Python API tests use.

Its other halves: `control.py` (setting prices, positions, values), `updates.py` (what subscribed
clients are told when the book or an order changes), `truth.py` (positions and orders as the
simulator holds them, what tests compare clients against).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from watchdog.sim import messages as m
from watchdog.sim.account_quirks import AccountQuirksMixin
from watchdog.sim.book import Book, Execution
from watchdog.sim.codec import field_at, to_bool, to_float, to_int
from watchdog.sim.control import ControlMixin, SimulatorError
from watchdog.sim.exchange import ExchangeRules
from watchdog.sim.faults import Faults
from watchdog.sim.handlers import HANDLERS
from watchdog.sim.orders import FillConfig, OrderEngine
from watchdog.sim.scenario import Scenario, apply_initial, load_scenario
from watchdog.sim.server import ClientConn, SimServer
from watchdog.sim.truth import SimOpenOrder, SimPosition, open_orders_of, positions_of
from watchdog.sim.universe import Instrument, Universe
from watchdog.sim.updates import ClientUpdates

log = logging.getLogger("watchdog.sim")


class Simulator(ControlMixin, ClientUpdates, AccountQuirksMixin):
    """A TWS API gateway on 127.0.0.1 that real ib_async / ibapi clients cannot tell from IB Gateway."""

    def __init__(
        self,
        accounts: Iterable[str] = ("DU111111", "DU222222"),
        clock: Callable[[], float] | None = None,
        *,
        cash: float = 1_000_000.0,
        instruments: Iterable[Instrument] = (),
        fill: FillConfig | None = None,
        master_client_id: int | None = None,
        pnl_interval: float = 1.0,
    ) -> None:
        self.clock: Callable[[], float] = clock or time.time
        self.universe = Universe.builtin(instruments)
        self.book = Book(self.universe, tuple(accounts), cash, self.clock)
        if not self.book.accounts:
            raise SimulatorError("at least one account is needed")
        self.fill = fill or FillConfig()
        self.engine = OrderEngine(self.book, self, self._schedule, self.fill)
        self.rules = ExchangeRules()  # tick ladders, calendars, precautions, read-only, market data
        self.engine.session_of = self.session_of
        self.currency_rows: dict[str, list[tuple[str, str, str]]] = {}
        self.currency_rows_first: set[str] = set()  # accounts whose other-currency rows come first
        self.faults = Faults(self)
        self.master_client_id = master_client_id
        self.pnl_interval = pnl_interval
        self.server = SimServer(
            lambda: self.faults.state, self.clock, self._on_request, self._on_start, self.faults.thaw_event
        )
        self._next_ids: dict[int, int] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.last_error: tuple[int, int, str] | None = None
        self.unpriced: set[int] = set()
        self.undefined: set[int] = set()

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.server.start_listening(host, port)
        self._ticker = asyncio.create_task(self._tick(), name="sim-pnl-ticker")
        log.info("simulator listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.faults.aclose()
        await self.server.stop()

    @classmethod
    def from_scenario(
        cls, scenario: Scenario | str | Path, clock: Callable[[], float] | None = None
    ) -> Simulator:
        """A simulator holding the scenario's initial book (its timeline runs via run_scenario)."""
        spec = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        sim = cls(
            spec.accounts, clock, cash=spec.cash, fill=spec.fill, master_client_id=spec.master_client_id
        )
        apply_initial(sim, spec)
        return sim

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, *args: object, host: str = "127.0.0.1", port: int = 0, **kwargs: object
    ) -> AsyncIterator[Simulator]:
        sim = cls(*args, **kwargs)  # type: ignore[arg-type]
        await sim.start(host, port)
        try:
            yield sim
        finally:
            await sim.stop()

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()

        def run() -> None:
            self._timers.discard(handle)
            fn()

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    async def _tick(self) -> None:
        """reqPnL / reqPnLSingle stream about once a second, like a gateway."""
        while True:
            await asyncio.sleep(self.pnl_interval)
            for conn in list(self.server.conns):
                for req_id, account in list(conn.subs.pnl.items()):
                    self.send_pnl(conn, req_id, account)
                for req_id, (account, con_id) in list(conn.subs.pnl_single.items()):
                    self.send_pnl_single(conn, req_id, account, con_id)

    # --- the simulator's truth -------------------------------------------------------------

    def positions(self, account: str | None = None) -> list[SimPosition]:
        """Every open position (of `account`), as the simulator holds it."""
        return positions_of(self.book, account)

    def open_orders(self, account: str | None = None) -> list[SimOpenOrder]:
        """Every working order of every client (of `account`)."""
        return open_orders_of(self.book, account)

    def executions(self, account: str | None = None) -> list[Execution]:
        return [e for e in self.book.executions if account is None or e.account == account]

    # --- wire side -------------------------------------------------------------------------

    def _on_start(self, conn: ClientConn) -> None:
        cid = conn.client_id or 0
        conn.send(m.next_valid_id(self.next_order_id(cid)))
        conn.send(m.managed_accounts(list(self.book.accounts)))
        for code, text in _FARM_OK.items():
            conn.send(m.error(-1, code, text))

    async def _on_request(self, conn: ClientConn, msg_id: int, fields: list[str]) -> None:
        handler = HANDLERS.get(msg_id)
        if handler is None:
            self.server.unknown_total += 1
            log.warning(
                "client id %s sent unsupported message id %d (%d fields); ignored",
                conn.client_id,
                msg_id,
                len(fields),
            )
            return
        result = handler(self, conn, fields)
        if result is not None:
            await result

    def next_order_id(self, client_id: int) -> int:
        return self._next_ids.get(client_id, 1)

    def _note_order_id(self, client_id: int, order_id: int) -> None:
        if order_id >= self._next_ids.get(client_id, 1):
            self._next_ids[client_id] = order_id + 1

    def place_from_client(self, conn: ClientConn, f: list[str]) -> None:
        """placeOrder by field index (identical for ib_async and ibapi at v178)."""
        cid = conn.client_id or 0
        order_id = to_int(f[1])
        self._note_order_id(cid, order_id)
        reject = self.faults.take_reject()
        if reject is not None:
            conn.error(order_id, reject[0], reject[1])
            return
        if self.refuse_read_only(conn, order_id):
            return
        found = self.universe.match(to_int(f[2]), f[3], f[4], f[5], to_float(f[6]), f[7], f[11], f[12])
        if len(found) != 1:
            text = (
                "No security definition has been found for the request"
                if not found
                else (f"The contract description specified for {f[3]} is ambiguous.")
            )
            conn.error(order_id, 200, text)
            return
        account = field_at(f, 23)
        if not account:
            if len(self.book.accounts) > 1:
                conn.error(
                    order_id,
                    436,
                    "You must specify an allocation (either a single account, group, or profile).",
                )
                return
            account = next(iter(self.book.accounts))
        lmt, aux = field_at(f, 19), field_at(f, 20)
        refusal = self.rules.refusal(
            found[0],
            order_id,
            to_float(f[17]),
            f[18].upper(),
            to_float(lmt) if lmt else None,
            self.book.mark(found[0].con_id),
        )
        if refusal is not None:
            self.order_error(cid, order_id, *refusal)
            return
        self.engine.place(
            client_id=cid,
            order_id=order_id,
            account=account,
            inst=found[0],
            action=f[16].upper(),
            qty=to_float(f[17]),
            order_type=f[18].upper(),
            lmt_price=to_float(lmt) if lmt else None,
            aux_price=to_float(aux) if aux else None,
            tif=field_at(f, 21),
            outside_rth=to_bool(field_at(f, 33)),
            order_ref=field_at(f, 26),
            exchange=f[9],
            parent_id=to_int(field_at(f, 28)),
        )

    def cancel_from_client(self, conn: ClientConn, order_id: int) -> None:
        order = self.book.find_order(conn.client_id or 0, order_id)
        if order is not None and order.status == "PendingCancel":
            self.engine.cancel(conn.client_id or 0, order_id)  # answers 161: not cancellable now
            return
        # a fault hits a cancel of a working order; a cancel of an id that names none (the watchdog's
        # write-access probe) gets the gateway's usual answer and leaves the fault for a real one
        if order is not None and order.is_open and self.faults.take_ignore_cancel():
            log.info("fault: ignoring cancel of order %d from client %s", order_id, conn.client_id)
            return
        if self.refuse_read_only(conn, order_id):
            return
        pending = None
        if order is not None and order.is_open:
            pending = self.faults.take_pending_cancel(order.client_id, order.order_id)
        if order is not None and pending is not None:
            self.engine.pend_cancel(order, *pending)
            return
        self.engine.cancel(conn.client_id or 0, order_id)

    def global_cancel(self) -> int:
        """reqGlobalCancel: every open order of every client, each owner notified; returns how many."""
        n = 0
        for order in self.book.open_orders():
            if order.status == "PendingCancel":
                continue  # already being cancelled: the outcome is the destination's
            if self.faults.take_ignore_cancel():
                continue
            pending = self.faults.take_pending_cancel(order.client_id, order.order_id)
            if pending is not None:
                self.engine.pend_cancel(order, *pending)
            else:
                self.engine.cancel_order(order)
            n += 1
        return n


_FARM_OK = {
    2104: "Market data farm connection is OK:usfarm",
    2106: "HMDS data farm connection is OK:ushmds",
    2158: "Sec-def data farm connection is OK:secdefnj",
}
