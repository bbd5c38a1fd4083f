"""Kill readiness: a close_all planned against the live book by the kill's own planner, sending nothing.

Pure: a Snapshot plus the planner's inputs (each contract's details, the quote a kill would price from,
the fallback calendar, what is known about write access) in, a `model.Readiness` out. The netting
(`plan.plan_closes`) and the closing orders (`pricing.plan_close`: hours, tick ladder, whole units,
price age, precaution slices) are the very functions a kill calls, so what readiness says a kill would
send is what a kill sends given the same book and the same quotes.

What it adds on top of the planner are the conditions a kill meets on the way but cannot plan
around: a read-only API, a gateway that is down, a book read too long ago, a dry run, and, where only
the built-in table judged the hours, a market that is outside its regular session (a limit order may
rest until it opens).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchdog import market_hours
from watchdog.config.schema import KillConfig
from watchdog.kill.plan import CloseNeed, closing_side, is_watchdog_order, pending_quantity, plan_closes
from watchdog.kill.pricing import contract_session, plan_close
from watchdog.model import (
    CloseOrderRequest,
    ContractDetails,
    ContractRef,
    OpenOrder,
    Position,
    Quote,
    Snapshot,
)
from watchdog.readiness_model import AccountReadiness, PlanProblem, PlanReason, PositionPlan, Readiness

MAX_LISTED = 500  # positions written to readiness.json per account: the file stays small
# the planner's bounded refusal labels (`pricing.PROBLEMS`) as readiness reasons
PROBLEM_REASONS = {
    "no_route": PlanReason.UNKNOWN_CONTRACT,
    "not_closable": PlanReason.NOT_CLOSABLE,
    "fraction": PlanReason.FRACTIONAL_REMAINDER,
    "market_closed": PlanReason.MARKET_CLOSED,
    "stale_price": PlanReason.PRICE_STALE,
    "no_price": PlanReason.NO_PRICE,
    "bad_price": PlanReason.NO_PRICE,
    "slice_limit": PlanReason.PRECAUTION_EXCEEDED,
}
SESSION_RECHECK = 3600.0  # seconds a "no change within the horizon" answer is kept
CHECK_EVERY = 256  # positions planned between two looks at `abandon`


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteAccess:
    """What is known about the API's write access (read-only mode refuses every order: error 321)."""

    allowed: bool | None = None  # None = not proven either way
    as_of: float | None = None


class MarketSessions:
    """Open now, and until when, per contract, from a calendar `is_open(sec_type, epoch)`.

    The next change costs a few hundred calendar calls, so it is kept until it passes; the open/closed
    answer itself is asked afresh every time (the calendar may be swapped: the demo, tests).
    """

    def __init__(self, calendar: Callable[[], Callable[[str, float], bool]]) -> None:
        self._calendar = calendar
        self._for: object = None  # the calendar the cached answers came from
        self._until: dict[str, tuple[bool, float | None, float]] = {}  # sec type → (open, until, valid to)

    def regular(self, sec_type: str, now: float) -> bool:
        """The calendar's answer alone: the planner's fallback when a contract's own hours are unknown."""
        return self._calendar()(sec_type, now)

    def __call__(self, contract: ContractRef, now: float) -> tuple[bool, float | None]:
        is_open = self._calendar()
        if is_open is not self._for:  # swapped (the demo, tests): nothing cached holds any more
            self._for, self._until = is_open, {}
        sec_type = contract.sec_type.upper()
        open_now = is_open(sec_type, now)
        key = sec_type
        hit = self._until.get(key)
        if hit is not None:
            was_open, until, valid_to = hit
            if was_open == open_now and now < valid_to:
                return open_now, until
        until = market_hours.next_change(lambda t: is_open(sec_type, t), now)
        self._until[key] = (open_now, until, until if until is not None else now + SESSION_RECHECK)
        return open_now, until


def plan_readiness(
    snapshot: Snapshot,
    config: KillConfig,
    *,
    now: float,
    accounts: Sequence[str],
    table: MarketSessions,
    details: Callable[[Position], ContractDetails | None],
    quote: Callable[[Position], Quote | None],
    write_access: Mapping[str, WriteAccess] | None = None,
    stale_after: float,
    source: str = "daemon",
    abandon: Callable[[], bool] | None = None,
) -> Readiness | None:
    """Plan a close_all of every account in `accounts` (empty = every account the snapshot holds).

    `details` and `quote` give what the kill would plan a position with (contract details, the quote
    of its first attempt); `table` is the calendar the planner falls back to where a contract's own
    hours do not cover now. `stale_after` (seconds) bounds the age of the book. `abandon` is asked
    every `CHECK_EVERY` positions (the daemon plans off the event loop and gives way to a kill that
    starts meanwhile); when it says so, the plan stops and None is returned.
    """
    scope = tuple(accounts) or tuple(sorted({*snapshot.accounts, *(p.account for p in snapshot.positions)}))
    in_scope = frozenset(scope)
    # as the close phase sees the book: after the kill's cancel phase, which cancels (and verifies)
    # every other working order first, only our own closing orders are left to net against
    orders = tuple(o for o in snapshot.open_orders if is_watchdog_order(o, config.order_ref))
    plan = plan_closes(
        snapshot.positions,
        orders,
        orders,
        prefix=config.order_ref,
        in_scope=in_scope.__contains__,
        baseline={},
    )
    needs = {n.key: n for n in plan.needs}
    held = {(o.account, o.contract.con_id) for o, _ in plan.cancels}
    working: dict[tuple[str, int], list[OpenOrder]] = {}
    for o in orders:
        if o.is_working and is_watchdog_order(o, config.order_ref):
            working.setdefault((o.account, o.contract.con_id), []).append(o)
    by_account: dict[str, list[PositionPlan]] = {a: [] for a in scope}
    for i, p in enumerate(snapshot.positions):
        if abandon is not None and i % CHECK_EVERY == 0 and abandon():
            return None
        if p.account in in_scope and abs(p.quantity) > 0:
            side = closing_side(p.quantity)
            pending = sum(pending_quantity(o) for o in working.get(p.key, ()) if o.action.upper() == side)
            inputs = _Inputs(details(p), quote(p), pending, p.key in held)
            by_account[p.account].append(_position_plan(p, needs.get(p.key), inputs, config, now, table))
    if abandon is not None and abandon():
        return None
    access = write_access or {}
    result = tuple(
        _account(a, by_account[a], snapshot, config, now, access.get(a, WriteAccess()), stale_after)
        for a in scope
    )
    return Readiness(planned_at=now, accounts=result, dry_run=config.dry_run, source=source)


@dataclass(frozen=True, slots=True)
class _Inputs:
    details: ContractDetails | None
    quote: Quote | None
    pending: float  # our working closing quantity on it
    held: bool  # our own closing order must be cancelled first: the kill re-plans after it


def session_change(details: ContractDetails, now: float) -> float | None:
    """Epoch of the next edge of the contract's own sessions after `now` (a session opens or closes)."""
    edges = [t for a, b in (*details.liquid_hours, *details.trading_hours) for t in (a, b) if t > now]
    return min(edges) if edges else None


def _position_plan(
    p: Position,
    need: CloseNeed | None,
    inputs: _Inputs,
    config: KillConfig,
    now: float,
    table: MarketSessions,
) -> PositionPlan:
    session = contract_session(inputs.details, now)
    from_table = session is None
    if session is None:
        regular, until = table(p.contract, now)
        # the table knows extended hours for US stocks only: US options have no extended session
        session = market_hours.table_session(p.contract.sec_type, regular, now)
    else:
        until = session_change(inputs.details, now) if inputs.details is not None else None
    problems: list[PlanProblem] = []
    orders: tuple[CloseOrderRequest, ...] = ()
    pending = math.nan if inputs.held else inputs.pending
    if need is not None:
        pending = need.pending
        planned = plan_close(
            need, inputs.details, inputs.quote, now, config, order_ref=config.order_ref,
            fallback_regular=table.regular,
        )  # fmt: skip
        orders = planned.orders
        if planned.refusal:
            reason = PROBLEM_REASONS.get(planned.problem, PlanReason.UNKNOWN_CONTRACT)
            problems.append(PlanProblem(reason=reason, detail=planned.refusal))
        if planned.manual and planned.manual != planned.refusal:
            problems.append(PlanProblem(reason=PlanReason.FRACTIONAL_REMAINDER, detail=planned.manual))
    if (
        from_table
        and session != "regular"
        and not any(x.reason in (PlanReason.NOT_CLOSABLE, PlanReason.MARKET_CLOSED) for x in problems)
    ):
        when = f"; regular hours from {_when(until)}" if until is not None else ""
        problems.append(
            PlanProblem(
                reason=PlanReason.MARKET_CLOSED,
                detail=f"outside regular hours for {p.contract.sec_type} by the built-in table (the contract "
                f"details give no hours for now){when}: a limit order with outsideRth may rest unfilled",
            )
        )
    return PositionPlan(
        account=p.account,
        contract=p.contract,
        quantity=p.quantity,
        pending=pending,
        orders=orders,
        session=session,
        hours_from_table=from_table,
        market_until=until,
        quote=inputs.quote,
        problems=tuple(problems),
    )


def _account(
    account: str,
    positions: list[PositionPlan],
    snapshot: Snapshot,
    config: KillConfig,
    now: float,
    access: WriteAccess,
    stale_after: float,
) -> AccountReadiness:
    problems: list[PlanProblem] = []
    if access.allowed is False:
        problems.append(
            PlanProblem(
                reason=PlanReason.READ_ONLY_API,
                detail="the API is in read-only mode: every cancel and closing order would be refused "
                "(TWS/Gateway: Configure → API → Settings → untick 'Read-Only API')",
            )
        )
    as_of = snapshot.positions_as_of
    fresh = snapshot.gateway.connected and as_of is not None and now - as_of <= stale_after
    if not snapshot.gateway.connected:
        problems.append(
            PlanProblem(
                reason=PlanReason.GATEWAY_DOWN,
                detail="the gateway is not connected: a kill now would be kept pending until it is back",
            )
        )
    elif not fresh:
        age = "never read" if as_of is None else f"read {now - as_of:.0f}s ago"
        problems.append(
            PlanProblem(
                reason=PlanReason.DATA_STALE,
                detail=f"positions {age} (bound {stale_after:g}s): this plan may not match the book",
            )
        )
    if config.dry_run:
        problems.append(
            PlanProblem(reason=PlanReason.DRY_RUN, detail="kill.dry_run is on: a kill would send nothing")
        )
    positions.sort(key=lambda x: (not x.problems, x.contract.label))  # problems first
    return AccountReadiness(
        account=account,
        positions=tuple(positions),
        problems=tuple(problems),
        write_access=access.allowed,
        write_access_as_of=access.as_of,
        data_as_of=as_of,
        data_fresh=fresh,
    )


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def readiness_json(
    readiness: Readiness, *, max_listed: int = MAX_LISTED, interval: float | None = None
) -> dict[str, Any]:
    """The plain-JSON form written to `readiness.json` (version 1) and printed by `plan --json`.

    `interval` is `kill.readiness_interval` (seconds) the daemon plans at, so `plan` can tell a plan
    that missed its turns; None for a one-off look.

    At most `max_listed` positions per account are listed (problems first); `omitted` counts the rest,
    and the per-reason counts always cover every position.
    """
    return {
        "version": 1,
        "planned_at": readiness.planned_at,
        "source": readiness.source,
        "dry_run": readiness.dry_run,
        "ready": readiness.ready,
        "interval": interval,
        "accounts": [_account_json(a, max_listed) for a in readiness.accounts],
    }


def _account_json(a: AccountReadiness, max_listed: int) -> dict[str, Any]:
    return {
        "account": a.account,
        "ready": a.ready,
        "write_access": a.write_access,
        "write_access_as_of": a.write_access_as_of,
        "data_as_of": a.data_as_of,
        "data_fresh": a.data_fresh,
        "problem_counts": {
            r.value: n for r, n in sorted(a.problem_counts().items(), key=lambda x: x[0].value)
        },
        "problems": _problems_json(a.problems),
        "positions": [_position_json(p) for p in a.positions[:max_listed]],
        "omitted": max(0, len(a.positions) - max_listed),
    }


def _problems_json(problems: Iterable[PlanProblem]) -> list[dict[str, str]]:
    return [{"reason": p.reason.value, "detail": p.detail} for p in problems]


def _position_json(p: PositionPlan) -> dict[str, Any]:
    c = p.contract
    return {
        "con_id": c.con_id,
        "symbol": c.label,
        "sec_type": c.sec_type,
        "quantity": p.quantity,
        "pending": None if math.isnan(p.pending) else p.pending,
        "would_close": not p.problems,
        "orders": [
            {
                "action": o.action,
                "quantity": o.quantity,
                "order_type": o.order_type,
                "limit_price": o.limit_price,
                "exchange": o.exchange,
                "outside_rth": o.outside_rth,
            }
            for o in p.orders
        ],
        "session": p.session,
        "hours_from_table": p.hours_from_table,
        "market_open": p.market_open,
        "market_until": p.market_until,
        "price": p.quote.price if p.quote else None,
        "price_source": (("delayed " if p.quote.delayed else "") + p.quote.source) if p.quote else "",
        "price_as_of": p.quote.as_of if p.quote else None,
        "problems": _problems_json(p.problems),
    }
