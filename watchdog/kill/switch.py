"""The kill switch: one kill at a time, latch and lockout, pending kills that survive restarts.

A kill is audited (fsynced) before each step and announced through a synchronous `on_event`
callback, so it never waits on notifications or metrics. The orders themselves go out through
`killexec.KillExecutor`; quantities come from `killplan.plan_closes` (never over-close).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from watchdog.config.schema import KillConfig
from watchdog.errors import ControlError, GatewayError, GatewayUnavailable, StateError
from watchdog.kill.broker import Broker
from watchdog.kill.executor import KillExecutor
from watchdog.kill.handoff import hand_off
from watchdog.kill.latch import STRENGTH, pending_record, reset_latch, tripped_latch
from watchdog.kill.lockout import Lockout
from watchdog.kill.plan import order_label
from watchdog.kill.run import KillEvent, KillEventKind, Reporter, Run, progress
from watchdog.model import (
    Action,
    Fill,
    KillOutcome,
    KillReport,
    OpenOrder,
    Position,
    Severity,
    TradingState,
    order_key,
)
from watchdog.state.audit import AuditLog
from watchdog.state.store import StateStore, position_key

__all__ = ["KillEvent", "KillEventKind", "KillSwitch", "reset_latch"]

log = logging.getLogger("watchdog.kill.switch")
_STRENGTH = STRENGTH


class KillSwitch:
    """See docs/killswitch.md. `config` may be replaced on reload; it is read at each step."""

    def __init__(
        self,
        broker: Broker,
        config: KillConfig,
        store: StateStore,
        audit: AuditLog,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_event: Callable[[KillEvent], None] | None = None,
        accounts: Sequence[str] = (),
        client_id: int | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self._clock = clock
        self._r = Reporter(audit, clock, on_event)
        self._x = KillExecutor(
            broker, config, self._r, clock=clock, sleep=sleep, accounts=accounts, client_id=client_id
        )
        self._lock = asyncio.Lock()
        self._finished = 0
        self._last: tuple[KillReport, tuple[str, ...]] | None = None
        self._lockout = Lockout(self)
        self._damage_audited: set[str] = set()
        self._current: Run | None = None  # the kill running now (for `progress`)

    def audit_damage(self) -> None:
        """Read the latch and the pending kill; audit and announce (critical) every damaged state file
        the store found that is not recorded yet. The daemon calls it at start; every entry point too."""
        self.store.latch(), self.store.pending_kill()
        for name, message in list(self.store.damaged.items()):
            if name in self._damage_audited:
                continue
            self._damage_audited.add(name)
            self.audit.record("state.corrupted", {"file": name, "problem": message})
            self._r.event(KillEventKind.STATE_PROBLEM, Severity.CRITICAL, message)

    @property
    def config(self) -> KillConfig:
        return self._x.config

    @config.setter
    def config(self, value: KillConfig) -> None:
        self._x.config = value

    @property
    def broker(self) -> Broker:
        return self._x.broker

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def running_kill_id(self) -> str | None:
        """The id of the kill running now (a folded manual trigger is recorded under it); None if none."""
        run = self._current
        return run.kill_id if run is not None and self._lock.locked() else None

    def progress(self) -> dict[str, object] | None:
        """The running kill for `status` (status.json "kill", `run.progress`); None when none runs."""
        run = self._current
        return progress(run) if run is not None and self._lock.locked() else None

    # ------------------------------------------------------------------ entry points
    async def kill(
        self,
        action: Action,
        trigger: str,
        *,
        reason: str = "",
        accounts: Sequence[str] | None = None,
        known_orders: Sequence[OpenOrder] = (),
    ) -> KillReport:
        """Plan → execute → verify → retry → escalate. Concurrent calls queue behind the running kill;
        one that a kill finishing meanwhile already covers (same or stronger action, same or wider
        scope) gets that kill's report instead of a second run, so close plans never overlap.

        `known_orders` (the caller's latest snapshot) only feeds the report's cancelled list: the
        global cancel goes out before any read, so orders it removes at once are otherwise unseen."""
        if not action.is_kill:
            raise ValueError(f"kill needs cancel_all or close_all, got: {action.value}")
        self.audit_damage()
        scope = tuple(sorted(set(accounts))) if accounts else ()
        seen = self._finished
        try:
            await self._lock.acquire()
        except asyncio.CancelledError:  # stopped while queued behind another kill: keep it for the start
            self._keep_queued(action, trigger, reason, scope)
            raise
        try:
            if self._finished > seen and self._last is not None:
                last, last_scope = self._last
                wide = not last_scope or (bool(scope) and set(scope) <= set(last_scope))
                if (
                    _STRENGTH[last.action] >= _STRENGTH[action]
                    and wide
                    and last.outcome is not KillOutcome.PENDING
                ):
                    self.audit.record(
                        "kill.merged", {"trigger": trigger, "reason": reason}, kill_id=last.kill_id
                    )
                    msg = f"{trigger} merged into kill {last.kill_id} ({last.trigger})"
                    self._r.event(KillEventKind.MERGED, Severity.INFO, msg, kill_id=last.kill_id)
                    return last
            dry = self.config.dry_run
            return await self._run(action, trigger, reason, scope, kill_id=None, dry=dry, known=known_orders)
        finally:
            self._current = None
            self._lock.release()

    def _keep_queued(self, action: Action, trigger: str, reason: str, scope: tuple[str, ...]) -> None:
        """A kill cancelled before it could start (a stop): folded into the pending record, audited."""
        if self.config.dry_run:
            return
        old = self.store.pending_kill()
        if old is not None:
            action = max(action, old.action, key=_STRENGTH.__getitem__)
            scope = () if not scope or not old.accounts else tuple(sorted({*scope, *old.accounts}))
            trigger = f"{old.trigger} + {trigger}"
        kill_id = old.kill_id if old is not None else uuid.uuid4().hex[:12]
        run = self._new_run(action, trigger, reason, scope, False, kill_id)
        run.started = old.created_at if old is not None else run.started
        self._save_pending(run, interrupted="stop")
        msg = f"kill {action.value} from {trigger} not started: the watchdog is stopping; it runs at start"
        self._r.step(
            run, "kill.interrupted", KillEventKind.INTERRUPTED, Severity.CRITICAL, msg, {"queued": True}
        )

    async def run_pending(self) -> KillReport | None:
        """Run the persisted pending kill, if there is one and the gateway is up (on connect/reconnect)."""
        self.audit_damage()
        async with self._lock:
            p = self.store.pending_kill()
            if p is None or not self.broker.is_connected():
                return None
            dry = self.config.dry_run or p.dry_run
            try:
                return await self._run(p.action, p.trigger, p.reason, p.accounts, kill_id=p.kill_id, dry=dry)
            finally:
                self._current = None

    async def enforce_lockout(
        self, snapshot_open_orders: Sequence[OpenOrder], positions: Sequence[Position]
    ) -> int:
        """Each poll while TRIPPED: cancel new risk-increasing orders (`kill.lockout`); returns how many."""
        self.audit_damage()
        return await self._lockout.enforce(snapshot_open_orders, positions)

    def reset(self, reason: str, who: str, *, discard_pending: bool = False, request_id: str = "") -> None:
        """Re-arm (audited, announced). ControlError while a kill runs, or while one is pending unless
        `discard_pending` (the operator declares it safe; the discarded kill is audited)."""
        if self._lock.locked():
            raise ControlError("a kill is running; reset after it has finished")
        old = self.store.latch()
        reset_latch(
            self.store, self.audit, reason=reason, who=who, clock=self._clock,
            discard_pending=discard_pending, request_id=request_id,
        )  # fmt: skip
        msg = f"re-armed by {who}: {reason}"
        self._r.event(KillEventKind.RESET, Severity.WARNING, msg, kill_id=old.kill_id, details={"who": who})

    def rearm(self, reason: str = "session boundary") -> bool:
        """Automatic re-arm at a session boundary; skipped (audited) while a kill runs or is pending."""
        if self.store.trading_state() is not TradingState.TRIPPED:
            return False
        if self._lock.locked() or self.store.pending_kill() is not None:
            self.audit.record("rearm.skipped", {"reason": reason, "why": "a kill is running or pending"})
            return False
        self.reset(reason, who="schedule")
        return True

    # ------------------------------------------------------------------ one kill
    def _new_run(
        self, action: Action, trigger: str, reason: str, scope: tuple[str, ...], dry: bool, kill_id: str = ""
    ) -> Run:
        kid = kill_id or uuid.uuid4().hex[:12]
        return Run(kid, action, trigger, reason, scope, dry, started=self._clock(), persist=True)

    async def _run(
        self,
        action: Action,
        trigger: str,
        reason: str,
        scope: tuple[str, ...],
        *,
        kill_id: str | None,
        dry: bool,
        known: Sequence[OpenOrder] = (),
    ) -> KillReport:
        pending = self.store.pending_kill()
        if pending is not None and pending.kill_id != kill_id:
            # a kill that could not run yet folds into this one, so clearing it at the end loses nothing
            if _STRENGTH[pending.action] > _STRENGTH[action]:
                action = pending.action
            scope = () if not scope or not pending.accounts else tuple(sorted({*scope, *pending.accounts}))
            trigger = f"{trigger} + pending {pending.trigger}"
            kill_id = pending.kill_id
        resumed = pending is not None and pending.kill_id == kill_id
        run = self._new_run(action, trigger, reason, scope, dry, kill_id or "")
        self._current = run
        run.seen.update((order_key(o), o) for o in self._x.targets(run, known, include_ours=False))
        msg = f"kill {action.value} from {trigger}" + (" (dry run)" if dry else "")
        if resumed and pending is not None:
            why = "a stop" if pending.interrupted == "stop" else "an unusable gateway"
            msg = f"kill {run.kill_id} resumed: {action.value} from {trigger} (was held up by {why})"
        details: dict[str, object] = {"action": action.value, "trigger": trigger, "reason": reason}
        details |= {"accounts": list(scope), "resumed": resumed}
        # Trigger record, latch and pending kill are written before anything is sent, so a crash from
        # here on resumes the kill; their fsyncs wait until the first global cancel is on the wire. That
        # message is idempotent and can only remove risk, and a disk's fsync latency (milliseconds to
        # a hundred) is too long to hold it back. Nothing that trades goes out before the fsyncs.
        self._r.step(
            run,
            "kill.triggered",
            KillEventKind.TRIGGERED,
            Severity.CRITICAL,
            msg,
            details | {"dry_run": dry},
            durable=False,
        )
        if not dry:
            self._trip(run, durable=False)
            self._save_pending(run, durable=False)
        try:
            try:
                if not self.broker.is_connected():
                    raise GatewayUnavailable("gateway not connected")
                if not dry:
                    await self._x.global_cancel(run, "attempt 1")
                    run.cancel_sent = True
            finally:
                self.audit.sync()
                if not dry:
                    self._state_call(run, self.store.sync)
            await self._x.execute(run, {})
        except (GatewayError, OSError, TimeoutError) as exc:
            return self._go_pending(run, exc)
        except asyncio.CancelledError:
            self._interrupted(run)
            raise
        except Exception as exc:  # a bug must still end in a loud, recorded escalation
            log.exception("kill %s failed unexpectedly", run.kill_id)
            run.notes.append(f"internal error: {exc!r}")
        if not run.dry and (run.remaining_orders or run.remaining_positions or run.notes):
            try:
                await self._hand_off(run)
            except asyncio.CancelledError:
                self._interrupted(run)
                raise
        return self._finish(run, save_last=True)

    def _interrupted(self, run: Run) -> None:
        """A stop cancelled the kill mid-run: it stays pending on disk (marked), audited, announced."""
        if not run.dry:
            self._save_pending(run, interrupted="stop")
        msg = f"kill {run.kill_id} ({run.action.value} from {run.trigger}) interrupted by a stop" + (
            "" if run.dry else "; it stays pending and resumes at start"
        )
        details = {"attempts": run.attempts, "close_orders": len(run.close_orders), "dry_run": run.dry}
        self._r.step(run, "kill.interrupted", KillEventKind.INTERRUPTED, Severity.CRITICAL, msg, details)

    async def _hand_off(self, run: Run) -> None:
        """Escalating: our own orders go first (verified), then everything still alive is listed."""
        try:
            run.remaining_orders = await hand_off(self._x, run)
        except (GatewayError, OSError, TimeoutError) as exc:
            run.notes.append(f"hand-off incomplete ({exc}): orders of ours may still be working")
        except Exception as exc:
            log.exception("kill %s: hand-off failed unexpectedly", run.kill_id)
            run.notes.append(f"hand-off failed: {exc!r}; orders of ours may still be working")

    def _finish(self, run: Run, *, save_last: bool) -> KillReport:
        if run.dry:
            outcome = KillOutcome.DRY_RUN
        elif run.remaining_orders or run.remaining_positions or run.notes:
            outcome = KillOutcome.ESCALATED
        else:
            outcome = KillOutcome.FLAT
        problems = [f"order still working: {order_label(o)}" for o in run.remaining_orders] + run.notes
        left = {order_key(o) for o in run.remaining_orders}
        escalated = outcome is KillOutcome.ESCALATED
        report = replace(
            self._report(run, outcome, "; ".join(problems) if escalated else run.reason),
            cancelled_orders=tuple(o for k, o in run.seen.items() if k not in left),
            remaining_orders=tuple(run.remaining_orders),
            remaining_positions=tuple(run.remaining_positions),
            trigger_reason=run.reason,
        )
        if not run.dry:
            self._update_baseline(run)
        pending = self.store.pending_kill()  # a dry run parked by an outage has a record too: it ran now
        if run.persist and pending is not None and pending.kill_id == run.kill_id:
            self._state_call(run, self.store.clear_pending)
        if save_last:
            self._state_call(run, lambda: self.store.save_last_kill(report))
            self._finished += 1
            self._last = (report, run.scope)
        msg = f"kill {run.kill_id} {outcome.value}" + (f": {report.reason}" if escalated else "")
        details = {"outcome": outcome.value, "attempts": run.attempts, "problems": problems}
        details |= {"cancelled": len(report.cancelled_orders), "close_orders": len(run.close_orders)}
        if run.action is Action.CANCEL_ALL and run.final_positions is not None:
            in_scope = self._x.in_scope(run.scope)  # a cancel-only kill leaves these open, by design
            details["positions_open"] = len(
                [p for p in run.final_positions if p.quantity and in_scope(p.account)]
            )
        if escalated:
            self._r.step(
                run, "kill.escalated", KillEventKind.ESCALATED, Severity.CRITICAL, msg, details, report=report
            )
        else:
            self._r.step(
                run, "kill.finished", KillEventKind.FINISHED, Severity.WARNING, msg, details, report=report
            )
        return report

    def _go_pending(self, run: Run, exc: BaseException) -> KillReport:
        if run.persist:
            self._save_pending(run)
        reason = f"gateway unavailable ({exc}); the kill runs as soon as it is back"
        report = self._report(run, KillOutcome.PENDING, reason)
        details = {"error": str(exc)}
        step = self._r.step
        step(run, "kill.pending", KillEventKind.PENDING, Severity.CRITICAL, reason, details, report=report)
        return report

    def note_execution(self, fill: Fill) -> bool:
        """An execution the gateway heard: `close.fill` under its kill's id if it filled one of our
        closing orders, also after that kill ended (`kill.fills`). Never raises; True when recorded."""
        return self._x.fills.note(fill, durable=not self.busy)  # during a kill its next step syncs

    def _report(self, run: Run, outcome: KillOutcome, reason: str) -> KillReport:
        """What every report of a run says: who, what, when, attempts, the closing orders and fills."""
        if not run.dry:
            self._x.record_fills(run)
        return KillReport(
            kill_id=run.kill_id,
            trigger=run.trigger,
            action=run.action,
            accounts=run.scope or self._x.watched,
            started=run.started,
            finished=self._clock(),
            outcome=outcome,
            dry_run=run.dry,
            attempts=run.attempts,
            close_orders=tuple(run.close_orders),
            close_order_ids=tuple(run.close_order_ids),
            rejected=dict(run.rejected),
            reason=reason,
            close_fills=self._x.fills.of_kill(run.kill_id),
            trigger_reason=run.reason,
        )

    # ------------------------------------------------------------------ state
    def _trip(self, run: Run, *, durable: bool = True) -> None:
        latch = tripped_latch(self.store.latch(), run, self._clock())
        self._state_call(run, lambda: self.store.save_latch(latch, durable=durable))

    def _update_baseline(self, run: Run) -> None:
        """Remember what the lockout keeps: the positions in scope at the end of the kill."""
        latch = self.store.latch()
        if run.final_positions is None or latch.state is not TradingState.TRIPPED:
            return
        in_scope = self._x.in_scope(run.scope)
        keep = {k: v for k, v in latch.baseline.items() if not in_scope(k.rpartition("|")[0])}
        keep |= {position_key(*p.key): p.quantity for p in run.final_positions if in_scope(p.account)}
        new = replace(latch, baseline=keep, baseline_known=True)
        self._state_call(run, lambda: self.store.save_latch(new))

    def _save_pending(self, run: Run, *, durable: bool = True, interrupted: str = "") -> None:
        p = pending_record(run, interrupted)
        self._state_call(run, lambda: self.store.save_pending(p, durable=durable))

    def _state_call(self, run: Run, fn: Callable[[], None]) -> None:
        """State writes never stop a kill; a failure is recorded and announced as critical."""
        try:
            fn()
        except StateError as exc:
            details = {"error": str(exc)}
            self._r.step(
                run, "state.error", KillEventKind.STATE_PROBLEM, Severity.CRITICAL, str(exc), details
            )
