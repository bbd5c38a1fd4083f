"""A notification when kill readiness changes: which accounts would not close what, and why.

Deduplicated by a signature of (account, reason) pairs with severity warning or above: a new
position with a reason already reported, a price or a count that moves, says nothing new. A closed
market and a dry run (severity info) are expected at times and never notify on their own; they are
still in the plan, the metrics and `ibkr-watchdog plan`.
"""

from __future__ import annotations

from collections.abc import Callable

from watchdog.model import Severity
from watchdog.outputs.messages import MAX_LINES, Kind, Notification, max_severity
from watchdog.readiness_model import PlanReason, Readiness

Signature = frozenset[tuple[str, PlanReason]]
PLAN_HINT = "ibkr-watchdog plan  (what a kill would send now, position by position)"


def readiness_signature(readiness: Readiness) -> Signature:
    """The (account, reason) pairs worth telling people about (severity warning or critical)."""
    return frozenset(
        (a.account, reason)
        for a in readiness.accounts
        for reason in a.problem_counts()
        if reason.severity is not Severity.INFO
    )


def format_readiness(readiness: Readiness, before: Signature) -> Notification:
    now = readiness_signature(readiness)
    if not now:
        return Notification(
            kind=Kind.READINESS,
            severity=Severity.INFO,
            title="Kill readiness restored: a kill now would close every position",
            body="Cleared: " + ", ".join(sorted(f"{a} {r.value}" for a, r in before)),
        )
    severity = max_severity(r.severity for _, r in now)
    lines: list[str] = []
    for a in readiness.accounts:
        counts = {r: n for r, n in a.problem_counts().items() if r.severity is not Severity.INFO}
        if not counts:
            continue
        summary = ", ".join(f"{r.value} ×{n}" for r, n in sorted(counts.items(), key=lambda x: x[0].value))
        lines.append(f"{a.account}: {summary}")
        lines.extend(f"  {p.detail}" for p in a.problems if p.reason in counts)
        for pos in a.positions:
            for p in pos.problems:
                if p.reason in counts:
                    lines.append(f"  {pos.contract.label} {pos.quantity:g}: {p.detail}")
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"  … and {len(lines) - MAX_LINES} more"]
    new = sorted(f"{a} {r.value}" for a, r in now - before)
    cleared = sorted(f"{a} {r.value}" for a, r in before - now)
    if new:
        lines.append("New: " + ", ".join(new))
    if cleared:
        lines.append("Cleared: " + ", ".join(cleared))
    lines.append(f"Details: {PLAN_HINT}")
    accounts = sorted({a for a, _ in now})
    return Notification(
        kind=Kind.READINESS,
        severity=severity,
        title=f"Kill readiness: a kill now would NOT close everything on {', '.join(accounts)}",
        body="\n".join(lines),
        limited=severity is not Severity.CRITICAL,
    )


class ReadinessNotices:
    """Tells people when readiness changes, once per change (the first plan only when not ready)."""

    def __init__(self, send: Callable[[Notification], object]) -> None:
        self._send = send
        self._last: Signature = frozenset()

    def observe(self, readiness: Readiness) -> bool:
        """True when a notification went out for this plan."""
        now = readiness_signature(readiness)
        if now == self._last:
            return False
        before, self._last = self._last, now
        self._send(format_readiness(readiness, before))
        return True
