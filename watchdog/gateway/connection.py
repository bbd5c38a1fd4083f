"""The gateway connection (ib_async): safety valve, connect, reconnect, close.

`GatewayConnection` owns the socket and the health state; `gateway.Gateway` extends it with the
polls, the snapshot and the order methods. Its other jobs live beside it: `gateway.events` (error
and disconnect callbacks, health changes, `GatewayEvent`s) and `gateway.health_checks` (heartbeat,
half-open detection, write access probing). See docs/gateway.md for the lifecycle.
"""
# ib_async ships py.typed but leaves many methods unannotated
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ib_async import IB

from watchdog.config.schema import GatewayConfig, HeartbeatConfig, PollingConfig
from watchdog.errors import ClientIdInUse, GatewayError, GatewayUnavailable, SafetyValveError
from watchdog.gateway import socket_options, valve
from watchdog.gateway.error_log import ErrorLogLimit
from watchdog.gateway.events import IB_ECHO, EventKind, GatewayEvent
from watchdog.gateway.health_checks import HealthChecks
from watchdog.gateway.heartbeat import Backoff, HeartbeatTracker
from watchdog.gateway.write_access import WriteAccessProbe
from watchdog.model import GatewayStatus, Health

log = logging.getLogger("watchdog.gateway.client")
T = TypeVar("T")

__all__ = ["EventKind", "GatewayConnection", "GatewayEvent"]  # importers: gateway.client


class GatewayConnection(HealthChecks):
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
        logging.getLogger("ib_async.wrapper").addFilter(IB_ECHO)  # once: the same object each time
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

    def keepalive_settings(self) -> dict[str, int]:
        """The live socket's keepalive options (empty when not connected)."""
        sock = self._socket()
        return socket_options.keepalive_settings(sock) if sock is not None else {}

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

    # `_after_data_lost` (error 1101) is the fourth hook: `gateway.events.ConnectionEvents`

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
