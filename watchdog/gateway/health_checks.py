"""Is the gateway answering? The reqCurrentTime heartbeat, half-open detection, write access probing.

`HealthChecks` is the part of `GatewayConnection` that asks: a heartbeat with a hard timeout (the
bookkeeping is `gateway.heartbeat`), a connection declared half-open after too many misses, and
the read-only API probe (`gateway.write_access`) after an answered heartbeat when it is due.
"""
# ib_async ships py.typed but leaves many methods unannotated
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ib_async import IB

from watchdog.errors import GatewayError, GatewayUnavailable, HeartbeatTimeout
from watchdog.gateway.events import ConnectionEvents, EventKind
from watchdog.gateway.heartbeat import Backoff, HeartbeatTracker
from watchdog.gateway.request_queue import own_queue_delay
from watchdog.model import Health

log = logging.getLogger("watchdog.gateway.client")


class HealthChecks(ConnectionEvents):
    """Heartbeat and write access checks of `GatewayConnection` (which sets every attribute below)."""

    _mono: Callable[[], float]
    _on_heartbeat: Callable[[float], None] | None
    _heartbeat_lock: asyncio.Lock
    _probe_task: asyncio.Future[None] | None
    tracker: HeartbeatTracker
    backoff: Backoff
    down_detected_at: float | None  # monotonic time the last half-open was declared
    read_only: bool

    if TYPE_CHECKING:  # supplied by GatewayConnection, the one class that mixes this in

        def _require(self) -> IB: ...

        async def _teardown(self, ib: IB) -> None: ...

    # ------------------------------------------------------------------ write access

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
        budget = self.tracker.wait_budget(sent) + own_queue_delay(ib.client)
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
