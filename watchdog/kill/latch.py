"""The latch and pending-kill records a kill writes, and the re-arm (`reset_latch`).

Pure record building (`tripped_latch`, `pending_record`) plus the one place that re-arms on disk,
shared by the daemon (`KillSwitch.reset`) and by `ibkr-watchdog reset` with no daemon running.
"""

from __future__ import annotations

from collections.abc import Callable

from watchdog.errors import ControlError
from watchdog.kill.run import Run
from watchdog.model import Action, TradingState
from watchdog.state.audit import AuditLog
from watchdog.state.store import Latch, PendingKill, StateStore

STRENGTH = {Action.ALERT: 0, Action.CANCEL_ALL: 1, Action.CLOSE_ALL: 2}


def tripped_latch(old: Latch, run: Run, now: float) -> Latch:
    """The latch after `run` trips it: the strongest action since the trip, the union of the scopes
    (empty = every watched account), the trip time and the lockout baseline of an earlier trip kept."""
    tripped = old.state is TradingState.TRIPPED
    action = run.action
    if tripped and old.action is not None and STRENGTH[old.action] > STRENGTH[action]:
        action = old.action
    if not run.scope or (tripped and not old.accounts):
        accounts: tuple[str, ...] = ()  # every watched account
    else:
        accounts = tuple(sorted({*run.scope, *(old.accounts if tripped else ())}))
    return Latch(
        state=TradingState.TRIPPED,
        action=action,
        trigger=run.trigger,
        reason=run.reason,
        kill_id=run.kill_id,
        tripped_at=old.tripped_at if tripped else now,
        accounts=accounts,
        baseline=old.baseline if tripped else {},
        baseline_known=old.baseline_known and tripped,
        changed_at=now,
        changed_by=run.trigger,
    )


def pending_record(run: Run, interrupted: str = "") -> PendingKill:
    """What must still run if this kill cannot finish (`interrupted="stop"`: a stop cut it short)."""
    return PendingKill(
        kill_id=run.kill_id,
        action=run.action,
        trigger=run.trigger,
        reason=run.reason,
        accounts=run.scope,
        created_at=run.started,
        dry_run=run.dry,
        interrupted=interrupted,
    )


def reset_latch(
    store: StateStore,
    audit: AuditLog,
    *,
    reason: str,
    who: str,
    clock: Callable[[], float],
    discard_pending: bool = False,
    request_id: str = "",
) -> Latch:
    """Re-arm on disk (also `ibkr-watchdog reset` with no daemon running). StateError if not persisted;
    ControlError when a kill is pending and `discard_pending` is not set (a reset must never silently
    drop a kill that has not run: the positions would stay open)."""
    old = store.latch()
    pending = store.pending_kill()
    if pending is not None:
        if not discard_pending:
            raise ControlError(
                f"kill {pending.kill_id} ({pending.action.value} from {pending.trigger}) is pending and has "
                "not run; restore the gateway so it runs, or reset with --discard-pending"
            )
        details = {"by": who, "reason": reason, "pending": pending, "request_id": request_id}
        audit.record("pending.discarded", details, kill_id=pending.kill_id)
        store.clear_pending()
    latch = Latch(state=TradingState.ARMED, reason=reason, changed_at=clock(), changed_by=who)
    store.save_latch(latch)
    details = {"who": who, "reason": reason, "was": old.state.value, "trigger": old.trigger}
    audit.record("reset", details | {"request_id": request_id}, kill_id=old.kill_id or None)
    return latch
