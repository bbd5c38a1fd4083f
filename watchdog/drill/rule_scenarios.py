"""The rule scenarios: every enabled condition rule driven across its threshold, and every scheduled
rule fired as at its cron time (the standard scenarios are in scenarios.py)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from watchdog.config.describe import describe_rule
from watchdog.config.schema import Rule
from watchdog.drill.book import build_simulator
from watchdog.drill.drive import Drive, plan_drive
from watchdog.drill.judge import collect, judge_alert, judge_kill
from watchdog.drill.result import ScenarioResult, Verdict
from watchdog.drill.runner import DrillClock, Plan, Rehearsal
from watchdog.drill.scenarios import (
    CLI_TIMEOUT,
    FIRE_TIMEOUT,
    HALF_OPEN_TIMEOUT,
    _empty,
    _summary,
    slug,
    watched,
)
from watchdog.drill.setup import LOOPBACK
from watchdog.model import Health
from watchdog.sim import Simulator


async def _apply(sim: Simulator, fn: Callable[[Simulator], Awaitable[None] | None]) -> None:
    out = fn(sim)
    if inspect.isawaitable(out):
        await out


def _fired(r: Rehearsal, rule: str) -> float | None:
    head = f"rule {rule} breach"
    return next((e.t for e in r.events if e.kind == "breach" and e.text.startswith(head)), None)


async def rule_scenario(plan: Plan, rule: Rule) -> ScenarioResult:
    """Drive the rule's metric past its threshold; an alert must be delivered, a kill must end flat."""
    res = ScenarioResult(
        f"rule-{slug(rule.name)}",
        f"rule {rule.name}: {describe_rule(rule, currency=plan.config.gateway.base_currency or 'USD')}",
        "rule",
        rule=rule.name,
        action=rule.action.value,
    )
    if _empty(res, plan):
        return res
    probe, _ = build_simulator(plan.book, DrillClock(), watchdog_client_id=plan.config.gateway.client_id)
    drive = plan_drive(rule, plan.config, probe, watched(plan))
    if drive.cannot_fire or drive.not_driven:
        res.verdict = Verdict.FINDING if drive.cannot_fire else Verdict.NOT_DRIVEN
        res.summary = ("cannot fire: " + drive.cannot_fire) if drive.cannot_fire else drive.not_driven
        return res
    async with Rehearsal(plan, res.sid, isolate=rule.name) as r:
        await _drive(r, drive)
        await r.warp_until(
            lambda: _fired(r, rule.name) is not None,
            drive.warp,
            FIRE_TIMEOUT,
            ready=lambda: drive.time_based or r.holding(rule.name),
        )
        trigger = _fired(r, rule.name)
        first = _others_first(r, rule.name, trigger)
        if first:
            r.add(
                "note",
                f"on the driven values {', '.join(first)} breached first (its kill held to an alert here)",
            )
        if not res.check(f"the rule fired within {FIRE_TIMEOUT:g} s", trigger is not None):
            hint = (
                f"; consecutive: {rule.consecutive} asks for that many evaluations in a row"
                if rule.consecutive
                else ""
            )
            res.summary = (
                f"failed: the rule did not fire within {FIRE_TIMEOUT:g} s (real time; the drill clock "
                f"advanced {r.warped:g} s){hint}"
            )
        else:
            if rule.action.is_kill:
                # a gateway or data fault must end for the (pending) kill to act: undo it first
                await _undo(r, drive)
                report = await judge_kill(r, res, rule.action, None, trigger)
                if report is not None:
                    mine = f"rule:{rule.name}"
                    res.check(
                        f"the kill was triggered by this rule ({mine})",
                        report.trigger == mine,
                        f"triggered by {report.trigger}: another rule fired first on the driven values",
                    )
            else:
                await judge_alert(r, res, rule.name, trigger)
        await _undo(r, drive)
        collect(r, res)
    res.summary = res.summary or _summary(res)
    if first and res.verdict is not Verdict.FAIL:
        res.summary += f"; {', '.join(first)} breached first on the same values"
    if drive.findings:  # rehearsed where it can fire; where it never can is a finding all the same
        res.settle()
        res.summary = "cannot fire everywhere: " + "; ".join(drive.findings) + f" (rehearsed: {res.summary})"
        res.verdict = Verdict.FINDING
    return res


def _others_first(r: Rehearsal, rule: str, trigger: float | None) -> list[str]:
    """Other rules whose breach was announced before this one's (or at all, when this one never fired)."""
    mine = f"rule {rule} breach"
    names = [
        e.text.split(" ")[1]
        for e in r.events
        if e.kind == "breach" and not e.text.startswith(mine) and (trigger is None or e.t <= trigger)
    ]
    return list(dict.fromkeys(names))


async def _undo(r: Rehearsal, drive: Drive) -> None:
    while drive.undo:
        fn = drive.undo.pop(0)
        r.add("fault", "the drill ends the fault")
        await _apply(r.sim, fn)


async def _drive(r: Rehearsal, drive: Drive) -> None:
    for text, fn in drive.steps:
        r.add("drive", text)
        await _apply(r.sim, fn)
    if drive.heartbeat:
        await _heartbeat_once(r, drive.bot)
    if drive.needs_down:
        down = await r.until(lambda: r.daemon.c.gateway.status().health is Health.DOWN, HALF_OPEN_TIMEOUT)
        r.add(
            "note",
            "the daemon declared the gateway DOWN" if down else "the daemon did not see the gateway down",
        )


async def _heartbeat_once(r: Rehearsal, name: str) -> None:
    """The bot's own path: POST /v1/heartbeat/NAME with its token to the daemon's receiver, then silence."""
    from watchdog.bots.ping import ping

    bot, watch = r.config.bots.bot(name), r.daemon.c.bots
    if bot is None or watch is None:
        r.add("error", f"bot {name} is not configured: nothing to heartbeat")
        return
    url = f"http://{LOOPBACK}:{watch.receiver.port}"
    try:
        code = await asyncio.wait_for(
            asyncio.to_thread(ping, url, name, bot.token.get_secret_value(), timeout=5.0), CLI_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        r.add("error", f"bot {name}: heartbeat not delivered ({exc})")
        return
    r.add("drive", f"bot {name} heartbeats once (HTTP {code}), then falls silent")


async def scheduled_rule(plan: Plan, rule: Rule) -> ScenarioResult:
    from watchdog.daemon.jobs import scheduled_rule as fire

    res = ScenarioResult(
        f"schedule-{slug(rule.name)}",
        f"scheduled rule {rule.name} fired at its time",
        "rule",
        rule=rule.name,
        action=rule.action.value,
    )
    if _empty(res, plan):
        return res
    async with Rehearsal(plan, res.sid) as r:
        r.add("drive", f"the cron time of {rule.name} is reached")
        at = r.now()
        await fire(r.daemon, rule.name)
        r.add("breach", f"rule {rule.name} breach: scheduled")
        if rule.action.is_kill:
            accounts = watched(plan) if rule.scope in ("each", "all") else [rule.scope]
            await judge_kill(r, res, rule.action, accounts, at)
        else:
            await judge_alert(r, res, rule.name, at)
        collect(r, res)
    res.summary = _summary(res)
    return res
