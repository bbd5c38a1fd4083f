"""Gateway events and ib_async's error/disconnect callbacks: health changes, counts, the `on_event` feed.

`ConnectionEvents` is the part of `GatewayConnection` that turns what the gateway reports (error
codes, a closed socket, a message the decoder could not read) into health, counters and one
`GatewayEvent` per fact. Error codes: IB's "Message Codes" page (TWS API documentation).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ib_async import IB

from watchdog.gateway.error_log import ErrorLogLimit, IbErrorEcho, keeps_ib_line
from watchdog.gateway.write_access import WriteAccessProbe
from watchdog.model import Health

log = logging.getLogger("watchdog.gateway.client")

DEGRADED_CODES = frozenset({1100, 2110})  # gateway lost IB's servers: socket fine, data stopped
RESTORED_CODES = frozenset({1101, 1102})  # 1101: restored, data lost (re-request); 1102: data kept
ORDER_ERRORS_KEPT = 1_000  # the kill switch only asks about orders it placed moments ago
ERROR_CODES_KEPT = 200  # IB documents ~300 codes and a session sees a handful; more is an odd gateway
OTHER_ERROR_CODE = -1  # where codes past ERROR_CODES_KEPT are counted
NOTICE_CODES = frozenset({202, 399, 10167})  # order cancelled / order warnings: counted, no event
IB_ECHO = IbErrorEcho(keeps_ib_line(NOTICE_CODES))  # ib_async's copy of the error lines we log


class EventKind(enum.StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    HALF_OPEN = "half_open"
    DEGRADED = "degraded"
    RESTORED = "restored"
    ERROR = "error"
    CLIENT_ID_IN_USE = "client_id_in_use"
    RECONNECTING = "reconnecting"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """Something the daemon may log, count or notify about; delivered through `on_event`."""

    kind: EventKind
    message: str
    at: float  # epoch
    code: int | None = None


class ConnectionEvents:
    """Health state and event delivery of `GatewayConnection` (which sets every attribute below)."""

    _clock: Callable[[], float]
    _on_event: Callable[[GatewayEvent], None] | None
    _ib: IB | None
    _health: Health
    _down_since: float | None
    _last_error: str
    _connect_abort: asyncio.Event | None
    _id_in_use: bool
    _order_errors: dict[int, tuple[int, str]]
    _error_log: ErrorLogLimit
    error_counts: Counter[int]  # by code; past ERROR_CODES_KEPT under OTHER_ERROR_CODE
    malformed_messages: int
    write_probe: WriteAccessProbe

    if TYPE_CHECKING:  # supplied by GatewayConnection, the one class that mixes this in

        def _detach(self, ib: IB) -> None: ...

    def _after_data_lost(self, ib: IB) -> None:
        """Error 1101: the gateway restored its link but dropped our subscriptions."""

    def order_error(self, order_id: int) -> tuple[int, str] | None:
        """The last error the gateway reported for this request/order id (warnings excluded), or None."""
        return self._order_errors.get(order_id)

    def account_data_read(self, asked_at: float) -> None:
        """An account summary asked for after 1100/2110 was answered: IB's servers are back although
        the gateway sent no 1101/1102 (some gateways never do after the nightly reset,
        QuantConnect/Lean#960). The same proof the kill switch takes to resume a parked kill."""
        since = self._down_since
        if self._health is Health.DEGRADED and since is not None and asked_at > since:
            self._set_health(Health.HEALTHY)
            self._emit(EventKind.RESTORED, "account data flows again (the gateway sent no 1101/1102)")

    def _set_health(self, health: Health) -> None:
        if health in (Health.DOWN, Health.DEGRADED) and self._down_since is None:
            self._down_since = self._clock()
        elif health is Health.HEALTHY:
            self._down_since = None
        self._health = health

    def _announce_read_only(self) -> None:
        self._last_error = "321: the API is read-only (Read-Only API ticked in TWS / IB Gateway)"
        self._emit(
            EventKind.ERROR,
            "the API is in read-only mode: the kill switch cannot cancel or place orders; untick "
            "Global Configuration → API → Settings → 'Read-Only API' in TWS / IB Gateway",
            321,
        )

    def _emit(self, kind: EventKind, message: str, code: int | None = None) -> None:
        event = GatewayEvent(kind=kind, message=message, at=self._clock(), code=code)
        level = logging.INFO if kind in (EventKind.CONNECTED, EventKind.RESTORED) else logging.WARNING
        self.log_error_summaries()
        if kind is not EventKind.ERROR or code is None or self._error_log.allow(code):
            log.log(level, "gateway %s%s: %s", kind.value, f" code={code}" if code else "", message)
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a broken listener must not take the connection down with it
            log.exception("gateway on_event callback failed for %s", kind.value)

    def log_error_summaries(self) -> None:
        """One line per error code whose lines were left out in a window that is now over."""
        for code, left_out, window in self._error_log.summaries():
            log.warning(
                "gateway error code=%d: %d more in the last %.0fs not logged "
                "(every one is counted in ibkr_watchdog_gateway_errors_total)",
                code,
                left_out,
                window,
            )

    # ------------------------------------------------------------------ ib_async callbacks

    def _on_api_error(self, msg: str) -> None:
        if self._connect_abort is not None:
            self._connect_abort.set()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if self.write_probe.answer(req_id, code, message):
            return  # the write access probe's own answer: no order error, no event
        counts = self.error_counts
        # bounded like the metric's label set: a gateway inventing codes cannot grow the process
        counts[code if code in counts or len(counts) < ERROR_CODES_KEPT else OTHER_ERROR_CODE] += 1
        was = self.write_probe.state
        self.write_probe.observe(code, message)
        if was is not False and self.write_probe.state is False:
            self._announce_read_only()
        if req_id > 0 and not (2100 <= code < 2200 or code in NOTICE_CODES):
            # request and order ids share one sequence in ib_async: keyed by id, this is per order.
            # 202 "Order Canceled" is a notice, not a rejection: a re-price or another instance's
            # global cancel must not read as "the gateway refused this order".
            self._order_errors[req_id] = (code, message)
            if len(self._order_errors) > ORDER_ERRORS_KEPT:  # a long-running daemon: bounded
                del self._order_errors[next(iter(self._order_errors))]
        if code == 326:
            self._id_in_use = True
            if self._connect_abort is not None:
                self._connect_abort.set()
            return
        if code in DEGRADED_CODES:
            self._last_error = f"{code}: {message}"
            if self._health is Health.HEALTHY:
                self._set_health(Health.DEGRADED)
            self._emit(EventKind.DEGRADED, message, code)
        elif code in RESTORED_CODES:
            if self._health is Health.DEGRADED:
                self._set_health(Health.HEALTHY)
            if code == 1101 and self._ib is not None:
                self._after_data_lost(self._ib)
            self._emit(EventKind.RESTORED, message, code)
        elif not (2100 <= code < 2200 or code in NOTICE_CODES):
            self._last_error = f"{code}: {message}"
            self._emit(EventKind.ERROR, f"reqId {req_id}: {message}", code)

    def _on_disconnected(self) -> None:
        ib, self._ib = self._ib, None
        if ib is None:  # a connect attempt that never became ours cleaning up after itself
            return
        self._detach(ib)
        self._set_health(Health.DOWN)
        self._emit(EventKind.DISCONNECTED, "the gateway closed the connection")

    def _on_malformed(self, record: logging.LogRecord) -> None:
        self.malformed_messages += 1
        self._emit(EventKind.MALFORMED, record.getMessage()[:200])
