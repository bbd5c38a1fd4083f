"""Judging a rehearsal: did the kill (or the alert) do what the config promises, seen from the simulator?"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable

from watchdog.drill.result import ScenarioResult
from watchdog.drill.runner import (
    GLOBAL_CANCEL,
    PLACE_ORDER,
    WIRE_NAMES,
    Event,
    Rehearsal,
    messages_of,
    over_close,
)
from watchdog.model import Action, KillOutcome, KillReport
from watchdog.outputs.targets import TargetSpec, describe_url
from watchdog.sim import SimOpenOrder

KILL_TIMEOUT = 30.0  # real seconds for a kill to end (max_attempts × verify rounds fit well inside)
MESSAGE_TIMEOUT = 5.0  # real seconds for a notification to reach the drill's endpoint


def final_report(r: Rehearsal) -> KillReport | None:
    done = [k for k in r.reports() if k.outcome is not KillOutcome.PENDING]
    return done[-1] if done else None


Scope = frozenset[str]


async def watch_kill(
    r: Rehearsal,
    is_done: Callable[[Scope], bool],
    scopes: list[Scope],
    scope_of: Callable[[KillReport], Scope],
    timeout: float = KILL_TIMEOUT,
) -> tuple[KillReport | None, float | None]:
    """Wait for the kill's final report, noting when the simulator's book first read done (and stayed).

    The kill's scope is known only from its report, at the end: every candidate scope is watched
    from the start, and the report's is the one returned."""
    done_at: dict[Scope, float | None] = dict.fromkeys(scopes)
    deadline = time.monotonic() + timeout
    report: KillReport | None = None
    while time.monotonic() < deadline:
        now = r.now()
        for scope in done_at:
            done_at[scope] = (now if done_at[scope] is None else done_at[scope]) if is_done(scope) else None
        report = final_report(r)
        if report is not None:
            chosen = scope_of(report)
            if chosen not in done_at:
                done_at[chosen] = now if is_done(chosen) else None
            if done_at[chosen] is not None or report.outcome is not KillOutcome.FLAT:
                return report, done_at[chosen]
        await asyncio.sleep(0.02)
    return report, (done_at.get(scope_of(report)) if report is not None else None)


async def judge_kill(
    r: Rehearsal, res: ScenarioResult, action: Action, accounts: list[str] | None, trigger_at: float | None
) -> KillReport | None:
    """The standard checks of a kill that must end FLAT: wire, simulator truth, netting, latch, message.

    `accounts` None: the kill's own scope, read from its report (a rule scoped `each` kills one account)."""
    everyone = frozenset(r.daemon.c.gateway.watched_accounts) if hasattr(r, "daemon") else frozenset()
    candidates = (
        [frozenset(accounts)] if accounts is not None else [everyone, *(frozenset({a}) for a in everyone)]
    )

    def scope_of(report: KillReport) -> Scope:
        if accounts is not None:
            return frozenset(accounts)
        return frozenset(report.accounts) or everyone

    def done(scope: Scope) -> bool:
        if r.working(scope):
            return False
        return action is not Action.CLOSE_ALL or not r.positions(scope)

    report, flat_at = await watch_kill(r, done, candidates, scope_of)
    scope = scope_of(report) if report is not None else candidates[0]
    res.trigger_at = trigger_at
    res.flat_at = flat_at
    res.first_cancel_at = r.first_wire(GLOBAL_CANCEL, after=trigger_at or 0.0)
    res.check("a kill ran", report is not None, "no kill report" if report is None else "")
    res.check("global cancel on the wire after the trigger", res.first_cancel_at is not None)
    if report is not None:
        res.outcome = report.outcome.value
        res.escalation = escalation(report)
        res.check(
            "the kill verified flat", report.outcome is KillOutcome.FLAT, f"outcome {report.outcome.value}"
        )
    left = r.positions(scope)
    if action is Action.CLOSE_ALL:
        res.check("simulator: no position left", not left, _positions_text(r, left))
    else:
        placed = [t for t, m, _ in r.wire() if m == PLACE_ORDER]
        res.check("simulator: positions kept (cancel only, no closing order)", not placed)
    working = r.working(scope)
    res.check("simulator: no working order left", not working, ", ".join(_order_text(o) for o in working))
    await judge_common(r, res, kill=True)
    return report


async def judge_common(r: Rehearsal, res: ScenarioResult, *, kill: bool) -> None:
    """No over-close, latch state, and the message that must have gone out."""
    res.over_close = over_close(r.sim, r.config.kill.order_ref, r.start_positions)
    res.check("no over-close", not res.over_close, "; ".join(res.over_close))
    if kill:
        res.check("latch TRIPPED (persisted)", r.tripped())
        announced = await r.plan.capture.wait(
            lambda: any("KILL" in m.title for m in r.plan.capture.of(r.sid)), MESSAGE_TIMEOUT
        )
        res.check("the kill was announced (the drill's loopback capture received it)", announced)
    if r.plan.notifies(r.sid):
        await judge_on_call(r, res)


def target_name(spec: TargetSpec) -> str:
    """A target as the operator's config numbers it, redacted (`notifications.targets[0] tgram://…`).

    The rehearsal's notifier has the drill's capture first, so `targets[i]` there is the config's i-1."""
    source = spec.source
    if source.startswith("targets[") and source.endswith("]") and source[8:-1].isdigit():
        source = f"notifications.targets[{int(source[8:-1]) - 1}]"
    return f"{source} {describe_url(spec.url)}"


async def judge_on_call(r: Rehearsal, res: ScenarioResult) -> None:
    """--notify: apprise's own outcome for each of the config's targets, one check per target.

    The loopback capture proves the daemon sent; only these prove the on-call route received."""
    notifier = r.daemon.c.notifier
    mine = r.plan.capture.url(r.sid)
    real = [t for t in notifier.targets if t.url != mine]
    with contextlib.suppress(TimeoutError):  # a hanging target ends in its own timeout: wait past it
        await notifier.drain(r.config.notifications.timeout + 2.0)
    for problem in notifier.problems:
        problem = re.sub(r"^targets\[(\d+)\]", lambda m: f"notifications.targets[{int(m[1]) - 1}]", problem)
        res.check("on-call target usable", False, problem)
        res.on_call.append({"target": problem, "ok": False, "delivered": 0, "failed": 0, "why": problem})
    if not real and not notifier.problems:
        res.check("on-call route tested (--notify)", False, "the config names no notification target")
    for spec in real:
        name = target_name(spec)
        tried = [d for d in notifier.deliveries if d.target == spec]
        failed = [d for d in tried if not d.ok]
        for d in tried:
            state = "delivered" if d.ok else f"FAILED ({d.why})"
            r.events.append(Event(d.at - r.t0, "message", f"on-call {name}: {state}: {d.title}"))
        why = "; ".join(sorted({d.why for d in failed})) or ("" if tried else "no message sent to it")
        res.on_call.append(
            {
                "target": name,
                "ok": bool(tried) and not failed,
                "delivered": len(tried) - len(failed),
                "failed": len(failed),
                "why": why,
            }
        )
        res.check(
            f"on-call target {name} received the messages ({len(tried) - len(failed)}/{len(tried)})",
            bool(tried) and not failed,
            why,
        )


async def judge_alert(r: Rehearsal, res: ScenarioResult, rule: str, trigger_at: float | None) -> None:
    res.trigger_at = trigger_at

    def told() -> bool:
        return any(rule in m.title or rule in m.body for m in r.plan.capture.of(r.sid))

    res.check("alert delivered (notification)", await r.plan.capture.wait(told, MESSAGE_TIMEOUT))
    mine = [k for k in r.reports() if k.trigger == f"rule:{rule}"]
    res.check("no kill by this alert-only rule", not mine)
    others = sorted({k.trigger for k in r.reports()} - {f"rule:{rule}"})
    if others:  # e.g. excess liquidity driven low also empties the cushion: another rule's kill is right
        r.add("note", f"the same condition also fired: {', '.join(others)}")
    res.outcome = "alerted"
    await judge_common(r, res, kill=False)


def escalation(report: KillReport) -> list[str]:
    """What stayed open and why: an escalated report's reason names each problem (kill/switch.py)."""
    if report.outcome is KillOutcome.ESCALATED and report.reason:
        return report.reason.split("; ")
    lines = [f"position {p.account} {p.quantity:g} {p.contract.label}" for p in report.remaining_positions]
    lines += [
        f"order {o.account} {o.action} {o.remaining:g} {o.contract.label} "
        f"(client {o.client_id}, id {o.order_id})"
        for o in report.remaining_orders
    ]
    return lines


def collect(r: Rehearsal, res: ScenarioResult) -> None:
    """Timeline, orders sent and messages from the rehearsal into the result."""
    events = list(r.events)
    counts = dict.fromkeys(WIRE_NAMES.values(), 0)
    for t, msg_id, fields in r.wire():
        name = WIRE_NAMES[msg_id]
        counts[name] += 1
        events.append(Event(t, "wire", f"{name} {_wire_detail(r, msg_id, fields)}".strip()))
    for ex in r.sim.executions():
        if ex.time >= r.t0:
            who = "watchdog" if ex.order_ref.startswith(r.config.kill.order_ref) else f"client {ex.client_id}"
            label = ex.inst.local_symbol or ex.inst.symbol
            events.append(
                Event(ex.time - r.t0, "fill", f"{ex.account} {ex.side} {ex.shares:g} {label} ({who})")
            )
    res.messages = messages_of(r)
    events += [Event(m["t"], "message", f"[{m['kind']}] {m['title']}") for m in res.messages]
    if res.flat_at is not None:
        what = "no position, no working order" if res.action == "close_all" else "no working order"
        events.append(Event(res.flat_at, "flat", f"simulator: book in scope done ({what})"))
    res.events = sorted(events, key=lambda e: e.t)
    res.orders_sent = counts
    res.warped = r.warped


def _wire_detail(r: Rehearsal, msg_id: int, fields: list[str]) -> str:
    if msg_id == PLACE_ORDER and len(fields) > 19:
        inst = r.sim.universe.find(int(fields[2])) if fields[2].isdigit() else None
        label = (inst.local_symbol or inst.symbol) if inst is not None else fields[3]
        price = f" {fields[19]}" if fields[18] == "LMT" else ""
        return f"id {fields[1]}: {fields[16]} {float(fields[17] or 0):g} {label} {fields[18]}{price}"
    if msg_id == 4 and len(fields) > 2:
        return f"id {fields[2]}"
    return ""


def _positions_text(r: Rehearsal, left: dict[tuple[str, int], float]) -> str:
    return ", ".join(f"{a} {q:g} {r.sim.instrument(c).local_symbol}" for (a, c), q in left.items())


def _order_text(o: SimOpenOrder) -> str:
    return (
        f"{o.account} {o.action} {o.quantity - o.filled:g} {o.symbol} (client {o.client_id}, id {o.order_id})"
    )
