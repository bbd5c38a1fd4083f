"""A notification when kill readiness changes: which accounts would not close what, and why.

Deduplicated by a signature of (account, reason) pairs with severity warning or above: a new
position with a reason already reported, a price or a count that moves, says nothing new. A closed
market and a dry run (severity info) are expected at times and never notify on their own; they are
still in the plan, the metrics and `ibkr-watchdog plan`. A gateway that is down and the stale book
it leaves behind are the gateway-down notification's (after `notifications.gateway_down_after`), as
the KillNotReady alert leaves them out too. A change is announced only once it held for
`HOLD_PLANS` consecutive plans, so a price that comes and goes between plans never flaps.
"""

from __future__ import annotations

from collections.abc import Callable

from watchdog.model import Severity
from watchdog.outputs.messages import (
    DEFAULT_CONTEXT,
    MAX_LINES,
    Kind,
    MessageContext,
    Notification,
    max_severity,
)
from watchdog.readiness_model import PlanReason, Readiness

Signature = frozenset[tuple[str, PlanReason]]
PLAN_HINT = "ibkr-watchdog plan  (what a kill would send now, position by position)"
HOLD_PLANS = 2  # consecutive plans a change must hold before it is announced
# owned by the gateway-down notification: a short restart below gateway_down_after says nothing
GATEWAY_OWNED = frozenset({PlanReason.GATEWAY_DOWN, PlanReason.DATA_STALE})


def readiness_signature(readiness: Readiness) -> Signature:
    """The (account, reason) pairs worth telling people about (severity warning or critical)."""
    return frozenset(
        (a.account, reason)
        for a in readiness.accounts
        for reason in a.problem_counts()
        if reason.severity is not Severity.INFO and reason not in GATEWAY_OWNED
    )


def _still(readiness: Readiness) -> list[str]:
    """What still would not close, per account and reason (every severity): for the "restored" text."""
    lines = []
    for a in readiness.accounts:
        for reason, n in sorted(a.problem_counts().items(), key=lambda x: x[0].value):
            if reason.account_wide:
                lines.append(f"{a.account}: {reason.value} (nothing of the account would close)")
                continue
            labels = [p.contract.label for p in a.positions if any(x.reason is reason for x in p.problems)]
            shown = ", ".join(labels[:5]) + (f", … {len(labels) - 5} more" if len(labels) > 5 else "")
            lines.append(f"{a.account}: {n} position(s) would not close ({reason.value}: {shown})")
    return lines


def format_readiness(
    readiness: Readiness, before: Signature, ctx: MessageContext = DEFAULT_CONTEXT
) -> Notification:
    now = readiness_signature(readiness)
    if not now:
        gone = "Cleared: " + ", ".join(sorted(f"{a} {r.value}" for a, r in before))
        still = _still(readiness)
        if readiness.ready:
            title = "Kill readiness restored: a kill now would close every position"
        elif not readiness.accounts:
            title, still = "Kill readiness: no warning problem left, but no account is known yet", []
        else:
            title = "Kill readiness: no warning problem left; still not everything would close"
        body = "\n".join([gone, *(["Still:", *(f"  {x}" for x in still)] if still else [])])
        return Notification(kind=Kind.READINESS, severity=Severity.INFO, title=title, body=body)
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
    # the command as it runs on this host (installed path, sudo, state dir), as the kill pages give it
    lines.append(f"Details: {ctx.command('plan')}  ({PLAN_HINT.split('(', 1)[1]}")
    accounts = sorted({a for a, _ in now})
    return Notification(
        kind=Kind.READINESS,
        severity=severity,
        title=f"Kill readiness: a kill now would NOT close everything on {', '.join(accounts)}",
        body="\n".join(lines),
        limited=severity is not Severity.CRITICAL,
    )


class ReadinessNotices:
    """Tells people when readiness changes, once per change that held for `hold` consecutive plans
    (the first plans only when not ready)."""

    def __init__(
        self,
        send: Callable[[Notification], object],
        ctx: Callable[[], MessageContext] = lambda: DEFAULT_CONTEXT,
        *,
        hold: int = HOLD_PLANS,
    ) -> None:
        self._send = send
        self._ctx = ctx
        self._hold = hold
        self._last: Signature = frozenset()  # announced
        self._candidate: Signature = frozenset()
        self._seen = 0  # consecutive plans with the candidate signature

    def observe(self, readiness: Readiness) -> bool:
        """True when a notification went out for this plan."""
        now = readiness_signature(readiness)
        if now == self._candidate:
            self._seen += 1
        else:
            self._candidate, self._seen = now, 1
        if now == self._last or self._seen < self._hold:
            return False
        before, self._last = self._last, now
        self._send(format_readiness(readiness, before, self._ctx()))
        return True
