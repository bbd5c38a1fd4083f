"""The lockout while TRIPPED: new risk is cancelled, orders that can only reduce a position are left alone.

Industry practice for kill switches (FIA, CME): after a kill only risk-reducing orders are allowed.
An order is *risk-reducing* when it is on the closing side of an existing position and, together with
every live closing order already on that contract (ours first, then earlier ones), it cannot take the
position past zero. A person flattening by hand after an escalation is therefore never cancelled.
Anything else (a new position, a bigger one, an order that would cross zero) is *new risk*.

New risk can only be reached by `reqGlobalCancel` (another client's order cannot be cancelled by id),
which also removes every other order of the account: the risk-reducing ones (the person is told) and
our own closing orders, which are re-placed afterwards for what they still had to close, netted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from watchdog.config.schema import KillConfig
from watchdog.errors import GatewayError, StateError
from watchdog.kill.broker import Broker
from watchdog.kill.executor import KillExecutor
from watchdog.kill.plan import (
    EPS,
    Key,
    closing_side,
    is_watchdog_order,
    order_label,
    pending_quantity,
    target_reduction,
)
from watchdog.kill.run import KillEventKind, Reporter, Run, pos_label
from watchdog.model import (
    Action,
    KillReport,
    OpenOrder,
    OrderKey,
    Position,
    Severity,
    TradingState,
    order_key,
)
from watchdog.state.audit import AuditLog
from watchdog.state.store import Latch, StateStore, position_key


class Switch(Protocol):
    """What the lockout needs of `kill.switch.KillSwitch` (a Protocol: no import cycle)."""

    store: StateStore
    audit: AuditLog
    _lock: asyncio.Lock
    _x: KillExecutor
    _r: Reporter
    _clock: Callable[[], float]

    @property
    def config(self) -> KillConfig: ...
    @property
    def broker(self) -> Broker: ...
    @property
    def busy(self) -> bool: ...
    def _new_run(
        self, action: Action, trigger: str, reason: str, scope: tuple[str, ...], dry: bool, kill_id: str = ""
    ) -> Run: ...
    def _finish(self, run: Run, *, save_last: bool) -> KillReport: ...


def risk_reducing(
    orders: Sequence[OpenOrder], positions: Sequence[Position], ours: Sequence[OpenOrder]
) -> set[OrderKey]:
    """Keys of the `orders` that can only shrink a position, even if every live closing order fills."""
    return set(classify(orders, positions, ours)[0])


def classify(
    orders: Sequence[OpenOrder], positions: Sequence[Position], ours: Sequence[OpenOrder]
) -> tuple[set[OrderKey], dict[OrderKey, str]]:
    """(keys of the risk-reducing `orders`, why each other one is new risk, as the operator reads it).

    Our own live closing orders count first, whatever their state: one in PendingCancel (the hand-off
    cancel not yet confirmed) can still fill, so a manual order that together with it would over-close
    is new risk, and the reason names our order and when to enter it again."""
    held = {p.key: p.quantity for p in positions if abs(p.quantity) > EPS}
    room: dict[Key, float] = {}
    mine: dict[Key, list[OpenOrder]] = {}
    for key, qty in held.items():
        side = closing_side(qty)
        mine[key] = [o for o in ours if (o.account, o.contract.con_id) == key and o.action == side]
        room[key] = abs(qty) - sum(pending_quantity(o) for o in mine[key])
    keep: set[OrderKey] = set()
    why: dict[OrderKey, str] = {}
    for o in sorted(orders, key=lambda o: (o.perm_id or 1 << 62, o.order_id)):  # the earliest first
        key = (o.account, o.contract.con_id)
        size = pending_quantity(o)
        label = f"{o.action} {size:g} {o.contract.label}"
        if key not in held or o.action != closing_side(held[key]):
            why[order_key(o)] = f"{label} opens or adds to a position"
        elif size <= room[key] + EPS:
            room[key] -= size
            keep.add(order_key(o))
        elif size > abs(held[key]) + EPS:
            why[order_key(o)] = f"{label} would take the position of {held[key]:g} past zero"
        elif blocking := [m for m in mine[key] if pending_quantity(m) > EPS]:
            ids = ", ".join(f"#{m.order_id}" for m in blocking)
            states = ", ".join(
                f"#{m.order_id} {m.action} {pending_quantity(m):g} [{m.state_label}]" for m in blocking
            )
            why[order_key(o)] = (
                f"{label} would over-close the position of {held[key]:g} while our order(s) {states} "
                f"can still fill; re-enter it once {ids} is confirmed cancelled or filled"
            )
        else:
            why[order_key(o)] = (
                f"{label} would over-close the position of {held[key]:g} together with earlier orders"
            )
    return keep, why


class Lockout:
    """The lockout of one KillSwitch (it shares the switch's lock: never during a kill)."""

    def __init__(self, switch: Switch) -> None:
        self._ks = switch
        self._cancelled: dict[OrderKey, float] = {}  # order key → when we cancelled it

    async def enforce(self, snapshot_orders: Sequence[OpenOrder], positions: Sequence[Position]) -> int:
        ks = self._ks
        latch = ks.store.latch()
        if latch.state is not TradingState.TRIPPED or not ks.config.lockout or ks.busy:
            return 0
        async with ks._lock:
            x = ks._x
            in_scope = x.in_scope(latch.accounts)
            prefix = ks.config.order_ref
            live = [o for o in snapshot_orders if o.is_working and in_scope(o.account)]
            ours = [o for o in live if is_watchdog_order(o, prefix)]
            others = [o for o in live if not is_watchdog_order(o, prefix)]
            reducing, why = classify(others, [p for p in positions if in_scope(p.account)], ours)
            risky = [o for o in others if order_key(o) not in reducing]
            offenders, stubborn = self._offenders(risky)
            latch = self._adopt_baseline(latch, positions)
            base = baseline(latch)
            grown = [
                p
                for p in positions
                if ks.config.lockout_flatten
                and in_scope(p.account)
                and target_reduction(p.quantity, base.get(p.key, 0.0)) > EPS
            ]
            if not offenders and not stubborn and not grown:
                return 0
            spared = [o for o in others if order_key(o) in reducing]
            mine = [o for o in ours if x.owns(o)]
            if stubborn and not offenders and not grown and not mine:  # a cancel that did not take: again
                ks.audit.record("lockout.recancel", {"orders": [order_label(o) for o in stubborn]})
                with contextlib.suppress(GatewayError, OSError, TimeoutError):
                    await ks.broker.global_cancel()
                self._mark(stubborn)
                return len(stubborn)
            offenders += stubborn
            run = ks._new_run(
                Action.CLOSE_ALL if grown else Action.CANCEL_ALL,
                "lockout",
                "new risk while tripped",
                latch.accounts,
                ks.config.dry_run,
            )
            run.persist = False  # the next poll sees it again; no pending record needed
            msg = f"lockout: {len(offenders)} new risk-increasing order(s), {len(grown)} new position(s)"
            if spared:
                accounts = ", ".join(sorted({o.account for o in spared}))
                msg += (
                    f"; the global cancel also removes {len(spared)} risk-reducing order(s) of {accounts}, "
                    "which the lockout allows: enter them again: " + "; ".join(order_label(o) for o in spared)
                )
            reasons = [why[order_key(o)] for o in offenders if order_key(o) in why]
            if reasons:
                msg += ": " + "; ".join(reasons)
            details = {
                "trigger": "lockout",
                "action": run.action.value,
                "orders": [order_label(o) for o in offenders],
                "why": reasons,
                "positions": [pos_label(p) for p in grown],
                "risk_reducing_also_cancelled": [order_label(o) for o in spared],
            }
            ks._r.step(run, "lockout.detected", KillEventKind.LOCKOUT, Severity.CRITICAL, msg, details)
            run.seen.update((order_key(o), o) for o in offenders)
            try:
                if grown:
                    await x.execute(run, base)
                else:  # no verification loop: the next poll looks again, the daemon must not stall here
                    await x.global_cancel(run, "lockout")
                    await self._replace_ours(run, mine, positions)
            except (GatewayError, OSError, TimeoutError) as exc:
                msg = f"lockout could not act: {exc}"
                failed = {"error": str(exc)}
                ks._r.step(run, "lockout.failed", KillEventKind.LOCKOUT, Severity.CRITICAL, msg, failed)
                return 0
            self._mark(offenders)
            if grown:
                ks._finish(run, save_last=False)
            else:  # the end of this run's story for `history` / `report`
                done = {"cancelled": len(offenders), "replaced_ours": len(run.close_orders)}
                ks.audit.record("lockout.done", done, kill_id=run.kill_id)
            return len(offenders)

    async def _replace_ours(self, run: Run, ours: Sequence[OpenOrder], positions: Sequence[Position]) -> None:
        """The global cancel took our own closing orders too: place again what they still had to close."""
        if not ours or run.dry:
            return
        x = self._ks._x
        keys = {order_key(o) for o in ours}
        await x.poll_orders(run, lambda found: [o for o in found if o.is_working and order_key(o) in keys])
        lost: dict[Key, float] = {}
        for o in ours:
            lost[(o.account, o.contract.con_id)] = lost.get((o.account, o.contract.con_id), 0.0) + o.remaining
        held = {p.key: p.quantity for p in positions}
        # a baseline that leaves |position| - lost open: the new orders close at most what was lost
        keep = {
            k: (1.0 if held[k] > 0 else -1.0) * max(0.0, abs(held[k]) - q)
            for k, q in lost.items()
            if k in held
        }
        plan, _ = await x._read_plan(run, keep, {})
        for need in plan.needs:
            if need.key not in keep:
                continue
            quote = await x._closing.quote_if_needed(need, set())
            for req in await x._closing.requests_for(run, need, quote, set(), {}, {}):
                await x._place(run, req)

    def _adopt_baseline(self, latch: Latch, positions: Sequence[Position]) -> Latch:
        """The kill could not read the book it kept: adopt today's, never flatten it blindly."""
        ks = self._ks
        if not ks.config.lockout_flatten or latch.baseline_known:
            return latch
        in_scope = ks._x.in_scope(latch.accounts)
        keep = {position_key(*p.key): p.quantity for p in positions if in_scope(p.account)}
        with contextlib.suppress(StateError):  # reported by the store; memory holds it anyway
            ks.store.save_latch(replace(latch, baseline=keep, baseline_known=True))
        return ks.store.latch()

    def _offenders(self, risky: Sequence[OpenOrder]) -> tuple[list[OpenOrder], list[OpenOrder]]:
        """(new orders, orders still working well after our cancel). An order cancelled a moment ago
        that a stale snapshot still lists is neither: announcing it again every poll would be noise."""
        now = self._ks._clock()
        keys = {order_key(o) for o in risky}
        for gone in [k for k in self._cancelled if k not in keys]:
            del self._cancelled[gone]
        fresh, stubborn = [], []
        for o in risky:
            at = self._cancelled.get(order_key(o))
            if at is None:
                fresh.append(o)
            elif now - at >= self._ks.config.verify_timeout:
                stubborn.append(o)
        return fresh, stubborn

    def _mark(self, orders: Sequence[OpenOrder]) -> None:
        now = self._ks._clock()
        for o in orders:
            self._cancelled[order_key(o)] = now


def baseline(latch: Latch) -> Mapping[Key, float]:
    """The positions the lockout keeps, by (account, conId)."""
    out: dict[Key, float] = {}
    for k, v in latch.baseline.items():
        account, _, con_id = k.rpartition("|")
        if con_id.isdigit():
            out[(account, int(con_id))] = v
    return out
