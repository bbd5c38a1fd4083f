"""Kill readiness in the daemon: plan a close_all against the live book on a timer and after a reconnect.

The plan itself is pure (`watchdog.kill.readiness`). This module gathers its inputs on the event loop
from the gateway's caches (no request goes out for it: the snapshot, one pass over the prices), then
plans and encodes `readiness.json` in a worker thread, so a large book never holds up the loop (a
heartbeat, a breach, a kill). Back on the loop it writes the file, sets the metrics and tells people
when readiness changed. It never starts while a kill runs, and a plan in flight gives way (is
abandoned) as soon as one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from watchdog.config.schema import Config
from watchdog.daemon.wiring import Components
from watchdog.errors import GatewayError, StateError
from watchdog.gateway.client import Gateway
from watchdog.kill.plan import closing_side, route_exchange
from watchdog.kill.pricing import contract_session
from watchdog.kill.readiness import MarketSessions, WriteAccess, plan_readiness, readiness_json
from watchdog.model import ContractDetails, Position, Quote, Snapshot
from watchdog.outputs.readiness_notice import ReadinessNotices
from watchdog.readiness_model import PlanReason, Readiness

log = logging.getLogger("watchdog.daemon.readiness")
MAX_QUOTES = 10  # market data snapshots per plan at most (reads, but they share the client's 45/s)


def stale_after(config: Config) -> float:
    """Seconds after which the book a plan is based on counts as stale: three missed position polls."""
    return 3 * config.polling.positions + config.polling.timeout


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What the planner needs beyond the snapshot, gathered on the event loop."""

    snapshot: Snapshot
    details: Mapping[int, ContractDetails | None]  # by conId
    quotes: Mapping[tuple[str, int], Quote | None]
    write_access: WriteAccess
    accounts: tuple[str, ...]
    now: float


async def gather_inputs(
    gateway: Gateway, config: Config, sessions: MarketSessions, now: float, snapshot: Snapshot | None = None
) -> PlanInputs:
    """The snapshot, each contract's cached details, and the quote each position's first attempt would
    price from: for a position the kill would quote (outside regular hours, or sized by
    `kill.max_order_value`) the same `Gateway.quote` the kill calls (a market data snapshot, at most
    `MAX_QUOTES` per plan), for the others the cached portfolio mark. No order message is sent."""
    snap = snapshot if snapshot is not None else gateway.snapshot()
    details = {p.contract.con_id: gateway.contract_details(p) for p in snap.positions}
    quotes: dict[tuple[str, int], Quote | None] = {}
    wanted: list[Position] = []
    for p in snap.positions:
        # once MAX_QUOTES are wanted the rest take the mark: no session look-ups on the loop for them
        if len(wanted) < MAX_QUOTES and _kill_would_quote(
            p, details[p.contract.con_id], config, sessions, now
        ):
            wanted.append(p)
        else:
            quotes[p.key] = gateway.quotes.mark(p.key)
    asked = await asyncio.gather(
        *(gateway.quote(p, route_exchange(p.contract) or "", closing_side(p.quantity)) for p in wanted),
        return_exceptions=True,
    )
    for p, q in zip(wanted, asked, strict=True):
        quotes[p.key] = q if isinstance(q, Quote) else gateway.quotes.mark(p.key)
    await _prove_write_access(gateway, config, now)
    access = WriteAccess(allowed=gateway.write_access(), as_of=gateway.write_access_as_of())
    accounts = gateway.watched_accounts or config.gateway.accounts
    return PlanInputs(snap, details, quotes, access, tuple(accounts), now)


async def _prove_write_access(gateway: Gateway, config: Config, now: float) -> None:
    """A proof older than `kill.readiness_interval` is renewed first (the heartbeat's own probe runs
    every `write_access.INTERVAL`, 5 min): Read-Only API ticked while connected shows in the next plan.
    The probe is a cancel of an id never used (`gateway.write_access`); a read-only look skips it."""
    as_of = gateway.write_access_as_of()
    if gateway.read_only or not gateway.status().connected:
        return
    if as_of is not None and now - as_of < config.kill.readiness_interval:
        return
    with contextlib.suppress(GatewayError):  # no answer leaves the state as it was
        await gateway.check_write_access()


def _kill_would_quote(
    p: Position, details: ContractDetails | None, config: Config, sessions: MarketSessions, now: float
) -> bool:
    """The kill's own condition for asking a quote (`kill.closing`): a limit order, or slices by value."""
    if config.kill.max_order_value is not None:
        return True
    session = contract_session(details, now)
    return not (sessions.regular(p.contract.sec_type, now) if session is None else session == "regular")


def plan_from_inputs(
    inputs: PlanInputs,
    config: Config,
    sessions: MarketSessions,
    *,
    source: str = "daemon",
    abandon: Callable[[], bool] | None = None,
) -> Readiness | None:
    """The pure plan over gathered inputs (any thread)."""
    return plan_readiness(
        inputs.snapshot,
        config.kill,
        now=inputs.now,
        accounts=inputs.accounts,
        table=sessions,
        details=lambda p: inputs.details.get(p.contract.con_id),
        quote=lambda p: inputs.quotes.get(p.key),
        write_access={a: inputs.write_access for a in inputs.accounts},
        stale_after=stale_after(config),
        source=source,
        abandon=abandon,
    )


class ReadinessRunner:
    def __init__(self, c: Components, kill_running: Callable[[], bool]) -> None:
        self._c = c
        self._kill_running = kill_running
        self._sessions = MarketSessions(lambda: c.gateway.market_hours)  # used by the worker thread only
        self._notices = ReadinessNotices(c.notifier.notify, lambda: c.notifier.ctx)
        self.last: Readiness | None = None
        self._after_connect: float | None = None  # plan once the book was read after this epoch
        self._logged: set[tuple[str, PlanReason]] = set()
        self._task: asyncio.Task[Readiness | None] | None = None  # the plan in flight, if any

    def on_connect(self, now: float) -> None:
        """After a (re)connect, or a kill's end (the book changed): plan again as soon as positions
        have been read after `now`."""
        self._after_connect = now

    def _awaiting_reads(self, config: Config) -> bool:
        """Just reconnected and the positions not read again yet: a plan now would judge the book
        from before the outage (data_stale for a restart the gateway-down notification owns). Only
        for as long as the stale bound: reads that never come are data_stale again."""
        due = self._after_connect
        c = self._c
        return due is not None and c.gateway.status().connected and c.clock() - due < stale_after(config)

    def after_cycle(self, snapshot: Snapshot, config: Config) -> None:
        """Called after each evaluation: starts the plan due after a reconnect once the book is fresh."""
        due = self._after_connect
        as_of = snapshot.positions_as_of
        if due is None or not snapshot.gateway.connected or as_of is None or as_of < due:
            return
        if self._kill_running() or (self._task is not None and not self._task.done()):
            return
        self._after_connect = None
        self._task = asyncio.ensure_future(self._run(config, snapshot))

    async def run_once(self, config: Config) -> Readiness | None:
        """The timer's turn: plan now (or wait for the plan in flight). Never raises into the caller."""
        if self._task is None or self._task.done():
            if self._kill_running():
                return None  # the book is moving and the kill has the loop: the next turn plans
            if self._awaiting_reads(config):
                return None  # after_cycle plans once the new session's positions are in
            self._task = asyncio.ensure_future(self._run(config, None))
        return await asyncio.shield(self._task)

    async def _run(self, config: Config, snapshot: Snapshot | None) -> Readiness | None:
        c = self._c
        try:
            inputs = await gather_inputs(c.gateway, config, self._sessions, c.clock(), snapshot)
            if self._kill_running():
                return None  # a kill started while the quotes came in: it has the loop now

            def work() -> tuple[Readiness, bytes] | None:
                r = plan_from_inputs(inputs, config, self._sessions, abandon=self._kill_running)
                if r is None:
                    return None
                data = readiness_json(r, interval=config.kill.readiness_interval)
                return r, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

            done = await asyncio.to_thread(work)
            if done is None:
                log.debug("kill readiness plan abandoned: a kill started")
                return None
            readiness, data = done
            self.last = readiness
            with contextlib.suppress(StateError):  # reported by the store; the next plan tries again
                c.store.write_readiness(data)
            c.metrics.readiness.observe(readiness)
            self._notices.observe(readiness)
        except Exception:  # a bug in readiness must never stop the watch
            log.exception("kill readiness plan failed")
            return None
        self._log_change(readiness)
        return readiness

    def _log_change(self, readiness: Readiness) -> None:
        reasons = {(a.account, r) for a in readiness.accounts for r in a.problem_counts()}
        if reasons != self._logged:
            self._logged = reasons
            text = "; ".join(sorted(f"{a} {r.value}" for a, r in reasons)) or "every position would close"
            log.info("kill readiness changed: %s", text)

    async def stop(self) -> None:
        """Let a plan in flight end (a worker thread cannot be interrupted; it is bounded by the book)."""
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 5)
