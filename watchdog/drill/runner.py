"""One rehearsal: a simulator holding the drill book and the user's daemon configuration running
against it in this process, with everything the report needs recorded on one clock.

The clock is the drill's: wall time plus an offset the drill may advance ("time warp") to satisfy a
rule's `for:` or a staleness limit without waiting for it. It is never advanced while a kill runs.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from watchdog.config.schema import Config
from watchdog.drill.book import DrillBook, build_simulator
from watchdog.drill.setup import LOOPBACK, Capture, drill_config, isolated
from watchdog.model import KillReport, TradingState

if TYPE_CHECKING:
    from watchdog.daemon.lifecycle import Daemon
    from watchdog.sim import SimOpenOrder, Simulator

START_TIMEOUT = 15.0  # seconds for the daemon to connect and take its first full snapshot
STOP_TIMEOUT = 10.0
QUIET_WINDOW = 0.3  # seconds; ib_async sends at most 45 requests/s, steady polls a handful
QUIET_REQUESTS = 6
WAIT_STEP = 0.02  # seconds between looks at the simulator's book (an in-process read: cheap)
# TWS API message ids a client sends to act on orders (tws-api-notes.md)
PLACE_ORDER, CANCEL_ORDER, GLOBAL_CANCEL = 3, 4, 58
WIRE_NAMES = {PLACE_ORDER: "placeOrder", CANCEL_ORDER: "cancelOrder", GLOBAL_CANCEL: "reqGlobalCancel"}
_SHOWN_LOGGERS = ("watchdog.daemon", "watchdog.kill", "watchdog.rules", "watchdog.gateway")


class DrillClock:
    """Epoch seconds with an offset the drill can move forward (never backward)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += max(0.0, seconds)


@dataclass(slots=True)
class Event:
    """A point on a scenario's timeline; `t` in seconds since the scenario started (drill clock)."""

    t: float
    kind: str  # drive, breach, warning, kill, wire, fill, message, flat, fault, note, error
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 4), "kind": self.kind, "text": self.text}


@dataclass(slots=True)
class Plan:
    """What every rehearsal of one drill shares."""

    config: Config  # the user's, as loaded
    book: DrillBook
    capture: Capture
    notify: bool  # --notify: the user's own targets hear the scenario `notify_sid` (one, not every one)
    workdir: Path
    overrides: list[str] = field(default_factory=list)
    notify_sid: str = "manual-kill"

    def notifies(self, sid: str) -> bool:
        return self.notify and sid == self.notify_sid


class _LogTap(logging.Handler):
    def __init__(self, rehearsal: Rehearsal) -> None:
        super().__init__(level=logging.INFO)
        self.r = rehearsal

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(_SHOWN_LOGGERS):
            return
        text = record.getMessage()
        kind = "note"
        if record.name.startswith("watchdog.kill"):
            kind = "kill"
        elif text.startswith("rule ") and " breach: " in text:
            kind = "breach"
        elif text.startswith("rule ") and " warning: " in text:
            kind = "warning"
        elif record.levelno >= logging.ERROR:
            kind = "error"
        self.r.add(kind, text)


class Rehearsal:
    """A simulator and a daemon for one scenario; `async with` starts and stops both."""

    def __init__(
        self,
        plan: Plan,
        sid: str,
        *,
        prepare: Callable[[Simulator], None] | None = None,
        isolate: str | None = None,
    ) -> None:
        self.plan = plan
        self.isolate = isolate  # a rule scenario: the other kill rules only alert (setup.isolated)
        self.sid = sid
        self.clock = DrillClock()
        self.t0 = self.clock()
        self.events: list[Event] = []
        self.warped = 0.0
        self._prepare = prepare
        self._tap = _LogTap(self)
        self._serving: asyncio.Future[None] | None = None
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"{sid}-", dir=plan.workdir))
        self.sim: Simulator
        self.daemon: Daemon
        self.config: Config
        self.start_positions: dict[tuple[str, int], float] = {}
        self.notes: list[str] = []

    # ------------------------------------------------------------------ life cycle
    async def __aenter__(self) -> Rehearsal:
        from watchdog.daemon.lifecycle import Daemon
        from watchdog.daemon.wiring import build_components

        cfg = self.plan.config if self.isolate is None else isolated(self.plan.config, self.isolate)
        self.sim, self.notes = build_simulator(
            self.plan.book, self.clock, watchdog_client_id=cfg.gateway.client_id
        )
        if self._prepare is not None:
            self._prepare(self.sim)
        await self.sim.start(LOOPBACK, 0)
        self.config, _ = drill_config(
            cfg,
            port=self.sim.port,
            state_dir=str(self.state_dir),
            notify_url=self.plan.capture.url(self.sid),
            notify=self.plan.notifies(self.sid),
        )
        logging.getLogger("watchdog").addHandler(self._tap)
        self.plan.capture.clock = self.clock  # messages on the same (warped) clock as everything else
        components = build_components(self.config, clock=self.clock, registry=CollectorRegistry())
        self.daemon = Daemon(self.config, None, components)
        try:
            await asyncio.wait_for(self.daemon.start(require_gateway=True), START_TIMEOUT)
        except BaseException:
            await self._teardown()
            raise
        # The simulated exchange keeps its own session: the daemon asks it, not the calendar, whether
        # market orders are accepted (so a drill at night rehearses the same kill as one at noon).
        self.daemon.c.gateway.market_hours = lambda sec_type, now: self.sim.session == "regular"
        self._serving = asyncio.ensure_future(self.daemon.serve())
        # the first evaluation sees the untouched book: day highs (drawdown) start from it
        await self.until(lambda: self.daemon.last_cycle is not None, START_TIMEOUT)
        # A kill in production comes long after the start: let the start-up requests (contract details,
        # P&L per position, throttled by ib_async to 45/s) drain, or the first cancel queues behind them.
        settled = await self.until(self._quiet, START_TIMEOUT)
        self.start_positions = self.positions()
        self.add(
            "note",
            f"daemon up against the drill's simulator on {LOOPBACK}:{self.sim.port}; start-up requests "
            + ("drained" if settled else f"still flowing after {START_TIMEOUT:g} s"),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._teardown()

    async def _teardown(self) -> None:
        try:
            if self._serving is not None:
                self.daemon.request_stop()
                await asyncio.wait_for(self._serving, STOP_TIMEOUT)
            if hasattr(self, "daemon"):
                await asyncio.wait_for(self.daemon.stop(), STOP_TIMEOUT)
        finally:
            logging.getLogger("watchdog").removeHandler(self._tap)
            await self.sim.stop()

    def _quiet(self) -> bool:
        """Fewer requests from the watchdog in the last QUIET_WINDOW than a throttled burst would send."""
        now = self.clock()
        cid = self.config.gateway.client_id
        recent = sum(1 for f in self.sim.received(cid) if f.time > now - QUIET_WINDOW)
        return now - self.t0 > QUIET_WINDOW and recent < QUIET_REQUESTS

    # ------------------------------------------------------------------ recording
    def now(self) -> float:
        return self.clock() - self.t0

    def add(self, kind: str, text: str) -> None:
        self.events.append(Event(self.now(), kind, text))

    def positions(self, accounts: frozenset[str] | None = None) -> dict[tuple[str, int], float]:
        return {
            (p.account, p.con_id): p.quantity
            for p in self.sim.positions()
            if p.quantity and (accounts is None or p.account in accounts)
        }

    def working(self, accounts: frozenset[str] | None = None) -> list[SimOpenOrder]:
        return [o for o in self.sim.open_orders() if accounts is None or o.account in accounts]

    def wire(self) -> list[tuple[float, int, list[str]]]:
        """Order messages the watchdog put on the wire: (t, msg id, fields)."""
        cid = self.config.gateway.client_id
        return [
            (f.time - self.t0, f.msg_id, f.fields)
            for f in self.sim.received(cid)
            if f.msg_id in WIRE_NAMES and f.time >= self.t0
        ]

    def first_wire(self, msg_id: int, after: float = 0.0) -> float | None:
        return next((t for t, m, _ in self.wire() if m == msg_id and t >= after), None)

    def reports(self) -> list[KillReport]:
        return list(self.daemon.kill_reports)

    def holding(self, rule: str) -> bool:
        """The daemon has seen the rule's condition hold (waiting for its `for:` / `consecutive:`)."""
        states = ("pending", "breached")
        return any(st.rule == rule and st.state in states for st in self.daemon.c.memory.status())

    def tripped(self) -> bool:
        return self.daemon.c.store.trading_state() is TradingState.TRIPPED

    # ------------------------------------------------------------------ waiting
    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Look (in-process reads) until `predicate` holds or `timeout` real seconds passed."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(WAIT_STEP)
        return True

    async def warp_until(
        self,
        predicate: Callable[[], bool],
        budget: float,
        timeout: float,
        ready: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Advance the drill clock up to `budget` seconds in small steps until `predicate` holds.

        Steps of at least 0.25 s (budget / 20) of drill time every 50 ms of real time, each followed by
        an evaluation (as a streamed value would ask for), so every step is judged: a `for: 10s` rule is
        judged on ten seconds of held condition in about a second, `consecutive: 5` on five evaluations.
        Time moves only once `ready()` (the daemon has seen the condition hold): advancing it before the
        driven data arrived would spend the budget on nothing."""
        deadline = time.monotonic() + timeout
        left = budget
        size = max(0.25, budget / 20)  # at most ~20 steps (one second) whatever the budget
        while not predicate():
            if time.monotonic() > deadline:
                return False
            step = min(size, left)
            if step > 0 and not self.daemon.kill_in_progress and ready():
                self.clock.advance(step)
                self.warped += step
                left -= step
            await self.daemon.evaluate_job()  # asks for one evaluation (coalesced with a running one)
            await asyncio.sleep(0.05)
        return True


def over_close(sim: Simulator, prefix: str, start: dict[tuple[str, int], float]) -> list[str]:
    """Every watchdog execution, replayed in time order, moves its position towards zero, never past it."""
    qty = dict(start)
    problems = []
    for ex in sorted(sim.executions(), key=lambda e: (e.time, e.exec_id)):
        key = (ex.account, ex.inst.con_id)
        before = qty.get(key, 0.0)
        after = before + (ex.shares if ex.side == "BOT" else -ex.shares)
        qty[key] = after
        if ex.order_ref.startswith(prefix) and (abs(after) > abs(before) + 1e-9 or after * before < 0):
            problems.append(f"{ex.account} {ex.inst.local_symbol or ex.inst.symbol}: {before:g} → {after:g}")
    return problems


def messages_of(r: Rehearsal) -> list[dict[str, Any]]:
    return [{"t": round(m.at - r.t0, 4), "kind": m.kind, "title": m.title} for m in r.plan.capture.of(r.sid)]
