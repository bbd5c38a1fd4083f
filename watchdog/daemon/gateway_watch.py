"""The daemon's side of the gateway: (re)connect, heartbeat job, health events, the pending kill's resume.

A mixin of `lifecycle.Daemon`. A pending kill runs the moment the gateway is usable again — a
(re)connect, 1101/1102, or good account-summary and order reads — and while one waits, the
connection is retried every PENDING_RECONNECT seconds instead of after the reconnect backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from watchdog.config.schema import Config
from watchdog.daemon.cycle import READS, Requests, RunState
from watchdog.daemon.kill_tasks import KillTasks
from watchdog.daemon.readiness_job import ReadinessRunner
from watchdog.daemon.wiring import Components
from watchdog.errors import ClientIdInUse, GatewayError, GatewayUnavailable, SafetyValveError
from watchdog.gateway.client import EventKind, GatewayEvent

log = logging.getLogger("watchdog.daemon.lifecycle")

PENDING_RECONNECT = 0.25  # seconds between reconnect attempts while a kill waits for the gateway


class GatewayWatch:
    """Connection upkeep (mixed into `lifecycle.Daemon`, which sets every attribute below)."""

    c: Components
    config: Config
    state: RunState
    kills: KillTasks
    readiness: ReadinessRunner
    _requests: Requests
    _reads_ok_at: dict[str, float]
    _fast_reconnect: asyncio.Task[None] | None
    _reconnecting: asyncio.Lock
    _down_notified: bool
    _id_in_use_notified: bool
    _connected_once: bool
    _next_connect_at: float

    @property
    def endpoint(self) -> str:
        return f"{self.config.gateway.host}:{self.config.gateway.port}"

    if TYPE_CHECKING:  # provided by Cycle (a stub here would shadow it in the MRO)

        def _request_evaluation(self) -> None: ...

    async def _connect(self) -> None:
        await self.c.gateway.connect()
        self._after_connect()

    def _after_connect(self) -> None:
        c = self.c
        c.metrics.set_connected(True)
        was_down, self._down_notified = self._down_notified, False
        self._id_in_use_notified = False
        accounts = ", ".join(c.gateway.watched_accounts) or "no account"
        log.info("connected to the gateway; watching %s", accounts)
        if was_down or self._connected_once:
            c.metrics.observe_reconnect()
            c.notifier.notify_reconnect(self.endpoint)
        self._connected_once = True
        self.readiness.on_connect(c.clock())
        self.resume_pending("reconnect")

    def resume_pending(self, why: str) -> bool:
        """Run the pending kill the moment the gateway is usable again: a (re)connect, 1101/1102, or
        good positions and orders reads after it was parked (the socket may never have dropped)."""
        c = self.c
        if self.state is RunState.STOPPED or self._requests.stop or c.store.pending_kill() is None:
            return False
        if self.kills.running:  # the kill itself (its record is pending while it runs), or another
            return False
        if not c.gateway.is_connected():
            return False
        if why == "read":
            parked = self.kills.parked_at
            if any(self._reads_ok_at.get(n, -1e18) <= parked for n in READS):
                return False  # both reads the kill needs must have worked since it was parked
            # reads that work while the kill's own reads keep failing must not retry it every poll
            # (each retry is a global cancel and a critical notice): 2 s, 4 s, … up to 60 s apart
            if c.monotonic() - parked < min(60.0, 2.0 * 2 ** max(0, self.kills.parked_in_a_row - 1)):
                return False
        if not self.kills.start_pending():
            return False
        log.warning("gateway usable again (%s): running the pending kill", why)
        return True

    def _reconnect_fast_while_pending(self) -> None:
        """A kill waits for the gateway: reconnect every PENDING_RECONNECT seconds, not the backoff's."""
        if self._fast_reconnect is None or self._fast_reconnect.done():
            self._fast_reconnect = asyncio.ensure_future(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        """Connect attempts every PENDING_RECONNECT seconds while a kill waits and the socket is down.

        Plain `connect()` calls: the backoff is not advanced, and a refused attempt is logged at
        DEBUG (the outage itself is already announced; four WARNING lines a second would bury it)."""
        c = self.c
        failed = 0
        while not self._requests.stop and c.store.pending_kill() is not None:
            if not c.gateway.status().connected and not self._reconnecting.locked():
                async with self._reconnecting:
                    try:
                        await c.gateway.connect()
                    except (ClientIdInUse, GatewayUnavailable) as exc:
                        failed += 1
                        log.debug("pending kill: connect attempt %d failed: %s", failed, exc)
                    except SafetyValveError as exc:  # never retried: the heartbeat job reports it
                        log.error("pending kill: the gateway fails the safety valve: %s", exc)
                        return
                    else:
                        if c.gateway.status().connected:
                            log.info("pending kill: connected after %d failed attempt(s)", failed)
                            self._next_connect_at = 0.0
                            self._after_connect()
            await asyncio.sleep(PENDING_RECONNECT)

    async def heartbeat_job(self) -> None:
        """Heartbeat while connected (half-open detection lives in the gateway); reconnect with backoff."""
        c = self.c
        if c.gateway.status().connected:
            try:
                await c.gateway.heartbeat()
            except GatewayError as exc:
                log.warning("heartbeat failed: %s", exc)
            if c.gateway.status().connected:
                # a gateway without IB's servers (1100) is left to the rules on gateway_down_seconds:
                # quiet windows apply to them, and IB's nightly reset is such a spell every night
                return
        c.metrics.set_connected(False)
        self._notify_if_down_long()
        if self._reconnecting.locked() or c.monotonic() < self._next_connect_at:
            return
        async with self._reconnecting:
            delay = await c.gateway.ensure_connected()
            if delay > 0:
                self._next_connect_at = c.monotonic() + delay
                return
            self._after_connect()

    def _on_gateway_event(self, ev: GatewayEvent) -> None:
        """Gateway health changes re-evaluate at once (gateway-down rules must not wait for a timer)."""
        if ev.kind is EventKind.CLIENT_ID_IN_USE:
            # every retry (backoff capped at reconnect_max) meets 326 again: tell people once per outage
            if not self._id_in_use_notified:
                self._id_in_use_notified = True
                self.c.notifier.notify_client_id_in_use(self.config.gateway.client_id, ev.message)
        elif ev.kind is EventKind.DEGRADED and ev.code is not None:
            self.c.notifier.notify_degraded(ev.code, ev.message)  # an outage begins (one notice per outage)
        elif ev.kind is EventKind.RESTORED:  # 1101/1102, or account data read again after 1100
            # the outage 1100 began is over: its recovery goes where the outage was told
            self.c.notifier.notify_restored(ev.code, ev.message)
            self.resume_pending(f"restored, code {ev.code}")
        if ev.kind is not EventKind.CONNECTED and self.state is RunState.RUNNING:
            self._request_evaluation()

    def _notify_if_down_long(self) -> None:
        down_since = self.c.gateway.status().down_since
        limit = self.config.notifications.gateway_down_after
        if down_since is None or self._down_notified or self.c.clock() - down_since < limit:
            return
        self._down_notified = True
        self.c.notifier.notify_gateway_down(self.endpoint, down_since, self.c.gateway.status().last_error)
