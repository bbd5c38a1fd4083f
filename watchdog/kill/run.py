"""Records of one kill in progress, and how each step is audited and announced."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchdog.kill.plan import CloseNeed, Key, order_label
from watchdog.model import EMPTY_MAP, Action, CloseOrderRequest, KillReport, OpenOrder, Position, Severity
from watchdog.state.audit import AuditLog

log = logging.getLogger("watchdog.kill.switch")


class KillEventKind(enum.Enum):
    TRIGGERED = "triggered"
    MERGED = "merged"
    CANCEL_SENT = "cancel_sent"
    CLOSE_SENT = "close_sent"
    VERIFIED = "verified"
    RETRY = "retry"
    REJECTED = "rejected"
    PENDING = "pending"
    INTERRUPTED = "interrupted"  # a stop cancelled the kill mid-run: kept pending, resumes at start
    ESCALATED = "escalated"
    FINISHED = "finished"
    LOCKOUT = "lockout"
    RESET = "reset"
    STATE_PROBLEM = "state_problem"


@dataclass(frozen=True, slots=True, kw_only=True)
class KillEvent:
    """Progress of a kill for notify/metrics. `report` is set on FINISHED, ESCALATED and PENDING."""

    kind: KillEventKind
    severity: Severity
    at: float
    message: str
    kill_id: str = ""
    trigger: str = ""
    action: Action | None = None
    dry_run: bool = False
    report: KillReport | None = None
    details: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAP)


@dataclass(slots=True)
class Run:
    """The mutable working state of one kill; the frozen KillReport is made from it at the end."""

    kill_id: str
    action: Action
    trigger: str
    reason: str
    scope: tuple[str, ...]  # empty = every watched account
    dry: bool
    started: float
    persist: bool  # a pending record protects it across restarts (not for lockout runs)
    attempts: int = 0
    seen: dict[tuple[int, int, int], OpenOrder] = field(default_factory=dict)  # targets seen working
    close_orders: list[CloseOrderRequest] = field(default_factory=list)
    close_order_ids: list[int | None] = field(default_factory=list)  # one per close_orders entry
    rejected: dict[int, str] = field(default_factory=dict)  # closing order id → "code text"
    remaining_orders: list[OpenOrder] = field(default_factory=list)
    remaining_positions: list[Position] = field(default_factory=list)
    final_positions: list[Position] | None = None  # the last positions read (for the lockout baseline)
    notes: list[str] = field(default_factory=list)  # escalation reasons
    foreign_keys: set[Key] = field(default_factory=set)  # standby: positions another instance works on
    cancel_sent: bool = False  # the first global cancel already went out (before the state was synced)
    live_orders: list[OpenOrder] = field(default_factory=list)  # the latest read's orders alive in scope


class Reporter:
    """Audit first (fsynced), then announce: the record exists before the next step runs.

    `on_event` is synchronous and must not block; anything it raises is logged and dropped.
    """

    def __init__(
        self, audit: AuditLog, clock: Callable[[], float], on_event: Callable[[KillEvent], None] | None
    ) -> None:
        self.audit = audit
        self._clock = clock
        self._on_event = on_event

    def step(
        self,
        run: Run,
        event: str,
        kind: KillEventKind,
        severity: Severity,
        message: str,
        details: Mapping[str, Any],
        *,
        report: KillReport | None = None,
        durable: bool = True,
    ) -> None:
        # the sentence the operator was told goes into the audit too: `report` prints it as the step's line
        recorded = details if "message" in details else {**details, "message": message}
        self.audit.record(event, recorded, kill_id=run.kill_id, durable=durable)
        log.log(logging.CRITICAL if severity is Severity.CRITICAL else logging.INFO, "%s", message)
        self.event(
            kind,
            severity,
            message,
            kill_id=run.kill_id,
            trigger=run.trigger,
            action=run.action,
            dry_run=run.dry,
            report=report,
            details=details,
        )

    def event(self, kind: KillEventKind, severity: Severity, message: str, **kw: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(KillEvent(kind=kind, severity=severity, at=self._clock(), message=message, **kw))
        except Exception:  # notify/metrics must never break a kill
            log.exception("kill event callback failed")


def pos_label(p: Position) -> str:
    return f"{p.account} {p.quantity:g} {p.contract.label} ({p.contract.sec_type}, conId {p.contract.con_id})"


def need_label(n: CloseNeed) -> str:
    return f"{n.action} {n.quantity:g} of {pos_label(n.position)} (netted {n.pending:g} pending)"


def progress(run: Run) -> dict[str, object]:
    """A running kill as `status` shows it: kill id, action, trigger, since (epoch seconds), attempt,
    and every order alive in scope at the latest read, by id with its state (`plan.order_label`)."""
    return {
        "kill_id": run.kill_id,
        "action": run.action.value,
        "trigger": run.trigger,
        "since": run.started,
        "attempt": max(run.attempts, 1),
        "dry_run": run.dry,
        "live_orders": [order_label(o) for o in run.live_orders],
    }
