"""Notification texts as pure functions, written for a phone at 3 a.m.

Each says what fired, what the watchdog did, what is still open (with order ids), and the exact
next command — one that works on an installed host (`MessageContext`: the installed executable and
the state dir, run with sudo). Times are absolute (UTC), values carry their unit. The notifier
puts the host/instance (and DRY RUN) in front of every title.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from watchdog.config.describe import format_value
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

RESET_HINT = "ibkr-watchdog reset --reason '...'"  # the bare form; messages use MessageContext
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
    # also delivered to the targets that take any of these severities: an outage's recovery goes to
    # every route that heard of the outage (the chat got the 1100 notice, the pager the page)
    routes: frozenset[Severity] = frozenset()


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What the exact next command needs: the executable as installed, the state dir, the currency."""

    exe: str = "ibkr-watchdog"
    state_dir: str = ""
    currency: str = "USD"

    def command(self, args: str) -> str:
        where = f" --state-dir {self.state_dir}" if self.state_dir else ""
        sudo = "sudo " if self.exe.startswith("/") else ""
        verb, _, rest = args.partition(" ")
        return f"{sudo}{self.exe} {verb}{where}{' ' + rest if rest else ''}"

    @property
    def reset(self) -> str:
        return self.command("reset --reason '<why it is safe to trade again>'")

    def report(self, kill_id: str) -> str:
        return self.command(f"report {kill_id}")

    @property
    def status(self) -> str:
        return self.command("status")


DEFAULT_CONTEXT = MessageContext()
_WHAT = {
    Action.CLOSE_ALL: "CLOSE ALL POSITIONS (and cancel every order)",
    Action.CANCEL_ALL: "CANCEL ALL ORDERS",
}


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


def _what_happens(b: Breach, *, later: bool = False) -> str:
    if b.kind is BreachKind.BREACH and b.action.is_kill and later:
        # a reminder, or an alert held during a gateway outage: the kill fired when the breach began
        return f"Action: the kill switch fired ({b.action.value}) when this began; see its kill report."
    if b.kind is BreachKind.BREACH and b.action.is_kill:
        return f"Action: the kill switch is firing ({b.action.value}); the kill report follows."
    if b.kind is BreachKind.UNKNOWN:
        return "Action: none (the watchdog never kills on missing data). Check the gateway and data feed."
    if b.kind is BreachKind.WARNING and b.action.is_kill:
        return f"Action: none yet. AT THE THRESHOLD THIS RULE WILL {_WHAT[b.action]}."
    if b.kind is BreachKind.WARNING:
        return "Action: none yet; at the threshold the rule alerts."
    return "Action: alert only; nothing is cancelled or closed."


def _reading(b: Breach, ctx: MessageContext) -> str:
    def shown(v: float | None) -> str:
        return "unknown" if v is None else format_value(b.metric, v, ctx.currency)

    return (
        f"Rule {b.rule} ({b.metric}) on {_where(b)}: "
        f"value {shown(b.value)} vs threshold {shown(b.threshold)}."
    )


def format_breach(
    b: Breach,
    *,
    now: float,
    reminder: bool = False,
    held: bool = False,
    ctx: MessageContext = DEFAULT_CONTEXT,
) -> Notification:
    """`held`: said late, after a gateway outage held it back (it still holds once data is back)."""
    kind = {BreachKind.WARNING: Kind.WARNING, BreachKind.UNKNOWN: Kind.UNKNOWN}.get(b.kind, Kind.BREACH)
    label = {Kind.BREACH: "BREACH", Kind.WARNING: "WARNING", Kind.UNKNOWN: "UNKNOWN"}[kind]
    prefix = "Reminder: " if reminder else ""
    title = f"{prefix}[{label}] {b.rule} on {_where(b)}"
    if kind is Kind.WARNING and b.action.is_kill:
        title += f" — at the threshold: {_WHAT[b.action].split(' (')[0]}"
    lines = [_reading(b, ctx)]
    if b.message:
        lines.append(b.message)
    lines.append(_what_happens(b, later=reminder or held))
    lines.append(f"Since {fmt_time(b.since)} ({fmt_duration(now - b.since)} ago).")
    if held:
        lines.append("Held back during the gateway outage; it still holds with the gateway back.")
    if reminder:
        lines.append("Still ongoing; you will be reminded until it recovers.")
    return Notification(kind=kind, severity=b.severity, title=title, body="\n".join(lines))


def format_recovered(
    b: Breach,
    *,
    since: float,
    now: float,
    severity: Severity = Severity.INFO,
    ctx: MessageContext = DEFAULT_CONTEXT,
) -> Notification:
    """`severity` = the alert's own, so the recovery reaches every target that got the alert."""
    title = f"[RECOVERED] {b.rule} on {_where(b)}"
    lines = [
        _reading(b, ctx),
        *([b.message] if b.message else []),  # the rules engine says what cleared (e.g. "data is back")
        f"The alert lasted {fmt_duration(now - since)} ({fmt_time(since)} → {fmt_time(now)}).",
    ]
    body = "\n".join(lines)
    return Notification(kind=Kind.RECOVERED, severity=severity, title=title, body=body, limited=False)


def _order_line(o: OpenOrder) -> str:
    price = f" {o.order_type}" + (f" {o.lmt_price:g}" if o.lmt_price is not None else "")
    qty = o.remaining or o.total_quantity
    return (
        f"  - {o.account} {o.action} {qty:g} {o.contract.label}{price} "
        f"(order {o.order_id}, client {o.client_id}{', ' + o.status if o.status else ''})"
    )


def _close_line(c: CloseOrderRequest, oid: int | None = None, rejected: str | None = None) -> str:
    price = f" {c.limit_price:g}" if c.limit_price is not None else ""
    rth = " outside RTH" if c.outside_rth else ""
    where = f" via {c.exchange}" if c.exchange else ""
    which = f" (order {oid}{', REJECTED: ' + rejected if rejected else ''})" if oid is not None else ""
    what = f"{c.account} {c.action} {c.quantity:g} {c.contract.label} {c.order_type}"
    return f"  - {what}{price}{rth}{where}{which}"


def _fill_lines(r: KillReport) -> list[str]:
    """One line per closing order however many executions filled it (a phone shows the total)."""
    by_order: dict[int, list[Fill]] = {}
    for f in r.close_fills:
        by_order.setdefault(f.order_id, []).append(f)
    sizes = {oid: c.quantity for c, oid in zip(r.close_orders, r.close_order_ids, strict=False)}
    lines = []
    for oid, fills in by_order.items():
        f, shares = fills[-1], sum(x.shares for x in fills)
        avg = sum(x.shares * x.price for x in fills) / shares if shares else f.price
        of = f" of {sizes[oid]:g}" if oid in sizes else ""
        price = f"{'avg ' if len(fills) > 1 else ''}{avg:.4f}".rstrip("0").rstrip(".")
        when = f"{len(fills)} fills, last {fmt_time(f.time)}" if len(fills) > 1 else fmt_time(f.time)
        lines.append(
            f"  - order {oid}: {f.account} {f.side} {shares:g}{of} {f.contract.label} @ {price} ({when})"
        )
    return lines


def _position_line(p: Position) -> str:
    return f"  - {p.account} {p.quantity:+g} {p.contract.label}"


def listing(heading: str, lines: Sequence[str], empty: str) -> list[str]:
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


def format_kill(report: KillReport, ctx: MessageContext = DEFAULT_CONTEXT) -> Notification:
    """The kill report: what fired and why, what was done, what is still open (with ids), what to run next."""
    r = report
    accounts = ", ".join(r.accounts) or "all accounts"
    label = {
        KillOutcome.FLAT: "KILL DONE",
        KillOutcome.ESCALATED: "KILL ESCALATED — ACT NOW",
        KillOutcome.PENDING: "KILL PENDING",
        KillOutcome.DRY_RUN: "DRY RUN KILL",
    }[r.outcome]
    title = f"[{label}] {r.action.value} by {r.trigger} on {accounts}"
    what = (
        "cancel every working order, then close every position"
        if r.action is Action.CLOSE_ALL
        else "cancel every working order"
    )
    outcome = _OUTCOME_TEXT[r.outcome].format(
        flat=" and no positions" if r.action is Action.CLOSE_ALL else ""
    )
    why = r.trigger_reason or ("" if r.outcome is KillOutcome.ESCALATED else r.reason)
    dry = r.dry_run or r.outcome is KillOutcome.DRY_RUN
    lines = [
        f"What fired: {r.trigger}" + (f" — {why}" if why else ""),
        f"When: {fmt_time(r.started)}, took {r.duration:.1f}s ({r.attempts} attempt"
        f"{'s' if r.attempts != 1 else ''}); kill {r.kill_id}.",
        f"What the watchdog did: {r.action.value} ({what})"
        + (" — DRY RUN: planned only, no order was sent." if dry else "."),
        f"Outcome: {outcome}.",
    ]
    if r.outcome is KillOutcome.ESCALATED and r.reason:
        lines.append(f"What is wrong: {r.reason}")
    lines += listing(
        "Would cancel" if dry else "Cancelled orders",
        [_order_line(o) for o in r.cancelled_orders],
        "none seen working (the global cancel covers every order of the account)",
    )
    if r.action is Action.CLOSE_ALL:
        heading = "Would send closing orders" if dry else "Closing orders"
        ids: list[int | None] = [*r.close_order_ids, *[None] * (len(r.close_orders) - len(r.close_order_ids))]
        pairs = zip(r.close_orders, ids, strict=True)
        closes = [_close_line(c, oid, None if oid is None else r.rejected.get(oid)) for c, oid in pairs]
        lines += listing(heading, closes, "none needed")
        if r.close_fills:
            lines += listing("Closing fills", _fill_lines(r), "none")
    still = [_order_line(o) for o in r.remaining_orders] + [_position_line(p) for p in r.remaining_positions]
    if dry:
        lines.append("Still open: everything — a dry run sends nothing, the account was not touched.")
    else:
        lines += listing("Still open", still, "nothing")
    if r.outcome is KillOutcome.DRY_RUN:
        lines.append(f"Timeline: {ctx.report(r.kill_id)}")
    else:
        if r.outcome is KillOutcome.ESCALATED:
            lines.append("Act by hand now (TWS, mobile) on what is listed as still open.")
        lines.append("The watchdog is TRIPPED and cancels new orders until a person re-arms it.")
        lines.append(f"Timeline: {ctx.report(r.kill_id)}")
        lines.append(f"Re-arm when safe: {ctx.reset}")
    kind = Kind.ESCALATION if r.outcome is KillOutcome.ESCALATED else Kind.KILL
    if r.outcome is KillOutcome.PENDING:
        kind = Kind.PENDING_KILL
    return Notification(
        kind=kind, severity=Severity.CRITICAL, title=title, body="\n".join(lines), limited=False
    )


def format_pending_kill(r: KillReport, why: str = "", ctx: MessageContext = DEFAULT_CONTEXT) -> Notification:
    """A kill that cannot go on because the gateway does not answer (`why`). What it already sent is
    listed: those closing orders may still fill, so closing the same positions by hand could close
    them twice."""
    accounts = ", ".join(r.accounts) or "all accounts"
    fired = f" ({r.trigger_reason})" if r.trigger_reason else ""
    lines = [
        f"A kill ({r.action.value}) for {accounts}, triggered by {r.trigger}{fired}, cannot go on now"
        + (f": {why}" if why else "")
        + ".",
        "It is persisted and resumes the moment the gateway answers again (reconnect, 1101/1102, or "
        "account data read again); it then re-reads the account"
        + (" and closes only what is still open." if r.action is Action.CLOSE_ALL else " (cancel only)."),
    ]
    ids = [*r.close_order_ids, *[None] * (len(r.close_orders) - len(r.close_order_ids))]
    pairs = zip(r.close_orders, ids, strict=True)
    # a closing order the gateway rejected cannot fill: not one to hold the operator back
    placed = [(c, oid) for c, oid in pairs if oid is not None]
    sent = [_close_line(c, oid) for c, oid in placed if oid not in r.rejected]
    refused = [_close_line(c, oid, r.rejected[oid]) for c, oid in placed if oid in r.rejected]
    if refused:
        lines += listing("Rejected by the gateway (cannot fill)", refused, "")
    if sent:
        lines += listing("Already sent, and may still fill", sent, "")
        if r.close_fills:
            lines += listing("Filled so far", _fill_lines(r), "none")
        lines.append(
            "Do NOT close these positions by hand while those orders may be working: a position could "
            "be closed twice. If you take over (TWS, mobile), cancel them first."
        )
    elif r.action is Action.CLOSE_ALL and not r.dry_run:
        # this part of the kill sent none; an earlier part (before a resume) may have: never "none"
        lines.append(
            "No closing order of this kill is known to be working. Before acting by hand (TWS, mobile), "
            f"cancel any order with order ref {r.kill_id!r} in it: one sent before the gateway stopped "
            "answering may still fill. What you close yourself is not closed again."
        )
    lines.append(f"Timeline: {ctx.report(r.kill_id)}")
    title = f"[KILL PENDING] {r.action.value} by {r.trigger}: the gateway does not answer"
    return Notification(
        kind=Kind.PENDING_KILL, severity=Severity.CRITICAL, title=title, body="\n".join(lines), limited=False
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


def format_reload_failure(problems: Sequence[str]) -> Notification:
    shown = listing("Problems", [f"  - {p}" for p in problems], "none reported")
    body = "\n".join(["The new rules.yaml was rejected; the running config is kept.", *shown])
    body += "\nFix the file, check it with `ibkr-watchdog check FILE`, then reload (systemctl reload)."
    return Notification(
        kind=Kind.RELOAD_FAILED, severity=Severity.WARNING, title="Config reload failed", body=body
    )


def format_reset(reason: str, by: str = "", now: float | None = None) -> Notification:
    who = f" by {by}" if by else ""
    at = f" at {fmt_time(now)}" if now is not None else ""
    body = (
        f"The watchdog was re-armed{who}{at}. Reason given: {reason}\n"
        "Rules can fire kills again; the lockout is lifted."
    )
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
