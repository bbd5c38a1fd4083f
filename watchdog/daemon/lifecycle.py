"""Daemon lifecycle: start-up, signals, reload, bounded shutdown; the cycle and gateway upkeep are mixins.

Signal handlers only set flags and wake the main loop (uvicorn's habit); the loop acts. The watch
cycle lives in `daemon.cycle` (`poll_once()`, `evaluate_once()`, driven directly by tests), the
gateway upkeep and the pending kill's resume in `daemon.gateway_watch`. Every side effect (clock,
gateway, metrics registry, notifier) is injected through `Components`, so a test can swap any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from watchdog import __version__
from watchdog.config.schema import Config
from watchdog.daemon.cycle import POLLS, Cycle, CycleResult, Requests, RunState
from watchdog.daemon.gateway_watch import GatewayWatch
from watchdog.daemon.jobs import reload_config, reload_config_async, schedule_jobs
from watchdog.daemon.kill_tasks import KillTasks
from watchdog.daemon.readiness_job import ReadinessRunner
from watchdog.daemon.wiring import Components
from watchdog.errors import (
    ClientIdInUse,
    GatewayUnavailable,
)
from watchdog.model import Action, KillReport, Snapshot, TradingState
from watchdog.state.book import BookWriter

__all__ = ["POLLS", "CycleResult", "Daemon", "RunState"]

log = logging.getLogger("watchdog.daemon.lifecycle")

SHUTDOWN_GRACE = 10.0  # seconds a running kill may take to finish during a graceful stop
RELOAD_SETTLE = 5.0  # seconds a reload waits for a running evaluation (and its lockout step)


class Daemon(GatewayWatch, Cycle):
    def __init__(self, config: Config, config_path: str | None, components: Components) -> None:
        self.config = config
        self.config_path = config_path
        self.c = components
        self.state = RunState.STARTING
        self.shutdown_grace = SHUTDOWN_GRACE  # seconds a running kill may take to finish when stopping
        self._wake = asyncio.Event()
        self._kill_wake = asyncio.Event()  # manual kills during start-up (the main loop is not running yet)
        self._requests = Requests()
        self.kills = KillTasks(
            components.killswitch,
            components.notifier,
            lambda: self._last_snapshot.open_orders if self._last_snapshot is not None else (),
            monotonic=components.monotonic,
            on_parked=self._reconnect_fast_while_pending,
        )
        self._manual_kill: tuple[Action, asyncio.Task[KillReport | None]] | None = None
        self._folded = 0  # manual triggers folded into the running manual kill
        self._reads_ok_at: dict[str, float] = {}  # monotonic time of the last good positions/orders read
        self._fast_reconnect: asyncio.Task[None] | None = None
        self._eval_task: asyncio.Task[CycleResult] | None = None
        self._eval_again = False
        self._ready_sent = False
        self._polls_ok: set[str] = set()  # polls that have succeeded at least once (READY needs all)
        self._reconnecting = asyncio.Lock()
        self._last_snapshot: Snapshot | None = None
        self._down_notified = False
        self._id_in_use_notified = False
        self._connected_once = False
        self._next_connect_at = 0.0
        self.last_cycle: CycleResult | None = None
        self._status_written = 0.0
        self._saved_highs: list[dict[str, object]] = []
        self._status_state: TradingState | None = None  # the latch state status.json last showed
        self._book = BookWriter(components.store.files)  # book.json: what `drill --book state` rehearses
        self.readiness = ReadinessRunner(components, lambda: self.kills.running)

    # ------------------------------------------------------------------ life cycle
    async def start(self, *, require_gateway: bool = False, schedule: bool = True) -> None:
        """Bring every part up; each part that fails to start is reported, only the gateway can stop us.

        `schedule=False` leaves the timers off: tests then drive the cycle with `poll_once()`.
        """
        c = self.c
        c.store.write_pid(os.getpid())
        c.audit.open()  # kept open: a kill's records need no free descriptor (state/files.py)
        c.metrics.declare_polls(POLLS)
        if self.config.metrics.enabled:
            try:
                port = await c.metrics.start(self.config.metrics.host, self.config.metrics.port)
                log.info("metrics on http://%s:%d/metrics", self.config.metrics.host, port)
            except OSError as exc:  # the kill path never depends on metrics
                log.error("metrics server not started (%s); continuing without /metrics", exc)
                c.notifier.notify_text("warning", "Metrics server not started", str(exc))
        await c.notifier.start()
        if c.bots is not None:  # bots may heartbeat before the gateway is up
            if schedule:
                c.bots.on_due = self._request_evaluation
            await c.bots.start()
        c.metrics.observe_reload(True, c.clock())
        c.killswitch.audit_damage()  # a damaged latch or pending kill: audited, alerted, read fail-safe
        state, pending = c.store.trading_state(), c.store.pending_kill()
        c.metrics.set_tripped(state is TradingState.TRIPPED)
        c.metrics.set_pending(pending is not None)
        c.notifier.notify_startup(
            __version__, self.config.gateway.accounts, state.value, dry_run=self.config.kill.dry_run
        )
        if pending is not None:  # "gateway down" only once a connect has failed (notified below)
            why = {"stop": "interrupted by a stop"}.get(pending.interrupted, "left pending by the last run")
            c.notifier.notify_text(
                "critical",
                f"[KILL RESUMING] {pending.action.value} by {pending.trigger}",
                f"kill {pending.kill_id} ({why}) runs as soon as the gateway is usable",
            )
        c.on_gateway_event = self._on_gateway_event
        c.on_kill_ended = lambda: self.readiness.on_connect(c.clock())  # plan the changed book at once
        if schedule:  # tests that drive poll_once() themselves keep evaluation under their control
            c.gateway.on_data = self._request_evaluation
        c.control.process_requests(c.killswitch)
        restored = c.memory.import_highs(c.store.baseline().get("day_highs", []), c.clock())
        c.killswitch.audit_damage()  # a damaged baseline is discarded at start: audited and alerted
        if restored:
            log.info(
                "restored %d day high(s) from the state dir: drawdown limits keep today's peak", restored
            )
        try:
            await self._connect()
        except (GatewayUnavailable, ClientIdInUse) as exc:
            if require_gateway:
                raise
            log.error("gateway not reachable at start: %s; retrying in the background", exc)
            c.notifier.notify_gateway_down(self.endpoint, c.clock(), str(exc))
            self._down_notified = True  # so the first connection sends the recovery and ends the outage
        if c.store.pending_kill() is not None and not c.gateway.is_connected():
            self._reconnect_fast_while_pending()
        if c.gateway.is_connected():
            # a manual kill needs no snapshot: its global cancel goes out now, not after the polls
            self._handle_kill_requests()
            early = asyncio.ensure_future(self._kills_while_starting())
            try:
                # one full round before anything is judged: the first snapshot is complete, and orders
                # already working now are the baseline that orders-per-minute counts new ones against
                for name in POLLS:
                    await self.poll(name)
            finally:
                early.cancel()
                await asyncio.gather(early, return_exceptions=True)
        self.state = RunState.RUNNING
        if schedule:
            self._schedule_jobs()
            c.scheduler.start()
            self._request_evaluation()

    async def _kills_while_starting(self) -> None:
        """Start manual kills at once while the first polls run (a slow gateway makes them take seconds)."""
        while True:
            await self._kill_wake.wait()
            self._kill_wake.clear()
            self._handle_kill_requests()

    async def stop(self) -> None:
        """Bounded, orderly stop. Never fires a kill; lets a running kill finish for a short grace."""
        if self.state is RunState.STOPPED:
            return
        self.state = RunState.STOPPING
        c = self.c
        c.sd.stopping()
        if c.scheduler.running:
            c.scheduler.shutdown(wait=False)
        c.timers.remove_all()
        if self.kills.tasks and not self._requests.force:
            log.warning("waiting up to %.0fs for a running kill to finish", self.shutdown_grace)
            await self._wait_for_kills_or_force(self.shutdown_grace)
        # a kill still running now is cancelled: the kill switch keeps it pending on disk, audits it
        # and raises the critical "interrupted by a stop; resumes at start"
        background = [t for t in (self._fast_reconnect, self._eval_task) if t is not None]
        for t in [*self.kills.tasks, *background]:
            t.cancel()
        await asyncio.gather(*self.kills.tasks, *background, return_exceptions=True)
        await self.readiness.stop()
        c.notifier.notify_shutdown(
            "stopped" if not self._requests.force else "forced stop", c.store.trading_state().value
        )
        await c.gateway.close()
        if c.bots is not None:
            await c.bots.stop()
        await c.notifier.stop(timeout=0.5 if self._requests.force else 3.0)
        c.metrics.stop()
        with contextlib.suppress(OSError):
            c.store.remove_pid()
        self.state = RunState.STOPPED

    async def _wait_for_kills_or_force(self, timeout: float) -> None:
        """Wait for running kills, but return at once when a second SIGINT asks for a forced stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.kills.tasks and not self._requests.force and (left := deadline - loop.time()) > 0:
            self._wake.clear()
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {*self.kills.tasks, woken}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                woken.cancel()
                await asyncio.gather(woken, return_exceptions=True)

    async def run(self, *, require_gateway: bool = False) -> int:
        """Start, then act on signal requests until asked to stop."""
        self.install_signal_handlers()
        try:
            await self.start(require_gateway=require_gateway)
            await self.serve()
        finally:
            # handlers stay in place during the stop: a second SIGINT must force it, not raise
            # KeyboardInterrupt into the loop (traceback, pid file left, gateway not closed)
            try:
                await self.stop()
            finally:
                self.remove_signal_handlers()
        return 0

    async def serve(self) -> None:
        """Act on requests (signals, control) until a stop is requested."""
        while not self._requests.stop:
            await self._wake.wait()
            self._wake.clear()
            self._handle_kill_requests()
            if self._requests.reload:
                await self._settle_evaluation(RELOAD_SETTLE)
                self._requests.reload = False
                await reload_config_async(self)

    async def _settle_evaluation(self, timeout: float) -> None:
        """Let a running evaluation finish before a reload applies queued resets: its lockout step
        holds the kill switch for a moment, and a reset must not be refused for that (a running kill
        still refuses it). Manual kills that arrive meanwhile start at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (
            (task := self._eval_task) is not None
            and not task.done()
            and not self._requests.stop
            and (left := deadline - loop.time()) > 0
        ):
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({task, woken}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                await asyncio.gather(woken, return_exceptions=True)
            if self._wake.is_set():
                self._wake.clear()
                self._handle_kill_requests()

    @property
    def running(self) -> bool:
        return self.state is RunState.RUNNING

    @property
    def kill_in_progress(self) -> bool:
        return self.kills.running

    # ------------------------------------------------------------------ signals
    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, self.request_kill, Action.CLOSE_ALL, "manual:SIGUSR1", "")
        loop.add_signal_handler(signal.SIGUSR2, self.request_kill, Action.CANCEL_ALL, "manual:SIGUSR2", "")
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, False)
        loop.add_signal_handler(signal.SIGINT, self.request_stop, True)

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    def request_kill(self, action: Action, trigger: str, reason: str) -> None:
        if self.state in (RunState.STOPPING, RunState.STOPPED):
            # the handlers stay installed while stopping (for a second SIGINT): say so, never drop silently
            log.error(
                "%s %s ignored: the daemon is stopping; send it again once restarted", trigger, action.value
            )
            self.c.notifier.notify_text(
                "critical", f"Manual kill ({action.value}) NOT run", f"{trigger}: the watchdog was stopping"
            )
            return
        self._requests.kill.append((action, trigger, reason))
        self._wake.set()
        self._kill_wake.set()

    def request_reload(self) -> None:
        self._requests.reload = True
        self._wake.set()

    def request_stop(self, interactive: bool = False) -> None:
        if self._requests.stop and interactive:
            self._requests.force = True  # a second Ctrl-C: stop without waiting for anything
        self._requests.stop = True
        self._wake.set()

    def _handle_kill_requests(self) -> None:
        """Start each manual kill, except a repeat of one still running (same or weaker action): a burst
        of signals folds into the running kill, audited, with one notice instead of one per signal."""
        while self._requests.kill:
            action, trigger, reason = self._requests.kill.pop(0)
            # the reason of the request matching this signal is always kept (stale ones are discarded)
            request = self.c.control.take_kill_request(action)
            if request is not None:
                reason = request.reason or reason
            running = self._manual_kill
            if running is not None and not running[1].done() and _covers(running[0], action):
                self._folded += 1
                details = {"trigger": trigger, "action": action.value, "reason": reason, "n": self._folded}
                # not fsynced one by one: a burst must not stall the loop the kill runs on; the kill's
                # next record fsyncs the file, these lines included
                # under the running kill's id: `kill --wait` follows it, `report` shows this reason
                kill_id = self.c.killswitch.running_kill_id
                self.c.audit.record("kill.folded", details, kill_id=kill_id, durable=False)
                log.info(
                    "%s %s folded into the running manual kill (%d so far)",
                    trigger,
                    action.value,
                    self._folded,
                )
                continue
            self._folded = 0
            self.c.notifier.notify_text(
                "critical",
                f"[KILL STARTED] {action.value} by {trigger}",
                f"{reason or 'no reason given'}\n"
                + (
                    "DRY RUN: nothing is cancelled or closed; the planned steps follow in the kill report."
                    if self.config.kill.dry_run
                    else "The watchdog is cancelling now; the kill report follows."
                ),
            )
            task = self.start_kill(action, trigger, reason=reason or "manual trigger")
            self._manual_kill = (action, task)

    # ------------------------------------------------------------------ kills
    @property
    def kill_reports(self) -> list[KillReport]:
        return self.kills.reports

    async def wait_for_kills(self, timeout: float) -> list[KillReport]:
        return await self.kills.wait(timeout)

    # ------------------------------------------------------------------ jobs and reload
    def _schedule_jobs(self) -> None:
        schedule_jobs(self)

    def reload(self) -> bool:
        """Validate the file fully, swap atomically; on any error keep the running config."""
        return reload_config(self)


def _covers(running: Action, new: Action) -> bool:
    """A running kill covers a new trigger of the same or a weaker action (close-all covers cancel-all)."""
    return running is new or running is Action.CLOSE_ALL
