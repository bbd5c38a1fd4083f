"""The kill's hands: global cancel and closing orders through the Broker, each verified by fresh reads.

Every order message is paced and skipped in dry run; every broker call has a hard timeout and
turns into GatewayUnavailable when it gets no answer, so the caller can park the kill as pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from watchdog.config.schema import KillConfig
from watchdog.errors import GatewayError, GatewayUnavailable
from watchdog.kill.broker import Broker
from watchdog.kill.cancel import cancel_phase
from watchdog.kill.closing import ClosingOrders
from watchdog.kill.fills import CloseFills
from watchdog.kill.plan import (
    EPS,
    ClosePlan,
    Key,
    Pacer,
    is_watchdog_order,
    order_label,
    plan_closes,
    target_reduction,
)
from watchdog.kill.rejects import READ_ONLY_SETTING
from watchdog.kill.run import KillEventKind, Reporter, Run, need_label, pos_label
from watchdog.model import Action, CloseOrderRequest, OpenOrder, Position, Severity, order_key

T = TypeVar("T")
INFO, WARNING, CRITICAL = Severity.INFO, Severity.WARNING, Severity.CRITICAL


@dataclass(slots=True)
class CloseMemory:
    """What the close attempts of one kill learn, kept when a late fill sends the kill back to closing."""

    attempts: int = 0  # close attempts made so far (bounded by max_attempts over the whole kill)
    hopeless: dict[Key, str] = field(default_factory=dict)  # never retried: no route, a fatal reject
    covered: dict[Key, str] = field(default_factory=dict)  # a non-terminal order of another client
    reasons: dict[Key, str] = field(default_factory=dict)  # why the last attempt did not close it
    force_limit: set[Key] = field(default_factory=set)  # a market order was refused: use a limit
    open_keys: set[Key] = field(default_factory=set)  # left open by the latest close attempt


FIRST_LOOK = 0.1  # seconds from the last closing order to the first verification read


class KillExecutor:
    def __init__(
        self,
        broker: Broker,
        config: KillConfig,
        reporter: Reporter,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        accounts: Sequence[str],
        client_id: int | None,
    ) -> None:
        self.broker = broker
        self.config = config  # replaced on reload; read at each step
        self._r = self.reporter = reporter
        self._clock = self.clock = clock
        self._sleep = sleep
        self.watched = tuple(accounts)  # empty = every account the gateway reports
        self._client_id = client_id  # tells our orders from another instance's; None = by order id
        self._placed_ids: set[int] = set()
        self._closing = ClosingOrders(self)
        self._pacer = Pacer(lambda: self.config.pacing, clock, sleep)
        self.fills = CloseFills(reporter.audit, lambda: self.config.order_ref, client_id)

    async def execute(self, run: Run, baseline: Mapping[Key, float]) -> None:
        """Cancel all (verified); for close_all then close, and cancel again what appeared meanwhile."""
        run.remaining_orders = await self.cancel_phase(run, include_ours=run.action is Action.CANCEL_ALL)
        self._name_read_only(run)
        if run.action is not Action.CLOSE_ALL:
            if not run.dry:  # the positions a cancel-only kill keeps: what the lockout must not touch
                with contextlib.suppress(GatewayError):
                    run.final_positions = await self.call("positions", self.broker.positions)
            return
        if self.config.standby and not run.dry:
            await self._standby_wait(run)
        memory = CloseMemory()
        while True:
            await self._close_phase(run, baseline, memory)
            if run.dry or await self._settle(run, baseline, memory):
                break
        self._name_read_only(run)

    async def _settle(self, run: Run, baseline: Mapping[Key, float], memory: CloseMemory) -> bool:
        """The one place that decides FLAT: positions read AFTER every in-scope order is terminal.

        A closing order left alive (held, PendingCancel after a re-price) or a bot's order in
        PendingCancel can still fill, so the orders go first (cancelled and verified when nothing is
        left to close); only then are positions read, and that read alone sets `remaining_positions`
        and the lockout baseline (`final_positions`). A position it finds open (a late fill during
        the wait) sends the kill back to closing while attempts remain: returns False. True = done
        (FLAT when nothing remains, else escalate)."""
        orders = await self.call("open_orders", self.broker.open_orders)
        alive = self.targets(run, orders, include_ours=True)
        if alive and not memory.open_keys:
            alive = await self.cancel_phase(run, include_ours=True)  # nothing left to close: all go
        run.remaining_orders = alive
        # the read that counts: taken after the orders were confirmed terminal (or given up on)
        run.remaining_positions = await self._poll_positions(run, baseline, polls=0)
        skip = {*memory.hopeless, *run.foreign_keys}
        retry = [p for p in run.remaining_positions if p.key not in skip]
        if retry and not alive and memory.attempts < self.config.max_attempts:
            msg = "position(s) open after every order went terminal (a late fill); closing again"
            details = {"open": [pos_label(p) for p in retry], "attempt": memory.attempts + 1}
            self._r.step(run, "close.reopened", KillEventKind.RETRY, WARNING, msg, details)
            return False
        for p in run.remaining_positions:
            why = memory.hopeless.get(p.key) or (memory.covered.get(p.key) if alive else None)
            why = why or memory.reasons.get(p.key)
            if why is None and p.key in run.foreign_keys:
                why = "left to the other watchdog instance working on it"
            run.notes.append(
                f"position {pos_label(p)} not closed: {why or f'open after {run.attempts} attempt(s)'}"
            )
        return True

    def _name_read_only(self, run: Run) -> None:
        """A read-only API is the cause of every order it left working: say so in the escalation."""
        if run.dry or self.broker.write_access() is not False:
            return
        if (run.remaining_orders or run.remaining_positions) and READ_ONLY_SETTING not in run.notes:
            run.notes.append(READ_ONLY_SETTING)

    # ------------------------------------------------------------------ cancel
    async def cancel_phase(self, run: Run, *, include_ours: bool) -> list[OpenOrder]:
        """Global cancel, confirmed by fresh reads; again (plus cancels of our own) up to max_attempts."""
        return await cancel_phase(self, run, include_ours=include_ours)

    async def poll_orders(
        self, run: Run, targets: Callable[[Sequence[OpenOrder]], list[OpenOrder]]
    ) -> list[OpenOrder]:
        current: list[OpenOrder] = []
        for i in range(self._polls() + 1):
            if i:
                await self._sleep(self._poll_interval())
            orders = await self.call("open_orders", self.broker.open_orders)
            run.live_orders = self.targets(run, orders, include_ours=True)
            current = targets(orders)
            run.seen.update((order_key(o), o) for o in current)
            if not current:
                break
        return current

    # ------------------------------------------------------------------ close
    async def _standby_wait(self, run: Run) -> None:
        """A standby closes only after the grace, and never a position another instance works on."""
        grace = self.config.standby_grace
        msg = f"standby: waiting {grace:g}s before closing"
        self._r.step(run, "close.standby_wait", KillEventKind.VERIFIED, INFO, msg, {"grace": grace})
        await self._sleep(grace)
        self._note_foreign(run, await self.call("open_orders", self.broker.open_orders))
        await self._sleep(grace)

    async def _close_phase(self, run: Run, baseline: Mapping[Key, float], memory: CloseMemory) -> None:
        """Close attempts until the positions verify closed or `max_attempts` (counted over the kill)."""
        hopeless, reasons, force_limit = memory.hopeless, memory.reasons, memory.force_limit
        while memory.attempts < self.config.max_attempts:
            memory.attempts += 1
            attempt = memory.attempts
            run.attempts = max(run.attempts, attempt)
            plan, after = await self._read_plan(run, baseline, hopeless)
            memory.open_keys = set(plan.open_keys)
            if not plan.open_keys - hopeless.keys():
                break
            memory.covered = {  # the latest round's word: an order that went terminal no longer explains it
                (o.account, o.contract.con_id): f"order {order_label(o)} of another client can still "
                "fill; the close was sized as if it does"
                for o in plan.foreign
            }
            cancels = list(plan.cancels)
            if attempt > 1:  # re-price: our own limits that did not fill go, a fresh one replaces them
                cancels += [
                    (o, "re-price: limit not filled") for o in self._stale_limits(after, plan, cancels)
                ]
            if cancels:
                await self._cancel_ours(run, cancels)
                if not run.dry:
                    plan, after = await self._read_plan(run, baseline, hopeless)
            msg = f"close attempt {attempt}: {len(plan.needs)} closing order(s)"
            details = {"attempt": attempt, "needs": [need_label(n) for n in plan.needs]}
            self._r.step(run, "close.plan", KillEventKind.VERIFIED, INFO, msg, details)
            placed: list[tuple[int, CloseOrderRequest]] = []
            quotes = await self._closing.quotes_for(plan.needs, force_limit)
            if quotes and not run.dry:  # time passed while quoting: net against a fresh read
                plan, after = await self._read_plan(run, baseline, hopeless)
            for need in plan.needs:
                quote = (
                    quotes[need.key]
                    if need.key in quotes
                    else await self._closing.quote_if_needed(need, force_limit)
                )
                for req in await self._closing.requests_for(run, need, quote, force_limit, hopeless, reasons):
                    oid = await self._place(run, req)
                    if oid is not None:
                        placed.append((oid, req))
            if run.dry:
                return
            if not placed and not plan.open_keys - hopeless.keys():
                break  # nothing was sent and nothing can be: escalate now, not after a verify wait
            remaining = await self._poll_positions(run, baseline)
            memory.open_keys = {p.key for p in remaining}
            msg = f"close attempt {attempt}: {len(remaining)} position(s) still open"
            details = {"attempt": attempt, "open": [pos_label(p) for p in remaining]}
            self._r.step(
                run, "close.verify", KillEventKind.VERIFIED, WARNING if remaining else INFO, msg, details
            )
            if not remaining:
                return
            self._closing.check_rejects(run, placed, hopeless, reasons, force_limit)

    def _stale_limits(
        self, orders: Sequence[OpenOrder], plan: ClosePlan, cancels: Sequence[tuple[OpenOrder, str]]
    ) -> list[OpenOrder]:
        going = {order_key(o) for o, _ in cancels}
        return [
            o
            for o in orders
            if o.is_working
            and o.order_type == "LMT"
            and self.owns(o)
            and is_watchdog_order(o, self.config.order_ref)
            and (o.account, o.contract.con_id) in plan.open_keys
            and order_key(o) not in going
        ]

    async def _read_plan(
        self, run: Run, baseline: Mapping[Key, float], hopeless: Mapping[Key, str]
    ) -> tuple[ClosePlan, list[OpenOrder]]:
        # orders, then positions, then orders again: this order of reads is what makes netting safe
        before = await self.call("open_orders", self.broker.open_orders)
        positions = await self.call("positions", self.broker.positions)
        after = await self.call("open_orders", self.broker.open_orders)
        run.final_positions = positions
        run.live_orders = self.targets(run, after, include_ours=True)
        self._note_foreign(run, [*before, *after])
        if run.dry:  # nothing was cancelled: plan as if the global cancel had removed the others' orders
            prefix = self.config.order_ref
            before, after = ([o for o in x if is_watchdog_order(o, prefix)] for x in (before, after))
        plan = plan_closes(
            positions,
            before,
            after,
            prefix=self.config.order_ref,
            in_scope=self.in_scope(run.scope),
            baseline=baseline,
            skip={*hopeless, *run.foreign_keys},
        )
        return plan, after

    def _note_foreign(self, run: Run, orders: Sequence[OpenOrder]) -> None:
        if self.config.standby:
            prefix = self.config.order_ref
            run.foreign_keys.update(
                (o.account, o.contract.con_id)
                for o in orders
                if o.is_working and is_watchdog_order(o, prefix) and not self.owns(o)
            )

    async def _poll_positions(
        self, run: Run, baseline: Mapping[Key, float], *, polls: int | None = None
    ) -> list[Position]:
        in_scope = self.in_scope(run.scope)
        open_: list[Position] = []
        rounds = self._polls() if polls is None else polls
        for i in range(rounds + 1):
            # market orders usually fill within milliseconds: look soon, then at the poll interval
            await self._sleep(min(FIRST_LOOK, self._poll_interval()) if i == 0 else self._poll_interval())
            positions = await self.call("positions", self.broker.positions)
            run.final_positions = positions
            self.record_fills(run)
            open_ = [
                p
                for p in positions
                if in_scope(p.account) and target_reduction(p.quantity, baseline.get(p.key, 0.0)) > EPS
            ]
            if not open_:
                break
        return open_

    # ------------------------------------------------------------------ messages to the broker
    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.config.verify_timeout):
                return await fn()
        except TimeoutError as exc:
            raise GatewayUnavailable(f"{what} got no answer in {self.config.verify_timeout:g}s") from exc

    async def global_cancel(self, run: Run, why: str) -> None:
        if not run.dry:
            await self._pacer.acquire()
            await self.call("global_cancel", self.broker.global_cancel)
        msg = "global cancel " + ("(dry run: not sent)" if run.dry else "sent")
        self._r.step(
            run, "cancel.global", KillEventKind.CANCEL_SENT, INFO, msg, {"why": why, "sent": not run.dry}
        )

    async def cancel_order(self, run: Run, order: OpenOrder, why: str) -> None:
        if not run.dry:
            await self._pacer.acquire()
            await self.call("cancel_order", lambda: self.broker.cancel_order(order.order_id))
        details = {"order": order_label(order), "order_id": order.order_id, "why": why, "sent": not run.dry}
        msg = f"cancel {order_label(order)}: {why}"
        self._r.step(run, "cancel.order", KillEventKind.CANCEL_SENT, INFO, msg, details)

    async def _cancel_ours(self, run: Run, cancels: Sequence[tuple[OpenOrder, str]]) -> None:
        """Our own orders one by one; another instance's closing order can only go by a global cancel."""
        foreign = False
        for order, why in cancels:
            if self.owns(order):
                await self.cancel_order(run, order, why)
            else:
                foreign = True
        if foreign:
            await self.global_cancel(run, "a closing order of another instance must go")
        if not run.dry:
            keys = {order_key(o) for o, _ in cancels}
            await self.poll_orders(
                run, lambda orders: [o for o in orders if o.is_working and order_key(o) in keys]
            )

    async def _place(self, run: Run, req: CloseOrderRequest) -> int | None:
        oid: int | None = None
        if not run.dry:
            await self._pacer.acquire()
            oid = await self.call("place_close_order", lambda: self.broker.place_close_order(req))
            self._placed_ids.add(oid)
            self.fills.expect(oid, run.kill_id, req.contract)
        run.close_orders.append(req)
        run.close_order_ids.append(oid)
        price = f"LMT {req.limit_price:g}" if req.limit_price is not None else "MKT"
        msg = f"{req.action} {req.quantity:g} {req.contract.label} {req.account} {price} on {req.exchange} "
        msg += "(dry run: not sent)" if run.dry else f"sent as order {oid}"
        details = {"order_id": oid, "request": req, "sent": not run.dry}
        self._r.step(run, "close.order", KillEventKind.CLOSE_SENT, INFO, msg, details)
        return oid

    def record_fills(self, run: Run) -> None:
        """Audit the executions of this kill's closing orders heard so far (`close.fill`, no fsync, no
        notification): local, no round trip, so it costs the kill nothing."""
        ids = [oid for oid in run.close_order_ids if oid is not None]
        if not ids:
            return
        try:
            fills = self.broker.order_fills(ids)
        except GatewayError:  # the Protocol says it never raises; a broken broker must not stop the kill
            return
        for f in fills:
            self.fills.note(f, run.kill_id)

    # ------------------------------------------------------------------ helpers
    def owns(self, order: OpenOrder) -> bool:
        if self._client_id is not None:
            return order.client_id == self._client_id
        return order.order_id in self._placed_ids

    def targets(self, run: Run, orders: Sequence[OpenOrder], *, include_ours: bool) -> list[OpenOrder]:
        """Working orders in scope a cancel must remove (our closing orders only when `include_ours`)."""
        in_scope = self.in_scope(run.scope)
        prefix = self.config.order_ref
        return [
            o
            for o in orders
            if o.is_working and in_scope(o.account) and (include_ours or not is_watchdog_order(o, prefix))
        ]

    def in_scope(self, scope: Sequence[str]) -> Callable[[str], bool]:
        accounts = frozenset(scope or self.watched)
        return (lambda a: a in accounts) if accounts else (lambda a: True)

    def _poll_interval(self) -> float:
        return min(0.5, self.config.verify_timeout / 4)

    def _polls(self) -> int:
        # counted, not timed: a wall clock stepping backwards cannot stretch a kill
        return max(1, math.ceil(self.config.verify_timeout / self._poll_interval()))
