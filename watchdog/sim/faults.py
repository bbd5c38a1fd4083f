"""Run-time fault switches of the simulator: mute, freeze, drop, delay, rejects, resets, pacing, skew."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchdog.sim import messages as m

if TYPE_CHECKING:
    from watchdog.sim.simulator import Simulator

ERROR_TEXT = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2110: "Connectivity between Trader Workstation and server is broken. It will be restored automatically.",
    2158: "Sec-def data farm connection is OK:secdefnj",
}
# Data the gateway stops sending during the nightly reset (the socket and heartbeats stay alive).
SILENCED = frozenset(
    {
        m.PNL,
        m.PNL_SINGLE,
        m.ACCT_VALUE,
        m.PORTFOLIO_VALUE,
        m.ACCT_UPDATE_TIME,
        m.ACCOUNT_SUMMARY,
        m.ACCOUNT_SUMMARY_END,
        m.POSITION_DATA,
        m.POSITION_END,
        m.ACCOUNT_UPDATE_MULTI,
        m.ACCOUNT_UPDATE_MULTI_END,
        m.ACCT_DOWNLOAD_END,
        m.CONTRACT_DATA,
        m.CONTRACT_DATA_END,
    }
)


@dataclass(slots=True)
class Pacing:
    limit_per_second: int = 50
    enabled: bool = True


@dataclass(slots=True)
class FaultState:
    """Pure switch state; the server consults it on every read and write."""

    muted_all: bool = False
    muted: set[int] = field(default_factory=set)
    frozen_all: bool = False
    frozen: set[int] = field(default_factory=set)
    delays: dict[int | None, float] = field(default_factory=dict)  # msg id (None = every message) -> s
    rejects: list[tuple[int, str]] = field(default_factory=list)
    ignore_cancels: int = 0
    # the next cancels leave the order in PendingCancel; after `seconds` it fills or is cancelled
    pending_cancels: list[tuple[float, str, tuple[int, int] | None]] = field(default_factory=list)
    # orders the open-orders answers leave out while in one of these statuses: (client, id) or None = any
    unlisted: dict[tuple[int, int] | None, frozenset[str]] = field(default_factory=dict)
    quiet_others: bool = False  # terminal orderStatus/openOrder reach only the order's own client
    late_executions: float = 0.0  # seconds a fill's execDetails + commission report trail the fill
    pacing: Pacing = field(default_factory=Pacing)
    skew: float = 0.0
    silenced: bool = False
    refusing: bool = False

    def is_muted(self, client_id: int | None) -> bool:
        return self.muted_all or (client_id is not None and client_id in self.muted)

    def is_frozen(self, client_id: int | None) -> bool:
        return self.frozen_all or (client_id is not None and client_id in self.frozen)

    def delay_for(self, msg_id: int) -> float:
        return max(self.delays.get(msg_id, 0.0), self.delays.get(None, 0.0))


class Faults:
    """The `sim.faults` API: each switch has an undo; client_id=None means every connection."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.state = FaultState()
        self._thaw = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- socket-level ----------------------------------------------------------------------

    def mute(self, client_id: int | None = None) -> None:
        """Half-open: the connection keeps reading requests but never answers anything."""
        if client_id is None:
            self.state.muted_all = True
        else:
            self.state.muted.add(client_id)

    def unmute(self, client_id: int | None = None) -> None:
        if client_id is None:
            self.state.muted_all = False
            self.state.muted.clear()
        else:
            self.state.muted.discard(client_id)

    def freeze(self, client_id: int | None = None) -> None:
        """Stop reading the socket (the client's writes pile up in TCP buffers)."""
        if client_id is None:
            self.state.frozen_all = True
        else:
            self.state.frozen.add(client_id)

    def unfreeze(self, client_id: int | None = None) -> None:
        if client_id is None:
            self.state.frozen_all = False
            self.state.frozen.clear()
        else:
            self.state.frozen.discard(client_id)
        self._thaw.set()
        self._thaw = asyncio.Event()

    def thaw_event(self) -> asyncio.Event:
        return self._thaw

    async def drop(self, client_id: int | None = None, reset: bool = False) -> int:
        """Close connections (reset=True sends a TCP RST); returns how many were closed."""
        return await self._sim.server.drop(client_id, reset=reset)

    def delay(self, msg_ids: set[int] | None, seconds: float) -> None:
        """Delay the chosen outgoing message ids (None: every message); seconds=0 undoes it."""
        keys: list[int | None] = [None] if msg_ids is None else list(msg_ids)
        for k in keys:
            if seconds > 0:
                self.state.delays[k] = seconds
            else:
                self.state.delays.pop(k, None)

    def clear_delays(self) -> None:
        self.state.delays.clear()

    # --- order-level -----------------------------------------------------------------------

    def reject_next(self, n: int = 1, code: int = 201, message: str | None = None) -> None:
        text = message or "Order rejected - reason:Simulated rejection"
        self.state.rejects.extend([(code, text)] * n)

    def ignore_cancel(self, n: int = 1) -> None:
        """The next n cancels of a working order (cancelOrder, or one order of a global cancel) are
        silently ignored; a cancel of an id that names no working order is answered as usual."""
        self.state.ignore_cancels += n

    def cancel_pending(
        self, n: int = 1, after: float = 1.0, then: str = "fill", *, order: tuple[int, int] | None = None
    ) -> None:
        """The next n cancels (cancelOrder, or one order of a global cancel) leave the order in
        PendingCancel for `after` seconds; then it fills its remaining quantity at the mark
        (`then="fill"`: the late fill IB warns about) or is cancelled (`then="cancel"`). Further
        cancels of an order in PendingCancel do nothing (the owner gets error 161), like IB.
        `order=(client_id, order_id)` applies it to that order only."""
        if then not in ("fill", "cancel"):
            raise ValueError(f"then must be 'fill' or 'cancel', got: {then!r}")
        self.state.pending_cancels.extend([(after, then, order)] * n)

    def unlist(
        self,
        statuses: tuple[str, ...] = ("PendingCancel",),
        *,
        order: tuple[int, int] | None = None,
        quiet: bool = False,
    ) -> None:
        """reqOpenOrders/reqAllOpenOrders answers leave out orders while their status is one of
        `statuses`: an order vanishes from the open-orders list with no terminal status, yet it can
        still fill (seen in public reports of PendingCancel orders). `order=(client_id, order_id)`
        limits it to that order. `quiet=True` also keeps the terminal orderStatus/openOrder from every
        client but the order's own (a watchdog that is not the master client never hears the end;
        executions still go to client 0 and the master client)."""
        self.state.unlisted[order] = frozenset(statuses)
        self.state.quiet_others = self.state.quiet_others or quiet

    def late_executions(self, seconds: float) -> None:
        """Each fill's execDetails and its commission report reach the clients `seconds` after the fill,
        while its orderStatus/openOrder and the position, portfolio and P&L updates go at once: an order
        reads Filled and the position zero before the execution is heard. IB documents no order
        between these messages. A reqExecutions answer lists the execution at once (not delayed).
        0 undoes (executions already held still arrive late)."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got: {seconds}")
        self.state.late_executions = seconds

    def is_unlisted(self, client_id: int, order_id: int, status: str) -> bool:
        unlisted = self.state.unlisted
        return status in unlisted.get((client_id, order_id), ()) or status in unlisted.get(None, ())

    def take_pending_cancel(self, client_id: int, order_id: int) -> tuple[float, str] | None:
        for i, (after, then, only) in enumerate(self.state.pending_cancels):
            if only is None or only == (client_id, order_id):
                del self.state.pending_cancels[i]
                return after, then
        return None

    def take_reject(self) -> tuple[int, str] | None:
        return self.state.rejects.pop(0) if self.state.rejects else None

    def take_ignore_cancel(self) -> bool:
        if self.state.ignore_cancels > 0:
            self.state.ignore_cancels -= 1
            return True
        return False

    # --- gateway-level ---------------------------------------------------------------------

    def inject_error(self, code: int, message: str | None = None, client_id: int | None = None) -> None:
        text = message or ERROR_TEXT.get(code, f"Simulated error {code}")
        self._sim.server.broadcast(m.error(-1, code, text), client_id=client_id)

    async def nightly_reset(self, duration: float, wait: bool = False) -> None:
        """1100 now, data stops (sockets and currentTime stay up), 1102 after `duration` seconds."""
        self.inject_error(1100)
        self.state.silenced = True

        async def finish() -> None:
            await asyncio.sleep(duration)
            self.state.silenced = False
            self.inject_error(1102)

        await self._run(finish(), wait)

    async def silence_data(self, duration: float | None = None, wait: bool = False) -> None:
        """Data stops without a word (no 1100, sockets and currentTime alive): a subscription that died
        silently. It flows again after `duration` seconds (None: until `clear()`)."""
        self.state.silenced = True
        if duration is None:
            return

        async def finish() -> None:
            await asyncio.sleep(duration)
            self.state.silenced = False

        await self._run(finish(), wait)

    async def daily_restart(self, refuse_for: float, wait: bool = False) -> None:
        """Close every socket, refuse connections for `refuse_for` seconds, then listen again."""
        self.state.refusing = True
        await self._sim.server.stop_listening()
        await self._sim.server.drop(None, reset=False)

        async def finish() -> None:
            await asyncio.sleep(refuse_for)
            await self._sim.server.start_listening()
            self.state.refusing = False

        await self._run(finish(), wait)

    async def _run(self, coro: Coroutine[Any, Any, None], wait: bool) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if wait:
            await task

    async def wait_idle(self, timeout: float) -> None:
        """Wait until background fault phases (nightly reset, restart) have finished."""
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*list(self._tasks)), timeout)

    def pacing(self, limit_per_second: int = 50, enabled: bool = True) -> None:
        """Above `limit_per_second` client messages: error 100 and disconnect (unless the client paces)."""
        self.state.pacing = Pacing(limit_per_second, enabled)

    def clock_skew(self, seconds: float) -> None:
        """currentTime answers shifted by `seconds` (0 undoes)."""
        self.state.skew = seconds

    def clear(self) -> None:
        """Undo every switch (background phases keep running)."""
        self.unfreeze()
        self.state = FaultState()

    async def aclose(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
