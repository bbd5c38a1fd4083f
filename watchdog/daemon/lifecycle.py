"""Daemon lifecycle: start-up, scheduled polls and evaluation, signals, reload, bounded shutdown.

Signal handlers only set flags and wake the main loop (uvicorn's habit); the loop acts. The
body of one cycle is public (`poll_once()`, `evaluate_once()`), so tests drive it directly
instead of sleeping. Every side effect (clock, gateway, metrics registry, notifier) is injected
through `Components`, so a test can swap any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from watchdog import __version__
from watchdog.config.schema import Config
from watchdog.daemon.jobs import reload_config, reload_config_async, schedule_jobs
from watchdog.daemon.kill_tasks import KillTasks
from watchdog.daemon.wiring import Components
from watchdog.errors import (
    ClientIdInUse,
    GatewayError,
    GatewayUnavailable,
    StateError,
)
from watchdog.gateway.client import EventKind, GatewayEvent
from watchdog.model import Action, Breach, BreachKind, KillReport, Snapshot, TradingState
from watchdog.state.store import status_from_snapshot

log = logging.getLogger("watchdog.daemon.lifecycle")

SHUTDOWN_GRACE = 10.0  # seconds a running kill may take to finish during a graceful stop
RELOAD_SETTLE = 5.0  # seconds a reload waits for a running evaluation (and its lockout step)
POLLS = ("pnl", "account_summary", "positions", "orders", "executions")
# round trips that prove account data flows again (a routine positions poll reads ib_async's streamed
# copy, which answers even while the gateway has lost IB's servers): both good = usable again
READS = ("account_summary", "orders")
PENDING_RECONNECT = 0.25  # seconds between reconnect attempts while a kill waits for the gateway
STATUS_EVERY = 1.0  # seconds between status.json rewrites


class RunState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class CycleResult:
    """What one evaluation cycle saw and did."""

    at: float
    breaches: tuple[Breach, ...] = ()
    kills_started: tuple[str, ...] = ()
    lockout_cancelled: int = 0
    healthy: bool = False


@dataclass(slots=True)
class _Requests:
    """Flags set by signal handlers and read by the main loop."""

    kill: list[tuple[Action, str, str]] = field(default_factory=list)
    reload: bool = False
    stop: bool = False
    force: bool = False


class Daemon:
    def __init__(self, config: Config, config_path: str | None, components: Components) -> None:
        self.config = config
        self.config_path = config_path
        self.c = components
        self.state = RunState.STARTING
        self.shutdown_grace = SHUTDOWN_GRACE  # seconds a running kill may take to finish when stopping
        self._wake = asyncio.Event()
        self._requests = _Requests()
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
        if c.store.pending_kill() is not None and not c.gateway.is_connected():
            self._reconnect_fast_while_pending()
        if c.gateway.is_connected():
            # one full round before anything is judged: the first snapshot is complete, and orders
            # already working now are the baseline that orders-per-minute counts new ones against
            for name in POLLS:
                await self.poll(name)
        self.state = RunState.RUNNING
        if schedule:
            self._schedule_jobs()
            c.scheduler.start()
            self._request_evaluation()

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

    @property
    def endpoint(self) -> str:
        return f"{self.config.gateway.host}:{self.config.gateway.port}"

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
            request = self.c.control.take_kill_request()
            if request is not None and request.action is action:
                reason = request.reason or reason
            running = self._manual_kill
            if running is not None and not running[1].done() and _covers(running[0], action):
                self._folded += 1
                details = {"trigger": trigger, "action": action.value, "reason": reason, "n": self._folded}
                # not fsynced one by one: a burst must not stall the loop the kill runs on; the kill's
                # next record fsyncs the file, these lines included
                self.c.audit.record("kill.folded", details, durable=False)
                log.info(
                    "%s %s folded into the running manual kill (%d so far)",
                    trigger,
                    action.value,
                    self._folded,
                )
                continue
            self._folded = 0
            self.c.notifier.notify_text("critical", f"Manual kill ({action.value})", reason or trigger)
            task = self.start_kill(action, trigger, reason=reason or "manual trigger")
            self._manual_kill = (action, task)

    # ------------------------------------------------------------------ gateway
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
        if why == "read" and any(self._reads_ok_at.get(n, -1e18) <= self.kills.parked_at for n in READS):
            return False  # both reads the kill needs must have worked since it was parked
        if not self.kills.start_pending():
            return False
        log.warning("gateway usable again (%s): running the pending kill", why)
        return True

    def _reconnect_fast_while_pending(self) -> None:
        """A kill waits for the gateway: reconnect every PENDING_RECONNECT seconds, not the backoff's."""
        if self._fast_reconnect is None or self._fast_reconnect.done():
            self._fast_reconnect = asyncio.ensure_future(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        c = self.c
        while not self._requests.stop and c.store.pending_kill() is not None:
            if not c.gateway.status().connected and not self._reconnecting.locked():
                async with self._reconnecting:
                    if await c.gateway.ensure_connected() == 0.0:
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
                self.c.notifier.notify_text("critical", "Client id in use (326)", ev.message)
        elif ev.kind is EventKind.DEGRADED:
            self.c.notifier.notify_text("warning", f"Gateway lost IB's servers ({ev.code})", ev.message)
        elif ev.kind is EventKind.RESTORED:
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

    async def poll(self, name: str) -> bool:
        """One named poll under its hard timeout; failures are contained and counted."""
        c = self.c
        fn: Callable[[], Any] = getattr(c.gateway, f"poll_{name}")
        try:
            async with asyncio.timeout(self.config.polling.timeout):  # same task: nothing left unawaited
                await fn()
        except (GatewayError, OSError, TimeoutError) as exc:
            c.metrics.observe_poll(name, False, c.clock())
            log.debug("poll %s failed: %s", name, exc)
            return False
        except Exception:  # a bug in one poll must not stop the others
            c.metrics.observe_poll(name, False, c.clock())
            log.exception("poll %s raised", name)
            return False
        c.metrics.observe_poll(name, True, c.clock())
        self._polls_ok.add(name)
        if name in READS:
            self._reads_ok_at[name] = c.monotonic()
            self.resume_pending("read")
        return True

    async def poll_once(self) -> CycleResult:
        """Heartbeat, every poll once, then one evaluation: the whole watch cycle as one step."""
        await self.heartbeat_job()
        for name in POLLS:
            await self.poll(name)
        return await self.evaluate_once()

    # ------------------------------------------------------------------ evaluation
    def _request_evaluation(self) -> None:
        """Coalesce evaluation requests (data events, timer) into at most one running evaluation."""
        if self._eval_task is not None and not self._eval_task.done():
            self._eval_again = True
            return
        self._eval_task = asyncio.ensure_future(self._evaluate_loop())

    async def run_job(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """A scheduled job; one cancelled by the scheduler's shutdown is expected, not an error."""
        try:
            await fn(*args)
        except asyncio.CancelledError:
            if self.state in (RunState.STOPPING, RunState.STOPPED):
                return
            raise

    async def evaluate_job(self) -> None:
        # a coroutine job: APScheduler runs plain functions in a thread pool, away from the loop
        self._request_evaluation()

    async def _evaluate_loop(self) -> CycleResult:
        while True:
            self._eval_again = False
            result = await self.evaluate_once()
            if not self._eval_again:
                return result

    async def evaluate_once(self) -> CycleResult:
        c = self.c
        now = c.clock()
        snap = c.gateway.snapshot()
        if c.bots is not None:
            snap = dataclasses.replace(snap, bots=c.bots.statuses(snap.gateway))
        self._last_snapshot = snap
        suspended = c.schedule.suspended(self.config.quiet_windows, now)
        breaches = c.rules.evaluate(self.config.rules, snap, now, c.memory, suspended)
        started: list[str] = []
        for b in breaches:
            self._announce(b)  # queued log line and notification: microseconds, never a wait
            if b.kind is BreachKind.BREACH and b.action.is_kill and self.should_fire(b.action):
                started.append(b.rule)
                accounts = None if b.account is None else [b.account]
                reason = b.message
                if c.bots is not None and (bot_kill := c.bots.kill_scope(b)) is not None:
                    accounts, reason = bot_kill  # a silent bot's kill covers the accounts it trades
                self.start_kill(b.action, f"rule:{b.rule}", reason=reason, accounts=accounts)
        if started:
            # let the kill task put its global cancel on the wire before this cycle's bookkeeping
            # (metrics, status file) takes its turn on the loop
            await asyncio.sleep(0)
        cancelled = 0
        tripped = c.store.trading_state() is TradingState.TRIPPED
        if tripped and not started and not self.kills.tasks and snap.gateway.connected:
            lockout = c.killswitch.enforce_lockout(snap.open_orders, snap.positions)
            if self.config.kill.lockout_flatten:
                # flattening runs a whole close (orders, fills, verification): never inside a cycle
                self.kills.track(asyncio.ensure_future(lockout))
            else:  # one global cancel: quick, and the count belongs to this cycle
                cancelled = await lockout
        c.metrics.observe_snapshot(snap)
        c.metrics.observe_rule_status(c.memory.status())
        if c.bots is not None:
            c.bots.observe()
        healthy = snap.gateway.connected and snap.gateway.health.value == "healthy"
        self._after_cycle(snap, healthy)
        result = CycleResult(
            at=now,
            breaches=tuple(breaches),
            kills_started=tuple(started),
            lockout_cancelled=cancelled,
            healthy=healthy,
        )
        self.last_cycle = result
        return result

    def should_fire(self, action: Action) -> bool:
        """An armed watchdog fires; a tripped one only escalates cancel-only to close-all."""
        latch = self.c.store.latch()
        if latch.state is TradingState.ARMED:
            return True
        return action is Action.CLOSE_ALL and latch.action is Action.CANCEL_ALL

    def _announce(self, breach: Breach) -> None:
        level = logging.WARNING if breach.kind in (BreachKind.BREACH, BreachKind.UNKNOWN) else logging.INFO
        log.log(level, "rule %s %s: %s", breach.rule, breach.kind.value, breach.message)
        self.c.notifier.notify_breach(breach)

    def _after_cycle(self, snap: Snapshot, healthy: bool) -> None:
        c = self.c
        state = c.store.trading_state()
        c.metrics.set_tripped(state is TradingState.TRIPPED)
        c.metrics.set_kill_state(running=c.killswitch.busy, pending=c.store.pending_kill() is not None)
        summary = (
            f"{state.value}; gateway {snap.gateway.health.value}; "
            f"{len(snap.positions)} positions, {len(snap.open_orders)} working orders"
        )
        c.sd.status(summary)
        # READY means "watching": a snapshot built from every poll, not just a fresh connection
        if healthy and not self._ready_sent and self._polls_ok.issuperset(POLLS):
            c.sd.ready()
            self._ready_sent = True
        # WATCHDOG=1 says "this process's loop is alive", not "the gateway is up": with the gateway
        # down the daemon must keep running (alerts, the pending kill), not be restarted by systemd.
        c.sd.watchdog()
        # status.json is for `ibkr-watchdog status`: once a second is plenty, except when the
        # latch changed (evaluations run on every streamed value; each rewrite costs a rename)
        now = c.clock()
        if now - self._status_written < STATUS_EVERY and state is self._status_state:
            return
        self._status_written, self._status_state = now, state
        self._save_day_highs()
        extra = {"pid": os.getpid(), "version": __version__, "trading_state": state.value}
        with contextlib.suppress(StateError, OSError):
            c.store.write_status(status_from_snapshot(snap, now) | extra)

    def _save_day_highs(self) -> None:
        """Persist the day highs when they moved: a restart must not reset a drawdown's peak."""
        highs = self.c.memory.export_highs()
        if highs == self._saved_highs:
            return
        with contextlib.suppress(StateError):  # reported by the store; the next change retries
            self.c.store.save_baseline({"day_highs": highs})
            self._saved_highs = highs

    # ------------------------------------------------------------------ kills
    def start_kill(
        self, action: Action, trigger: str, *, reason: str = "", accounts: list[str] | None = None
    ) -> asyncio.Task[KillReport | None]:
        return self.kills.start(action, trigger, reason=reason, accounts=accounts)

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
