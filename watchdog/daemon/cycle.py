"""The daemon's watch cycle: polls under hard timeouts, evaluation, breaches to kills, the lockout step.

A mixin of `lifecycle.Daemon` (it owns the state these methods use). The body of one cycle is public
(`poll_once()`, `evaluate_once()`), so tests drive it directly instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchdog import __version__
from watchdog.config.schema import Config
from watchdog.daemon.kill_tasks import KillTasks
from watchdog.daemon.readiness_job import ReadinessRunner
from watchdog.daemon.wiring import Components
from watchdog.errors import GatewayError, StateError
from watchdog.model import Action, Breach, BreachKind, KillReport, Snapshot, TradingState
from watchdog.rules.evaluate import AllRules
from watchdog.state.book import BookWriter
from watchdog.state.store import status_from_snapshot

log = logging.getLogger("watchdog.daemon.lifecycle")

POLLS = ("pnl", "account_summary", "positions", "orders", "executions")
# round trips that prove account data flows again (a routine positions poll reads ib_async's streamed
# copy, which answers even while the gateway has lost IB's servers): both good = usable again
READS = ("account_summary", "orders")
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
class Requests:
    """Flags set by signal handlers and read by the main loop."""

    kill: list[tuple[Action, str, str]] = field(default_factory=list)
    reload: bool = False
    stop: bool = False
    force: bool = False


class Cycle:
    """Polls and evaluation (mixed into `lifecycle.Daemon`, which sets every attribute below)."""

    c: Components
    config: Config
    state: RunState
    kills: KillTasks
    readiness: ReadinessRunner
    last_cycle: CycleResult | None
    _requests: Requests
    _eval_task: asyncio.Task[CycleResult] | None
    _eval_again: bool
    _ready_sent: bool
    _polls_ok: set[str]
    _reads_ok_at: dict[str, float]
    _last_snapshot: Snapshot | None
    _status_written: float
    _saved_highs: list[dict[str, object]]
    _book: BookWriter
    _status_state: TradingState | None

    if TYPE_CHECKING:  # provided by GatewayWatch (a stub here would shadow it in the MRO)

        async def heartbeat_job(self) -> None: ...
        def resume_pending(self, why: str) -> bool: ...

    def start_kill(
        self, action: Action, trigger: str, *, reason: str = "", accounts: list[str] | None = None
    ) -> asyncio.Task[KillReport | None]:
        return self.kills.start(action, trigger, reason=reason, accounts=accounts)

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
        if name == "account_summary":
            c.notifier.data_flowing()  # ends an outage of IB's servers a new connection never reported
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

    def request_evaluation(self) -> None:
        """Evaluate as soon as the loop is free (a bot's deadline passed, a flood's hold ended)."""
        self._request_evaluation()

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

    async def readiness_job(self) -> None:
        """`kill.readiness_interval`: plan a close_all against the live book, never beside a running kill."""
        await self.readiness.run_once(self.config)

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
        c.notifier.set_quiet(None if isinstance(suspended, AllRules) else suspended)
        breaches = c.rules.evaluate(self.config.rules, snap, now, c.memory, suspended)
        if c.bots is not None:
            breaches = [c.bots.labelled(b) for b in breaches]
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
        self.readiness.after_cycle(snap, self.config)
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
        extra["kill"] = c.killswitch.progress()  # a running kill, for `status` (None: none runs)
        with contextlib.suppress(StateError, OSError):
            c.store.write_status(status_from_snapshot(snap, now) | extra)
        complete = snap.positions_as_of is not None and snap.orders_as_of is not None
        if complete and snap.gateway.connected and not self.kills.running:  # never in a kill's way
            self._book.save(snap, now)  # only a complete book replaces the last one

    def _save_day_highs(self) -> None:
        """Persist the day highs when they moved: a restart must not reset a drawdown's peak."""
        highs = self.c.memory.export_highs()
        if highs == self._saved_highs:
            return
        with contextlib.suppress(StateError):  # reported by the store; the next change retries
            self.c.store.save_baseline({"day_highs": highs})
            self._saved_highs = highs
