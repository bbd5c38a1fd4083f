"""Notification texts as pure functions: what fired, value vs threshold, what was done, how to reset."""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from watchdog.model import (
    Action,
    Breach,
    BreachKind,
    CloseOrderRequest,
    Fill,
    KillOutcome,
    KillReport,
    OpenOrder,
    Position,
    Severity,
)

RESET_HINT = "ibkr-watchdog reset --reason '...'"
MAX_LINES = 20  # per list in a message; chat services truncate long bodies anyway
_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Kind(enum.Enum):
    BREACH = "breach"
    WARNING = "warning"
    UNKNOWN = "unknown"
    RECOVERED = "recovered"
    KILL = "kill"
    PENDING_KILL = "pending_kill"
    ESCALATION = "escalation"
    STARTUP = "startup"
    SHUTDOWN = "shutdown"
    RECONNECT = "reconnect"
    GATEWAY_DOWN = "gateway_down"
    RELOAD_FAILED = "reload_failed"
    RESET = "reset"
    SUMMARY = "summary"
    TEXT = "text"
    READINESS = "readiness"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One message for people. `limited` ones may be folded into a burst summary; the others never wait."""

    kind: Kind
    severity: Severity
    title: str
    body: str
    limited: bool = True


def max_severity(severities: Iterable[Severity]) -> Severity:
    return max(severities, key=_SEVERITY_RANK.__getitem__, default=Severity.INFO)


def fmt_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def fmt_duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def fmt_value(v: float | None) -> str:
    if v is None:
        return "unknown"
    if abs(v) >= 1000:
        return f"{v:,.2f}"
    return f"{v:g}"


def _where(b: Breach) -> str:
    if b.where:
        return b.where
    return b.account if b.account is not None else "all accounts"


def _what_happens(b: Breach) -> str:
    if b.kind is BreachKind.BREACH and b.action.is_kill:
        return f"Action: {b.action.value} — the kill switch is firing; a kill report follows."
    if b.kind is BreachKind.UNKNOWN:
        return "Action: none (the watchdog never kills on missing data). Check the gateway and data feed."
    if b.kind is BreachKind.WARNING:
        return f"Action: none yet; at the threshold the rule will {b.action.value}."
    return "Action: alert only."


def format_breach(b: Breach, *, now: float, reminder: bool = False) -> Notification:
    kind = {BreachKind.WARNING: Kind.WARNING, BreachKind.UNKNOWN: Kind.UNKNOWN}.get(b.kind, Kind.BREACH)
    label = {Kind.BREACH: "BREACH", Kind.WARNING: "WARNING", Kind.UNKNOWN: "UNKNOWN"}[kind]
    prefix = "Reminder: " if reminder else ""
    title = f"{prefix}[{label}] {b.rule} on {_where(b)}"
    lines = [
        f"Rule {b.rule} ({b.metric}) on {_where(b)}: "
        f"value {fmt_value(b.value)} vs threshold {fmt_value(b.threshold)}.",
    ]
    if b.message:
        lines.append(b.message)
    lines.append(_what_happens(b))
    lines.append(f"Since {fmt_time(b.since)} ({fmt_duration(now - b.since)} ago).")
    if reminder:
        lines.append("Still ongoing; you will be reminded until it recovers.")
    return Notification(kind=kind, severity=b.severity, title=title, body="\n".join(lines))


def format_recovered(b: Breach, *, since: float, now: float) -> Notification:
    title = f"[RECOVERED] {b.rule} on {_where(b)}"
    lines = [
        f"Rule {b.rule} ({b.metric}) on {_where(b)}: "
        f"value {fmt_value(b.value)} vs threshold {fmt_value(b.threshold)}.",
        *([b.message] if b.message else []),  # the rules engine says what cleared (e.g. "data is back")
        f"The alert lasted {fmt_duration(now - since)} (since {fmt_time(since)}).",
    ]
    body = "\n".join(lines)
    return Notification(kind=Kind.RECOVERED, severity=Severity.INFO, title=title, body=body)


def _order_line(o: OpenOrder) -> str:
    price = f" {o.order_type}" + (f" {o.lmt_price:g}" if o.lmt_price is not None else "")
    qty = o.remaining or o.total_quantity
    return (
        f"  - {o.account} {o.action} {qty:g} {o.contract.label}{price} "
        f"(order {o.order_id}, client {o.client_id}{', ' + o.status if o.status else ''})"
    )


def _close_line(c: CloseOrderRequest) -> str:
    price = f" {c.limit_price:g}" if c.limit_price is not None else ""
    rth = " outside RTH" if c.outside_rth else ""
    where = f" via {c.exchange}" if c.exchange else ""
    return f"  - {c.account} {c.action} {c.quantity:g} {c.contract.label} {c.order_type}{price}{rth}{where}"


def _fill_line(f: Fill) -> str:
    return f"  - {f.account} {f.side} {f.shares:g} {f.contract.label} @ {f.price:g} ({fmt_time(f.time)})"


def _position_line(p: Position) -> str:
    return f"  - {p.account} {p.quantity:+g} {p.contract.label}"


def _listing(heading: str, lines: Sequence[str], empty: str) -> list[str]:
    if not lines:
        return [f"{heading}: {empty}"]
    shown = list(lines[:MAX_LINES])
    if len(lines) > MAX_LINES:
        shown.append(f"  … and {len(lines) - MAX_LINES} more (see the audit log)")
    return [f"{heading} ({len(lines)}):", *shown]


_OUTCOME_TEXT = {
    KillOutcome.FLAT: "verified: no working orders{flat} left",
    KillOutcome.ESCALATED: "ESCALATED: something is still open after every attempt — act by hand now",
    KillOutcome.PENDING: "PENDING: the gateway is down; the kill runs the moment it is back",
    KillOutcome.DRY_RUN: "dry run: planned and reported, no order was sent",
}


def format_kill(report: KillReport) -> Notification:
    """The kill report: trigger, what was cancelled and closed, what is still open, how to reset."""
    r = report
    accounts = ", ".join(r.accounts) or "all accounts"
    label = {KillOutcome.FLAT: "KILL", KillOutcome.ESCALATED: "KILL ESCALATED"}.get(r.outcome, "KILL")
    if r.outcome is KillOutcome.PENDING:
        label = "KILL PENDING"
    elif r.outcome is KillOutcome.DRY_RUN:
        label = "KILL (dry run)"
    title = f"[{label}] {r.action.value} by {r.trigger} on {accounts}"
    what = (
        "cancel every working order, then close every position"
        if r.action is Action.CLOSE_ALL
        else "cancel every working order"
    )
    outcome = _OUTCOME_TEXT[r.outcome].format(
        flat=" and no positions" if r.action is Action.CLOSE_ALL else ""
    )
    lines = [
        f"What fired: {r.trigger}" + (f" — {r.reason}" if r.reason else ""),
        f"What the watchdog did: {r.action.value} ({what}) in {r.duration:.1f}s, "
        f"{r.attempts} attempt{'s' if r.attempts != 1 else ''}; kill {r.kill_id}.",
        f"Outcome: {outcome}.",
    ]
    lines += _listing("Cancelled orders", [_order_line(o) for o in r.cancelled_orders], "none")
    if r.action is Action.CLOSE_ALL:
        lines += _listing("Closing orders", [_close_line(c) for c in r.close_orders], "none needed")
        if r.close_fills:
            lines += _listing("Closing fills", [_fill_line(f) for f in r.close_fills], "none")
    still = [_order_line(o) for o in r.remaining_orders] + [_position_line(p) for p in r.remaining_positions]
    lines += _listing("Still open", still, "nothing")
    if r.outcome is KillOutcome.DRY_RUN:
        lines.append("Dry run: the account was not touched.")
    else:
        lines.append(
            f"The watchdog is TRIPPED and cancels new orders until a person re-arms it: {RESET_HINT}"
        )
    kind = Kind.ESCALATION if r.outcome is KillOutcome.ESCALATED else Kind.KILL
    if r.outcome is KillOutcome.PENDING:
        kind = Kind.PENDING_KILL
    return Notification(
        kind=kind, severity=Severity.CRITICAL, title=title, body="\n".join(lines), limited=False
    )


def format_pending_kill(
    action: Action, trigger: str, accounts: Sequence[str], reason: str = ""
) -> Notification:
    title = f"[KILL PENDING] {action.value} by {trigger}: gateway down"
    body = (
        f"A kill ({action.value}) for {', '.join(accounts) or 'all accounts'} was triggered by {trigger}"
        + (f" ({reason})" if reason else "")
        + " while the gateway is unreachable. It is persisted and runs the moment the connection is back.\n"
        "Meanwhile nothing is cancelled: if you can reach the account another way (TWS, mobile), act there."
    )
    return Notification(
        kind=Kind.PENDING_KILL, severity=Severity.CRITICAL, title=title, body=body, limited=False
    )


def format_startup(
    version: str, accounts: Sequence[str], state: str, *, dry_run: bool = False
) -> Notification:
    body = (
        f"ibkr-watchdog {version} started; watching {', '.join(accounts) or 'every managed account'}; "
        f"trading state {state}" + ("; DRY RUN: kills are planned but no order is sent." if dry_run else ".")
    )
    return Notification(kind=Kind.STARTUP, severity=Severity.INFO, title="ibkr-watchdog started", body=body)


def format_shutdown(reason: str, state: str) -> Notification:
    body = (
        f"ibkr-watchdog is stopping ({reason}); trading state {state}. Nothing is watched until it is back."
    )
    return Notification(
        kind=Kind.SHUTDOWN, severity=Severity.WARNING, title="ibkr-watchdog stopping", body=body
    )


def format_reconnect(endpoint: str, downtime: float | None) -> Notification:
    after = f" after {fmt_duration(downtime)}" if downtime is not None else ""
    body = f"Connected to the gateway at {endpoint} again{after}; state re-requested, watching resumes."
    return Notification(kind=Kind.RECONNECT, severity=Severity.INFO, title="Gateway reconnected", body=body)


def format_gateway_down(endpoint: str, down_since: float, now: float, last_error: str = "") -> Notification:
    body = (
        f"No answer from the gateway at {endpoint} for {fmt_duration(now - down_since)} "
        f"(since {fmt_time(down_since)})" + (f": {last_error}" if last_error else "") + ".\n"
        "The watchdog is blind and cannot kill until it is back; a triggered kill is kept pending. "
        "Check IB Gateway / TWS, the tunnel, and the daily restart window."
    )
    return Notification(
        kind=Kind.GATEWAY_DOWN, severity=Severity.CRITICAL, title="Gateway down", body=body, limited=False
    )


def format_reload_failure(problems: Sequence[str]) -> Notification:
    shown = _listing("Problems", [f"  - {p}" for p in problems], "none reported")
    body = "\n".join(["The new rules.yaml was rejected; the running config is kept.", *shown])
    body += "\nFix the file, check it with `ibkr-watchdog check FILE`, then reload (systemctl reload)."
    return Notification(
        kind=Kind.RELOAD_FAILED, severity=Severity.WARNING, title="Config reload failed", body=body
    )


def format_reset(reason: str, by: str = "") -> Notification:
    who = f" by {by}" if by else ""
    body = f"The watchdog was re-armed{who}: {reason}. Rules can fire kills again; the lockout is lifted."
    return Notification(kind=Kind.RESET, severity=Severity.WARNING, title="Watchdog re-armed", body=body)


def format_summary(held: Sequence[Notification], window: float) -> Notification:
    """One message standing in for a burst: counts by severity and the first titles."""
    counts = {s: sum(1 for n in held if n.severity is s) for s in Severity}
    by_sev = ", ".join(f"{counts[s]} {s.value}" for s in reversed(Severity) if counts[s])
    lines = [f"{len(held)} more notifications within {fmt_duration(window)} ({by_sev}):"]
    lines += [f"  - [{n.severity.value}] {n.title}" for n in held[:MAX_LINES]]
    if len(held) > MAX_LINES:
        lines.append(f"  … and {len(held) - MAX_LINES} more (see the log)")
    return Notification(
        kind=Kind.SUMMARY,
        severity=max_severity(n.severity for n in held),
        title=f"{len(held)} notifications summarised",
        body="\n".join(lines),
        limited=False,
    )


def format_text(severity: Severity, title: str, body: str) -> Notification:
    # Critical free-text events (kill failed, pending kill at start) must never wait behind a burst.
    return Notification(
        kind=Kind.TEXT, severity=severity, title=title, body=body, limited=severity is not Severity.CRITICAL
    )
