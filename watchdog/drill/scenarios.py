"""The standard drill: every rule driven across its threshold, a manual kill, a half-open gateway in the
middle of a close, a rejected closing order, a market closed for part of the book (the restart under
`kill -9` lives in restart.py). Each scenario runs on a fresh simulator, daemon and state dir.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable

from watchdog.drill.drive import BOT_CLIENT
from watchdog.drill.judge import collect, escalation, judge_common, judge_kill, watch_kill
from watchdog.drill.result import ScenarioResult, Verdict
from watchdog.drill.runner import PLACE_ORDER, Event, Plan, Rehearsal
from watchdog.drill.setup import config_yaml
from watchdog.model import Action, Health, KillOutcome
from watchdog.sim import Simulator

FIRE_TIMEOUT = 20.0  # real seconds for a driven rule to fire
HALF_OPEN_TIMEOUT = 10.0  # real seconds for the daemon to notice a mute gateway
CLI_TIMEOUT = 20.0  # real seconds for the operator's `ibkr-watchdog kill` process
LOCKOUT_TIMEOUT = 10.0  # real seconds for the lockout to cancel a new order (the next polls see it)
REJECT_TEXT = "Order rejected - reason: fire drill: the venue refuses the first closing order"
# the simulator's extended session: futures and FX trade, stocks with outsideRth, options do not
TRADES_EXTENDED = frozenset({"FUT", "CASH", "STK"})


NO_POSITIONS = "not driven: the book has no positions (a close-all has nothing to close)"


def _empty(res: ScenarioResult, plan: Plan) -> bool:
    """A close-all on a book without positions proves nothing: reported as not driven, never verified."""
    if res.action != Action.CLOSE_ALL.value or _has_positions(plan):
        return False
    res.verdict, res.summary = Verdict.NOT_DRIVEN, NO_POSITIONS
    return True


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "rule"


def watched(plan: Plan) -> list[str]:
    return list(plan.config.gateway.accounts) or list(plan.book.accounts)


def _summary(res: ScenarioResult) -> str:
    if res.verdict is Verdict.FAIL:
        return res.summary
    parts = []
    if res.trigger_to_cancel_ms is not None:
        parts.append(f"first cancel {res.trigger_to_cancel_ms:.0f} ms after the trigger")
    if res.trigger_to_flat_s is not None:
        parts.append(f"done {res.trigger_to_flat_s:.2f} s after it")
    if res.outcome:
        parts.append(f"outcome {res.outcome}")
    return ", ".join(parts)


async def _manual(r: Rehearsal, why: str) -> float:
    """The SIGUSR1 path without the signal (the drill shares its process with the daemon)."""
    r.add("drive", f"operator asks for a kill (close all): {why}")
    at = r.now()
    r.daemon.request_kill(Action.CLOSE_ALL, "manual:drill", why)
    return at


async def manual_kill(plan: Plan) -> ScenarioResult:
    """The operator's own command: `ibkr-watchdog kill --reason` (a real process) finds the daemon through
    its pid file and signals it (SIGUSR1, the reason in a control request), as in production."""
    res = ScenarioResult(
        "manual-kill",
        "manual kill: `ibkr-watchdog kill --reason …` → close all",
        "standard",
        action="close_all",
    )
    reason = "fire drill: manual kill"
    if _empty(res, plan):
        return res
    async with Rehearsal(plan, res.sid) as r:
        config_file = r.state_dir / "rules.yaml"
        config_file.write_text(config_yaml(r.config), encoding="utf-8")
        config_file.chmod(0o600)  # it may hold the user's notification URLs (--notify)
        r.daemon.install_signal_handlers()  # the daemon shares this process: the signal comes here
        try:
            r.add("drive", f'operator runs: ibkr-watchdog kill --reason "{reason}"')
            # the trigger is the operator's request (the command starting), not the daemon's own log
            # line: the command's start-up and its signal are part of what the operator waits for
            requested = r.now()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "watchdog",
                "kill",
                "--config",
                str(config_file),
                "--reason",
                reason,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
            ok = proc.returncode == 0
            detail = (
                "" if ok else f"exit {proc.returncode}: {(err or out).decode(errors='replace').strip()[:200]}"
            )
            res.check("`ibkr-watchdog kill` signalled the daemon (exit 0)", ok, detail)
            await r.until(lambda: _kill_started(r) is not None, 10.0)
            report = await judge_kill(r, res, Action.CLOSE_ALL, watched(plan), requested)
            if report is not None:
                res.check(
                    "the operator's reason is on the kill", report.reason.startswith(reason), report.reason
                )
            if r.config.kill.lockout:
                await _lockout(r, res, watched(plan)[0])
        finally:
            r.daemon.remove_signal_handlers()
        collect(r, res)
    res.summary = _summary(res)
    return res


async def _lockout(r: Rehearsal, res: ScenarioResult, account: str) -> None:
    """While TRIPPED, a new risk-increasing order must be cancelled again (kill.lockout)."""
    symbol = next((p.symbol for p in r.sim.positions() if p.sec_type == "STK"), "AAPL")
    price = round(r.sim.price(symbol) * 0.5, 2)
    r.add(
        "drive", f"a bot (client {BOT_CLIENT}) places a new order after the kill: BUY 1 {symbol} LMT {price}"
    )
    oid = r.sim.place_order_as(BOT_CLIENT, account, symbol, "BUY", 1, "LMT", lmt_price=price)

    def gone() -> bool:
        return not any(o.client_id == BOT_CLIENT and o.order_id == oid for o in r.sim.open_orders())

    cancelled = await r.until(gone, LOCKOUT_TIMEOUT)
    r.add("note", "the lockout cancelled it" if cancelled else "the new order is still working")
    res.check("lockout: a new order after the kill is cancelled (kill.lockout)", cancelled)


def _kill_started(r: Rehearsal) -> float | None:
    """The daemon's own "kill close_all from manual:SIGUSR1" line: where the signal became a kill."""
    return next(
        (e.t for e in r.events if e.kind == "kill" and e.text.startswith("kill ") and " from " in e.text),
        None,
    )


async def half_open_close(plan: Plan) -> ScenarioResult:
    """Mute the gateway right after the first closing order: the kill must park, then finish on reconnect."""
    res = ScenarioResult(
        "half-open-mid-close",
        "gateway goes half-open in the middle of a close",
        "standard",
        action="close_all",
    )

    if _empty(res, plan):
        return res

    def slow_fills(sim: Simulator) -> None:
        sim.fill.fill_delay = 0.5  # closing orders rest half a second: the mute lands mid-close

    async with Rehearsal(plan, res.sid, prepare=slow_fills) as r:
        trigger = await _manual(r, "fire drill: half-open gateway mid-close")
        # judged from the trigger on, while the fault plays: the book may go flat during the mute
        judging = asyncio.ensure_future(judge_kill(r, res, Action.CLOSE_ALL, watched(plan), trigger))
        placed = await r.until(lambda: r.first_wire(PLACE_ORDER) is not None, 10.0)
        r.sim.faults.mute()
        r.add(
            "fault",
            "gateway half-open: socket open, nothing answered"
            + ("" if placed else " (no closing order was needed)"),
        )
        parked = await r.until(
            lambda: (
                any(k.outcome is KillOutcome.PENDING for k in r.reports())
                or r.daemon.c.gateway.status().health is Health.DOWN
            ),
            HALF_OPEN_TIMEOUT,
        )
        res.check("the daemon noticed the half-open gateway", parked)
        r.sim.faults.unmute()
        r.add("fault", "gateway answers again")
        await judging
        pending = any(e.event == "kill.pending" for e in r.daemon.c.audit.read())
        res.check("the kill was kept pending and resumed (audit: kill.pending)", pending)
        collect(r, res)
    res.summary = _summary(res)
    return res


async def reject_retry(plan: Plan) -> ScenarioResult:
    res = ScenarioResult(
        "reject-retry", "a closing order rejected by the venue, then retried", "standard", action="close_all"
    )
    if _empty(res, plan):
        return res

    def rejecting(sim: Simulator) -> None:
        sim.faults.reject_next(1, code=201, message=REJECT_TEXT)

    async with Rehearsal(plan, res.sid, prepare=rejecting) as r:
        r.add("fault", "the venue will reject the next order (error 201)")
        trigger = await _manual(r, "fire drill: rejected closing order")
        await judge_kill(r, res, Action.CLOSE_ALL, watched(plan), trigger)
        audit = r.daemon.c.audit.read()
        res.check(
            "the rejection was seen (audit: close.rejected)", any(e.event == "close.rejected" for e in audit)
        )
        collect(r, res)
    res.summary = _summary(res)
    return res


async def market_closed(plan: Plan) -> ScenarioResult:
    """Extended session: futures, FX and stocks (limit + outsideRth) close; options cannot: escalated."""
    res = ScenarioResult(
        "market-closed-part",
        "market closed for part of the book (extended session)",
        "standard",
        action="close_all",
    )

    if _empty(res, plan):
        return res

    def extended(sim: Simulator) -> None:
        sim.set_session("extended")

    async with Rehearsal(plan, res.sid, prepare=extended) as r:
        r.add(
            "fault", "exchange in its extended session: options do not trade, stocks only outside-RTH limits"
        )
        scope = frozenset(watched(plan))
        stuck = {
            (p.account, p.con_id)
            for p in r.sim.positions()
            if p.account in scope and p.sec_type not in TRADES_EXTENDED
        }
        trigger = await _manual(r, "fire drill: market closed for part of the book")

        def done() -> bool:  # the kill's FLAT: no position and no working order in scope
            return not r.positions(scope) and not r.working(scope)

        def open_part_done() -> bool:  # every position in an open market closed, nothing working
            return set(r.positions(scope)) <= stuck and not r.working(scope)

        open_at: list[float | None] = [None]

        async def watch_open_part() -> None:
            while True:
                now = r.now()
                open_at[0] = (open_at[0] if open_at[0] is not None else now) if open_part_done() else None
                await asyncio.sleep(0.02)

        watcher = asyncio.ensure_future(watch_open_part())
        try:
            report, flat_at = await watch_kill(r, lambda _: done(), [scope], lambda _: scope)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if open_at[0] is None and open_part_done():  # reached between the watcher's last look and the report
            open_at[0] = r.now()
        res.trigger_at, res.flat_at = trigger, flat_at
        if stuck and open_at[0] is not None:
            r.events.append(
                Event(
                    open_at[0],
                    "note",
                    "simulator: every position in an open market closed, no working order in scope "
                    "(the closed-market positions stay: escalated, not done)",
                )
            )
        res.first_cancel_at = r.first_wire(58, after=trigger)
        res.check("global cancel on the wire after the trigger", res.first_cancel_at is not None)
        res.check("a kill ran", report is not None)
        if report is not None:
            res.outcome = report.outcome.value
            res.escalation = escalation(report)
            expected = KillOutcome.ESCALATED if stuck else KillOutcome.FLAT
            res.check(
                f"kill outcome {expected.value}", report.outcome is expected, f"got {report.outcome.value}"
            )
            named = {(p.account, p.contract.con_id) for p in report.remaining_positions}
            res.check(
                "every position in a closed market escalated by name",
                stuck <= named,
                f"{len(stuck)} expected",
            )
        left = set(r.positions(scope))
        res.check("every position in an open market closed", left <= stuck, f"{len(left - stuck)} still open")
        working = r.working(scope)
        res.check(
            "simulator: no working order left",
            not working,
            ", ".join(f"{o.symbol} id {o.order_id}" for o in working),
        )
        await judge_common(r, res, kill=True)
        if not stuck:
            r.add(
                "note",
                "every position of this book trades in the extended session: "
                "the limit-order path was rehearsed",
            )
        collect(r, res)
    res.summary = _summary(res)
    return res


def _has_positions(plan: Plan) -> bool:
    scope = set(watched(plan))
    return any(p.get("account") in scope and p.get("quantity") for p in plan.book.scenario.positions)


async def timed(fn: Callable[[], Awaitable[ScenarioResult]]) -> ScenarioResult:
    start = time.monotonic()
    res = await fn()
    res.duration = time.monotonic() - start
    res.settle()
    return res
