"""The gateway connection (ib_async): safety valve, connect, heartbeat, half-open detection, reconnect.

`GatewayConnection` owns the socket and the health state; `gateway.Gateway` extends it with the
polls, the snapshot and the order methods. See docs/gateway.md for the lifecycle.
"""
# ib_async ships py.typed but leaves many methods unannotated
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ib_async import IB

from watchdog.config.schema import GatewayConfig, HeartbeatConfig, PollingConfig
from watchdog.errors import (
    ClientIdInUse,
    GatewayError,
    GatewayUnavailable,
    HeartbeatTimeout,
    SafetyValveError,
)
from watchdog.gateway import socket_options, valve
from watchdog.gateway.error_log import ErrorLogLimit, IbErrorEcho, keeps_ib_line
from watchdog.gateway.heartbeat import Backoff, HeartbeatTracker
from watchdog.gateway.write_access import WriteAccessProbe
from watchdog.model import GatewayStatus, Health

log = logging.getLogger("watchdog.gateway.client")
T = TypeVar("T")

DEGRADED_CODES = frozenset({1100, 2110})  # gateway lost IB's servers: socket fine, data stopped
RESTORED_CODES = frozenset({1101, 1102})  # 1101: restored, data lost (re-request); 1102: data kept
ORDER_ERRORS_KEPT = 1_000  # the kill switch only asks about orders it placed moments ago
ERROR_CODES_KEPT = 200  # IB documents ~300 codes and a session sees a handful; more is an odd gateway
OTHER_ERROR_CODE = -1  # where codes past ERROR_CODES_KEPT are counted
NOTICE_CODES = frozenset({202, 399, 10167})  # order cancelled / order warnings: counted, no event
_IB_ECHO = IbErrorEcho(keeps_ib_line(NOTICE_CODES))  # ib_async's copy of the error lines we log


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


class GatewayConnection:
    """One reserved-client-id API connection and what is known about its health."""

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
        self._gw, self._hb, self._polling = gw, hb, polling
        self._clock, self._mono, self._on_event = clock, monotonic, on_event
        self._on_heartbeat = on_heartbeat
        self._closed = False
        self._ib: IB | None = None
        self._health = Health.UNKNOWN
        self._down_since: float | None = None
        self._last_error = ""
        self._server_version: int | None = None
        self._watched: tuple[str, ...] = ()
        self._connect_abort: asyncio.Event | None = None
        self._id_in_use = False
        self._port_checked = False
        self._heartbeat_lock = asyncio.Lock()
        self.tracker = HeartbeatTracker(hb.interval, hb.timeout, hb.misses)
        self.backoff = Backoff(hb.reconnect_initial, hb.reconnect_max, rand=rand or random.random)
        self.malformed_messages = 0
        self._order_errors: dict[int, tuple[int, str]] = {}
        self.error_counts: Counter[int] = Counter()  # by code; past ERROR_CODES_KEPT under OTHER_ERROR_CODE
        self.connect_attempts = 0
        self.connect_failures = 0
        self.down_detected_at: float | None = None  # monotonic time the last half-open was declared
        self.write_probe = WriteAccessProbe(monotonic, polling.timeout)  # read-only API detection
        self._error_log = ErrorLogLimit(monotonic)  # error lines per code a minute (error_log.py)
        logging.getLogger("ib_async.wrapper").addFilter(_IB_ECHO)  # once: the same object each time
        self._probe_task: asyncio.Future[None] | None = None
        # a read-only look (`ibkr-watchdog plan --gateway`): ib_async connects with readonly=True and
        # the order methods of `Gateway` refuse before anything reaches the socket
        self.read_only = False

    # ------------------------------------------------------------------ state

    @property
    def health(self) -> Health:
        return self._health

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def watched_accounts(self) -> tuple[str, ...]:
        return self._watched

    def is_connected(self) -> bool:
        ib = self._ib
        return (
            ib is not None
            and ib.isConnected()
            and self.tracker.consecutive_misses == 0
            and self._health in (Health.HEALTHY, Health.DEGRADED)
        )

    def status(self) -> GatewayStatus:
        t = self.tracker
        return GatewayStatus(
            health=self._health,
            connected=self._ib is not None and self._ib.isConnected(),
            server_version=self._server_version,
            last_heartbeat=t.last_heartbeat,
            heartbeat_rtt=t.rtt,
            clock_skew=t.clock_skew,
            down_since=self._down_since,
            last_error=self._last_error,
            write_access=self.write_probe.state,
        )

    def write_access(self) -> bool | None:
        """False when the API is read-only (321), True when proven writable, None not yet proven."""
        return self.write_probe.state

    def write_access_as_of(self) -> float | None:
        """Epoch of the last proof either way (the probe keeps monotonic time), None when none yet."""
        at = self.write_probe.checked_at
        return None if at is None else self._clock() - max(0.0, self._mono() - at)

    async def check_write_access(self) -> bool | None:
        """Probe write access now (gateway.write_access); announces a read-only API as an error event."""
        if self.read_only:
            return None  # the probe is a cancelOrder: a read-only look sends no order message
        before = self.write_probe.state
        after = await self.write_probe.probe(self._require())
        if after is False and before is not False:
            self._announce_read_only()
        return after

    def _announce_read_only(self) -> None:
        self._last_error = "321: the API is read-only (Read-Only API ticked in TWS / IB Gateway)"
        self._emit(
            EventKind.ERROR,
            "the API is in read-only mode: the kill switch cannot cancel or place orders; untick "
            "Global Configuration → API → Settings → 'Read-Only API' in TWS / IB Gateway",
            321,
        )

    def order_error(self, order_id: int) -> tuple[int, str] | None:
        """The last error the gateway reported for this request/order id (warnings excluded), or None."""
        return self._order_errors.get(order_id)

    def keepalive_settings(self) -> dict[str, int]:
        """The live socket's keepalive options (empty when not connected)."""
        sock = self._socket()
        return socket_options.keepalive_settings(sock) if sock is not None else {}

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

    def _set_health(self, health: Health) -> None:
        if health in (Health.DOWN, Health.DEGRADED) and self._down_since is None:
            self._down_since = self._clock()
        elif health is Health.HEALTHY:
            self._down_since = None
        self._health = health

    # ------------------------------------------------------------------ connect / close

    async def connect(self) -> None:
        """Connect with the reserved client id; the safety valve runs before anything else.

        Raises SafetyValveError (refuse to run), ClientIdInUse (error 326; retry later with the
        same id) or GatewayUnavailable (refused, timed out, closed during the handshake).
        """
        gw = self._gw
        # the safety valve guards acting on the wrong kind of account; a read-only look acts on nothing
        if not self._port_checked and not self.read_only:  # raises on a mismatch; warns once about odd ports
            valve.check_port(gw.port, gw.paper)
            self._port_checked = True
        if self._closed:
            raise GatewayUnavailable("the gateway connection was closed by the watchdog")
        if self._ib is not None:
            return
        self.connect_attempts += 1
        if self._health is Health.UNKNOWN:
            self._set_health(Health.CONNECTING)
        ib = IB()
        self._attach(ib)
        self._id_in_use = False
        abort = self._connect_abort = asyncio.Event()
        ib.client.apiError += self._on_api_error
        # ask the gateway to queue requests above its 50 msg/s limit instead of answering error 100
        # and dropping us: ib_async's own 45/s throttle sends in bursts that a strict one-second
        # window can still count as more than 50 (seen at connect with many positions)
        ib.client.setConnectOptions("+PACEAPI")
        connecting = asyncio.ensure_future(
            ib.connectAsync(
                gw.host,
                gw.port,
                clientId=gw.client_id,
                timeout=gw.connect_timeout,
                readonly=self.read_only,
                account=gw.accounts[0] if gw.accounts else "",
            )
        )
        aborted = asyncio.ensure_future(abort.wait())
        try:
            # ib_async may spend up to 3 × timeout (handshake, start-up requests, executions)
            await asyncio.wait({connecting, aborted}, timeout=gw.connect_timeout * 3 + 1.0,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for fut in (connecting, aborted):
                fut.cancel()
            await asyncio.gather(connecting, aborted, return_exceptions=True)
            ib.client.apiError -= self._on_api_error
            self._connect_abort = None
        failure = self._connect_failure(connecting)
        if failure is not None:
            self.connect_failures += 1
            await self._teardown(ib)
            self._set_health(Health.DOWN)
            if isinstance(failure, ClientIdInUse):
                self._last_error = str(failure)
                self._emit(EventKind.CLIENT_ID_IN_USE, str(failure), 326)
            raise failure
        try:
            managed = ib.managedAccounts()
            self._watched = (
                tuple(a for a in managed if not gw.accounts or a in gw.accounts)
                if self.read_only
                else valve.check_accounts(gw.paper, managed, gw.accounts)
            )
        except SafetyValveError:
            await self._teardown(ib)
            raise
        if self.closed:  # close() ran while the handshake was in flight
            await self._teardown(ib)
            raise GatewayUnavailable("the gateway connection was closed by the watchdog")
        self._ib = ib
        sock = self._socket()
        if self._hb.tcp_keepalive and sock is not None:
            socket_options.enable_keepalive(sock)
        self._server_version = ib.client.serverVersion()
        self.tracker.reset()
        self.write_probe.reset()
        self._set_health(Health.HEALTHY)
        self._after_connect(ib)
        self._emit(
            EventKind.CONNECTED,
            f"connected to {gw.host}:{gw.port} as client {gw.client_id}, server version "
            f"{self._server_version}, watching {', '.join(self._watched)}",
        )

    def _connect_failure(self, connecting: asyncio.Future[Any]) -> GatewayError | None:
        gw = self._gw
        if self._id_in_use:
            return ClientIdInUse(gw.client_id)
        where = f"{gw.host}:{gw.port}"
        if not connecting.done() or connecting.cancelled():
            return GatewayUnavailable(f"gateway at {where} closed or stalled the API handshake")
        exc = connecting.exception()
        if exc is None:
            return None
        if isinstance(exc, TimeoutError):
            return GatewayUnavailable(f"gateway at {where} did not complete the connect in time")
        if isinstance(exc, OSError):  # ConnectionRefusedError, ConnectionError from ib_async, ...
            return GatewayUnavailable(f"cannot connect to gateway at {where}: {exc}")
        return GatewayUnavailable(f"connect to gateway at {where} failed: {exc!r}")

    async def ensure_connected(self) -> float:
        """One reconnect step: 0.0 when connected, else the backoff delay before the next attempt.

        SafetyValveError propagates (never retry a paper/live mismatch); ClientIdInUse and
        GatewayUnavailable are retried with the same client id.
        """
        if self._ib is not None:
            return 0.0
        if self._health is not Health.UNKNOWN:
            self._emit(EventKind.RECONNECTING, f"reconnect attempt {self.backoff.attempts + 1}")
        try:
            await self.connect()
        except (ClientIdInUse, GatewayUnavailable) as e:
            delay = self.backoff.next_delay()
            log.warning("gateway connect failed (%s); next attempt in %.2fs", e, delay)
            return delay
        return 0.0

    async def supervise(self, stop: asyncio.Event) -> None:
        """Keep the connection alive until `stop` is set: heartbeat every interval, reconnect with backoff."""
        while not stop.is_set() and not self._closed:
            if self._ib is None:
                delay = await self.ensure_connected()
            else:
                started = self._mono()
                try:
                    await self.heartbeat()
                except GatewayError as e:
                    log.debug("heartbeat failed: %s", e)
                delay = max(0.0, self._hb.interval - (self._mono() - started))
            if delay > 0 and not stop.is_set():
                with contextlib.suppress(TimeoutError):  # the delay elapsed: next round
                    await asyncio.wait_for(stop.wait(), delay)

    async def close(self) -> None:
        """Disconnect and release everything (no tasks or sockets left behind); final."""
        self._closed = True
        ib, self._ib = self._ib, None
        if ib is not None:
            await self._teardown(ib)
        self._set_health(Health.DOWN)

    def _attach(self, ib: IB) -> None:
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        self._attach_data(ib)
        ib.client.decoder.logger = socket_options.counting_decoder_logger(self._on_malformed)

    def _detach(self, ib: IB) -> None:
        ib.errorEvent -= self._on_error
        ib.disconnectedEvent -= self._on_disconnected
        self._detach_data(ib)

    async def _teardown(self, ib: IB) -> None:
        """Detach, fail pending requests, abort the socket and wait (bounded) until it is closed."""
        probe, self._probe_task = self._probe_task, None
        if probe is not None and not probe.done():
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        self._detach(ib)
        conn = ib.client.conn
        closed = asyncio.Event()

        def on_closed(*_: object) -> None:
            closed.set()

        conn.disconnected += on_closed
        had_socket = conn.transport is not None
        self._abort_socket(ib)
        if had_socket:
            try:
                await asyncio.wait_for(closed.wait(), 1.0)
            except TimeoutError:
                log.warning("gateway socket did not report closed within 1s")
        conn.disconnected -= on_closed

    @staticmethod
    def _abort_socket(ib: IB) -> None:
        transport = ib.client.conn.transport
        if ib.client.isConnected():
            ib.wrapper.connectionClosed()  # fail pending requests now instead of at their timeouts
            ib.disconnect()
        elif transport is not None:
            ib.client.disconnect()
        if transport is not None:
            # abort, not close: a half-open or frozen peer would never take the EOF/flush
            transport.abort()

    def _socket(self) -> Any:
        ib = self._ib
        transport = ib.client.conn.transport if ib is not None else None
        return transport.get_extra_info("socket") if transport is not None else None

    # hooks for the data layer (gateway.Gateway)

    def _attach_data(self, ib: IB) -> None:
        """Connect data event handlers to a new IB instance."""

    def _detach_data(self, ib: IB) -> None:
        """Disconnect what `_attach_data` connected."""

    def _after_connect(self, ib: IB) -> None:
        """Start streaming subscriptions on a fresh connection."""

    def _after_data_lost(self, ib: IB) -> None:
        """Error 1101: the gateway restored its link but dropped our subscriptions."""

    # ------------------------------------------------------------------ heartbeat

    async def heartbeat(self) -> float:
        """reqCurrentTime with a hard timeout; returns the RTT. Declares DOWN after too many misses.

        After an answered heartbeat, write access is proven again when due (at connect, then every
        `write_access.INTERVAL`): one harmless request, see `gateway.write_access`."""
        self.log_error_summaries()  # a burst that ended gets its count within a beat
        async with self._heartbeat_lock:  # ib_async keeps one pending reqCurrentTime
            rtt = await self._heartbeat(self._require())
        if self.write_probe.due() and (self._probe_task is None or self._probe_task.done()):
            # in its own task: a gateway slow to answer the probe must not hold the heartbeat up
            self._probe_task = asyncio.ensure_future(self._probe_write_access())
        return rtt

    async def _probe_write_access(self) -> None:
        try:
            await self.check_write_access()
        except (GatewayError, ConnectionError) as exc:
            log.debug("write access probe failed: %s", exc)

    async def _heartbeat(self, ib: IB) -> float:
        sent, sent_epoch = self._mono(), self._clock()
        budget = self.tracker.wait_budget(sent) + _own_queue_delay(ib)
        try:
            answer = await asyncio.wait_for(ib.reqCurrentTimeAsync(), budget)
        except TimeoutError:
            if self.tracker.missed(sent=sent, now=self._mono()):
                await self._half_open()
            raise HeartbeatTimeout(
                f"no answer to reqCurrentTime within {budget:.3g}s "
                f"({self.tracker.consecutive_misses} consecutive)"
            ) from None
        except ConnectionError as e:
            raise GatewayUnavailable(f"heartbeat failed: {e}") from e
        rtt = self.tracker.answered(
            sent=sent, received=self._mono(), sent_epoch=sent_epoch, server_epoch=answer.timestamp()
        )
        self.backoff.reset()  # the connection proved healthy
        if self._on_heartbeat is not None:
            try:
                self._on_heartbeat(rtt)
            except Exception:  # metrics must never break the heartbeat
                log.exception("gateway on_heartbeat callback failed")
        return rtt

    async def _half_open(self) -> None:
        ib, self._ib = self._ib, None
        self.down_detected_at = self._mono()
        self._set_health(Health.DOWN)
        self._emit(
            EventKind.HALF_OPEN,
            f"{self.tracker.consecutive_misses} heartbeat(s) unanswered although the socket looks "
            f"connected: treating the gateway as down and reconnecting",
        )
        if ib is not None:
            await self._teardown(ib)

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

    # ------------------------------------------------------------------ request helpers

    def _require(self) -> IB:
        ib = self._ib
        if ib is None or not ib.isConnected():
            raise GatewayUnavailable("not connected to the gateway")
        return ib

    async def _timed(self, what: str, request: Callable[[], Awaitable[T]]) -> T:
        timeout = self._polling.timeout
        try:
            return await asyncio.wait_for(request(), timeout)
        except TimeoutError as e:
            raise GatewayUnavailable(f"{what}: no answer within {timeout:g}s") from e
        except ConnectionError as e:  # ib_async: not connected / socket dropped mid-request
            raise GatewayUnavailable(f"{what}: {e}") from e


def _own_queue_delay(ib: IB) -> float:
    """How long our own request queue will hold a new request back before it reaches the socket.

    ib_async throttles itself to 45 requests/s; behind a burst (connect, a large flatten) a heartbeat
    waits in that queue. That wait is ours, not the gateway's: it is added to the heartbeat's budget
    so a busy but healthy gateway is never declared half-open.
    """
    client = ib.client
    queued = len(getattr(client, "_msgQ", ()))
    if not client.MaxRequests:
        return 0.0
    if not queued:
        # nothing waits yet, but a window already full of requests holds the next one back too
        times = getattr(client, "_timeQ", ())
        now = asyncio.get_running_loop().time()
        if sum(1 for t in times if now - t <= client.RequestsInterval) < client.MaxRequests:
            return 0.0
    # the current window is spent (that is why requests queue): one more window, plus one per batch
    return float((queued // client.MaxRequests + 1) * client.RequestsInterval)
