"""From netted needs to closing orders, and from the gateway's refusals to what happens next.

Each need is planned by `kill.pricing.plan_close` with a fresh quote per attempt; a refusal is read by
`kill.rejects.classify`: read-only, precautions, fractions and validation errors escalate at once
with the TWS setting to change, and an order the gateway refused is never re-sent unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from watchdog.config.schema import KillConfig
from watchdog.kill.broker import Broker
from watchdog.kill.plan import CloseNeed, Key, route_exchange
from watchdog.kill.pricing import contract_session, plan_close
from watchdog.kill.rejects import classify, explain
from watchdog.kill.run import KillEventKind, Reporter, Run, pos_label
from watchdog.model import CloseOrderRequest, Quote, Severity


class ClosingHost(Protocol):
    """What ClosingOrders uses of the executor (kept as a Protocol: no import cycle)."""

    broker: Broker
    config: KillConfig
    reporter: Reporter

    def clock(self) -> float: ...

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T: ...


INFO, WARNING, CRITICAL = Severity.INFO, Severity.WARNING, Severity.CRITICAL
Shape = tuple[str, float, float | None]
T = TypeVar("T")
FRACTION_ONLY = "only a fractional quantity is left, which needs a manual close (see the note above)"


class ClosingOrders:
    """Per kill switch: the orders the gateway refused and the fractions already reported."""

    def __init__(self, executor: ClosingHost) -> None:
        self._x = executor
        self._refused: dict[Key, set[Shape]] = {}
        self._manual_said: set[Key] = set()
        self._limits: dict[Key, int] = {}  # limit orders sent per key: each one widens the collar
        self._run = ""

    def _start(self, run: Run) -> None:
        """What was refused or said belongs to one kill: a new kill starts clean."""
        if run.kill_id != self._run:
            self._run = run.kill_id
            self._refused.clear()
            self._manual_said.clear()
            self._limits.clear()

    def _say(
        self,
        run: Run,
        event: str,
        kind: KillEventKind,
        severity: Severity,
        msg: str,
        details: Mapping[str, object],
    ) -> None:
        self._x.reporter.step(run, event, kind, severity, msg, details)

    def _needs_quote(self, need: CloseNeed, force_limit: set[Key], now: float) -> bool:
        """A limit order, or a market order sized under kill.max_order_value, needs a price."""
        pos = need.position
        session = contract_session(self._x.broker.contract_details(pos), now)
        if session == "closed":
            return False  # nothing will be sent
        regular = self._x.broker.is_regular_hours(pos, now) if session is None else session == "regular"
        return need.key in force_limit or not regular or self._x.config.max_order_value is not None

    async def quotes_for(self, needs: Sequence[CloseNeed], force_limit: set[Key]) -> dict[Key, Quote | None]:
        """Fresh quotes for the needs that need one, all before any order of this round goes out (the
        caller then re-reads the book, so the time spent quoting never leaves the netting stale)."""
        now = self._x.clock()
        out: dict[Key, Quote | None] = {}
        for need in needs:
            if self._needs_quote(need, force_limit, now):
                out[need.key] = await self._quote(need)
        return out

    async def quote_if_needed(self, need: CloseNeed, force_limit: set[Key]) -> Quote | None:
        return await self._quote(need) if self._needs_quote(need, force_limit, self._x.clock()) else None

    async def _quote(self, need: CloseNeed) -> Quote | None:
        pos = need.position
        exchange = route_exchange(pos.contract) or ""
        return await self._x.call("quote", lambda: self._x.broker.quote(pos, exchange, need.action))

    async def requests_for(
        self,
        run: Run,
        need: CloseNeed,
        quote: Quote | None,
        force_limit: set[Key],
        hopeless: dict[Key, str],
        reasons: dict[Key, str],
    ) -> list[CloseOrderRequest]:
        """Plan one need with `kill.pricing.plan_close` (with this attempt's quote); report at once
        what cannot be closed and why. The collar counts this contract's limit orders in this kill,
        so a market order refused on attempt 2 is followed by a limit at the first collar."""
        self._start(run)
        pos = need.position
        limit = need.key in force_limit
        now = self._x.clock()
        details = self._x.broker.contract_details(pos)
        planned = plan_close(
            need,
            details,
            quote,
            now,
            self._x.config,
            attempt=self._limits.get(need.key, 0) + 1,
            order_ref=f"{self._x.config.order_ref}:{run.kill_id}",
            force_limit=limit,
            fallback_regular=lambda _sec_type, t: self._x.broker.is_regular_hours(pos, t),
        )
        for note in planned.notes:
            self._say(run, "close.note", KillEventKind.VERIFIED, INFO, note, {"position": pos_label(pos)})
        if planned.manual and need.key not in self._manual_said:
            self._manual_said.add(need.key)
            run.notes.append(planned.manual)
            details_ = {"position": pos_label(pos)}
            self._say(run, "close.manual", KillEventKind.ESCALATED, CRITICAL, planned.manual, details_)
        if planned.refusal:
            # only a fraction is left: its text is already in the run's notes (said once above)
            refusal = FRACTION_ONLY if planned.refusal == planned.manual else planned.refusal
            hopeless[need.key] = reasons[need.key] = refusal
            if planned.refusal != planned.manual:
                details_ = {"position": pos_label(pos)}
                self._say(run, "close.refused", KillEventKind.ESCALATED, CRITICAL, planned.refusal, details_)
            return []
        fresh = [r for r in planned.orders if _shape(r) not in self._refused.get(need.key, set())]
        if len(fresh) < len(planned.orders):  # never re-send what the gateway refused, unchanged
            why = f"the gateway refused this exact order before: {reasons.get(need.key, 'see above')}"
            hopeless[need.key] = reasons[need.key] = why
            self._say(
                run, "close.refused", KillEventKind.ESCALATED, CRITICAL, why, {"position": pos_label(pos)}
            )
            return []
        if any(r.order_type == "LMT" for r in fresh):
            self._limits[need.key] = self._limits.get(need.key, 0) + 1
        return fresh

    def check_rejects(
        self,
        run: Run,
        placed: Sequence[tuple[int, CloseOrderRequest]],
        hopeless: dict[Key, str],
        reasons: dict[Key, str],
        force_limit: set[Key],
    ) -> None:
        self._start(run)
        for oid, req in placed:
            err = self._x.broker.order_error(oid)
            if err is None:
                continue
            code, text = err
            run.rejected[oid] = f"{code} {text}"
            key = (req.account, req.contract.con_id)
            kind = classify(code, text)
            self._refused.setdefault(key, set()).add(_shape(req))
            cause = explain(kind)
            reasons[key] = f"order {oid} rejected: {code} {text}" + (f" — {cause}" if cause else "")
            if not kind.retryable:
                hopeless[key] = reasons[key] + " (not retryable)"
            elif req.order_type == "MKT":
                force_limit.add(key)
            details = {"order_id": oid, "code": code, "message": text, "retry": key not in hopeless}
            details["kind"] = kind.value
            if key in hopeless:  # at once, not after max_attempts × verify_timeout
                self._say(run, "close.rejected", KillEventKind.ESCALATED, CRITICAL, reasons[key], details)
            else:
                self._say(run, "close.rejected", KillEventKind.REJECTED, WARNING, reasons[key], details)


def _shape(req: CloseOrderRequest) -> tuple[str, float, float | None]:
    """What makes two closing orders the same to the gateway: type, size, price."""
    return (req.order_type, req.quantity, req.limit_price)
