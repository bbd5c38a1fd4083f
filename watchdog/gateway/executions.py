"""The session's executions as ib_async holds them: this client's by order id, and a callback per arrival.

IB documents no order between execDetails, orderStatus and position updates: an execution can
arrive after its order read Filled and the position read zero. `ExecutionFeed.on_execution` hears
every live execution (ib_async `execDetailsEvent`) and again when its commission report arrives
(`commissionReportEvent`), so a late one still reaches the kill's audit; the routine executions
poll (`Gateway.poll_executions`, reqExecutions) passes today's executions through it too, which
covers what arrived while disconnected or before a restart.
"""
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable

from ib_async import IB, CommissionReport, ExecutionFilter, Trade
from ib_async import Fill as IbFill

from watchdog.gateway import convert
from watchdog.model import Fill, without_corrected

log = logging.getLogger("watchdog.gateway.client")


class ExecutionFeed:
    """Hands every execution this connection hears to `on_execution` (set by the daemon); never raises."""

    def __init__(self) -> None:
        self.on_execution: Callable[[Fill], object] | None = None

    def attach(self, ib: IB) -> None:
        ib.execDetailsEvent += self._on_exec_details
        ib.commissionReportEvent += self._on_commission

    def detach(self, ib: IB) -> None:
        ib.execDetailsEvent -= self._on_exec_details
        ib.commissionReportEvent -= self._on_commission

    def _on_exec_details(self, trade: Trade, fill: IbFill) -> None:
        self._convert_and_report(fill)

    def _on_commission(self, trade: Trade, fill: IbFill, report: CommissionReport) -> None:
        self._convert_and_report(fill)  # the same execution, now with its commission

    def _convert_and_report(self, fill: IbFill) -> None:
        try:
            converted = convert.fill_from(fill)
        except (AttributeError, TypeError, ValueError, OverflowError) as exc:
            log.warning("execution %r not understood: %s", getattr(fill.execution, "execId", "?"), exc)
            return
        self.report([converted])

    def report(self, fills: Iterable[Fill]) -> None:
        if self.on_execution is None:
            return
        for fill in fills:
            try:
                self.on_execution(fill)
            except Exception:  # a listener's bug must not break the data feed
                log.exception("execution callback failed")


def order_fills(ib: IB | None, client_id: int, order_ids: Collection[int]) -> list[Fill]:
    """The executions of this client's orders `order_ids` received so far in this session (ib_async's
    memory: live execDetails and the reqExecutions answers; no round trip), corrections applied
    (`model.without_corrected`). [] when not connected."""
    if ib is None or not order_ids:
        return []
    wanted = set(order_ids)
    out: list[Fill] = []
    for f in ib.fills():
        e = f.execution
        if e.clientId == client_id and e.orderId in wanted:
            try:
                out.append(convert.fill_from(f))
            except (AttributeError, TypeError, ValueError, OverflowError):
                continue  # logged when it arrived (ExecutionFeed)
    return without_corrected(out)


Timed = Callable[[str, Callable[[], Awaitable[list[IbFill]]]], Awaitable[list[IbFill]]]


async def read_today(ib: IB, timed: Timed) -> list[Fill]:
    """Today's executions (a reqExecutions round trip under `timed`'s timeout) with their commissions
    where reported, corrections applied."""
    fills = await timed("executions", lambda: ib.reqExecutionsAsync(ExecutionFilter()))
    # the response holds fresh Fill objects; commission reports update the ones ib_async keeps
    known = {f.execution.execId: f for f in ib.fills()}
    out: dict[str, Fill] = {}
    for f in fills:
        fill = convert.fill_from(known.get(f.execution.execId, f))
        out[fill.exec_id] = fill
    return without_corrected(out.values())
