"""The restart scenario: the user's daemon as a real process (`python -m watchdog run`), killed with
SIGKILL while its closing orders are part-filled, then started again; the next process must resume the
same kill from disk and close exactly what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from watchdog.drill.book import build_simulator
from watchdog.drill.judge import collect, judge_common
from watchdog.drill.result import ScenarioResult, Verdict
from watchdog.drill.runner import GLOBAL_CANCEL, PLACE_ORDER, Event, Plan, Rehearsal
from watchdog.drill.scenarios import NO_POSITIONS, _has_positions, _summary, watched
from watchdog.drill.setup import LOOPBACK, config_yaml, drill_config
from watchdog.model import TradingState
from watchdog.state.audit import AuditRecord, read_audit
from watchdog.state.store import StateStore

READY_TIMEOUT = 20.0  # real seconds for a fresh process to take its first full snapshot
RESUME_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class ProcessRehearsal(Rehearsal):
    """A simulator in this process and the daemon as child processes, one after the other."""

    async def __aenter__(self) -> ProcessRehearsal:
        cfg = self.plan.config
        self.sim, self.notes = build_simulator(
            self.plan.book, self.clock, watchdog_client_id=cfg.gateway.client_id
        )
        self.sim.fill.fill_delay = 1.0  # each closing order's first piece fills a second after placing ...
        self.sim.fill.partial_fills = 3  # ... in three pieces: the process dies with part-filled orders
        await self.sim.start(LOOPBACK, 0)
        self.plan.capture.clock = self.clock
        self.config, _ = drill_config(
            cfg,
            port=self.sim.port,
            state_dir=str(self.state_dir / "state"),
            notify_url=self.plan.capture.url(self.sid),
            notify=self.plan.notifies(self.sid),
        )
        self.config_file = self.state_dir / "rules.yaml"
        self.config_file.write_text(config_yaml(self.config), encoding="utf-8")
        self.config_file.chmod(0o600)  # it may hold the user's notification URLs (--notify)
        self.procs: list[asyncio.subprocess.Process] = []
        self.start_positions = self.positions()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        await self.sim.stop()

    async def spawn(self, n: int) -> asyncio.subprocess.Process:
        log = open(self.state_dir / f"daemon-{n}.log", "wb")  # noqa: SIM115, ASYNC230 - the child keeps it
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watchdog",
            "run",
            "--config",
            str(self.config_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.procs.append(proc)
        self.add("note", f"daemon process {n} started (pid {proc.pid})")
        return proc

    def status(self) -> dict[str, Any]:
        try:
            data = json.loads((Path(self.config.state_dir) / "status.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def audit(self) -> list[AuditRecord]:
        return read_audit(Path(self.config.state_dir) / "audit.jsonl")

    def tripped(self) -> bool:
        store = StateStore(Path(self.config.state_dir), time.time)
        return store.trading_state() is TradingState.TRIPPED

    async def ready(self, proc: asyncio.subprocess.Process) -> bool:
        """The process watches the whole book: status.json shows it connected with every position."""
        want = len(self.positions(frozenset(watched(self.plan))))
        since = time.time()

        def up() -> bool:
            s = self.status()
            gw = s.get("gateway")
            if not isinstance(gw, dict):
                return False
            return bool(gw.get("connected")) and s.get("positions") == want and s.get("updated", 0) > since

        return await self.until(lambda: up() or proc.returncode is not None, READY_TIMEOUT) and up()


async def kill_nine_restart(plan: Plan) -> ScenarioResult:
    res = ScenarioResult(
        "kill-9-restart",
        "the daemon killed -9 in the middle of a close, then restarted (real processes)",
        "standard",
        action="close_all",
    )
    if not _has_positions(plan):
        res.verdict, res.summary = Verdict.NOT_DRIVEN, NO_POSITIONS
        return res
    async with ProcessRehearsal(plan, res.sid) as r:
        first = await r.spawn(1)
        up = await r.ready(first)
        if not res.check("process 1 watching the book", up, "" if up else _tail(r, 1)):
            collect(r, res)
            return res
        trigger = r.now()
        r.add("drive", "operator sends SIGUSR1 to process 1")
        first.send_signal(signal.SIGUSR1)
        placed = await r.until(lambda: r.first_wire(PLACE_ORDER) is not None, 10.0)
        mine = r.config.kill.order_ref
        await r.until(lambda: any(e.order_ref.startswith(mine) for e in r.sim.executions()), 5.0)
        r.sim.fill.fill_delay = 600.0  # the later pieces wait: the book stays part-closed
        first.kill()
        await asyncio.wait_for(first.wait(), STOP_TIMEOUT)
        r.add("fault", "process 1 killed with SIGKILL" + ("" if placed else " (before any closing order)"))
        pending = StateStore(Path(r.config.state_dir), time.time).pending_kill()
        res.check("the kill was pending on disk after SIGKILL", pending is not None)
        r.sim.fill.fill_delay = 0.2
        second = await r.spawn(2)

        def finished() -> list[AuditRecord]:
            return [e for e in r.audit() if e.event in ("kill.finished", "kill.escalated")]

        done = await r.until(lambda: bool(finished()) or second.returncode is not None, RESUME_TIMEOUT)
        scope = frozenset(watched(plan))
        await r.until(lambda: not r.positions(scope) and not r.working(scope), 5.0)
        res.trigger_at, res.first_cancel_at = trigger, r.first_wire(GLOBAL_CANCEL, after=trigger)
        res.check("global cancel on the wire after the trigger", res.first_cancel_at is not None)
        res.flat_at = r.now() if not r.positions(scope) and not r.working(scope) else None
        ended = done and bool(finished())
        res.check("process 2 finished the kill", ended, "" if ended else _tail(r, 2))
        end = finished()[-1] if finished() else None
        if end is not None:
            res.outcome = str(end.details.get("outcome", end.event))
            res.check("the kill verified flat", res.outcome == "flat", f"outcome {res.outcome}")
            res.check("the same kill was resumed", pending is not None and end.kill_id == pending.kill_id)
        res.check("simulator: no position left", not r.positions(scope))
        res.check("simulator: no working order left", not r.working(scope))
        await judge_common(r, res, kill=True)
        second.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(second.wait(), STOP_TIMEOUT)
        res.check("process 2 stopped cleanly on SIGTERM", second.returncode == 0, f"exit {second.returncode}")
        for rec in r.audit():
            if rec.event.startswith(("kill.", "close.", "cancel.")):
                r.events.append(Event(rec.ts - r.t0, "kill", f"audit: {rec.event}"))
        collect(r, res)
        res.escalation = escalation_from(r.audit())
    res.summary = _summary(res)
    return res


def escalation_from(audit: list[AuditRecord]) -> list[str]:
    """The child's kill report is not in this process: the audit log says what stayed open."""
    out: list[str] = []
    for rec in audit:
        if rec.event == "kill.escalated":
            out += [str(x) for x in rec.details.get("remaining_positions", [])]
    return out


def _tail(r: ProcessRehearsal, n: int) -> str:
    try:
        text = (r.state_dir / f"daemon-{n}.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if "ERROR" in ln or "CRITICAL" in ln]
    return " | ".join(lines[-3:])[:300]
