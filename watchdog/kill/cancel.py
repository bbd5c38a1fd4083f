"""The cancel phase: global cancel, verified by fresh reads until every order in scope is terminal.

An order in PendingCancel (IB: "not confirmed canceled … you may still receive an execution") or
held still counts as working (`model.is_terminal`): the phase retries and names their states.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from watchdog.config.schema import KillConfig
from watchdog.kill.broker import Broker
from watchdog.kill.plan import order_label
from watchdog.kill.run import KillEventKind, Reporter, Run
from watchdog.model import OpenOrder, Severity, order_key

T = TypeVar("T")


class Hands(Protocol):
    """What the cancel phase needs of `kill.executor.KillExecutor` (a Protocol: no import cycle)."""

    config: KillConfig
    broker: Broker
    reporter: Reporter

    async def call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T: ...
    async def global_cancel(self, run: Run, why: str) -> None: ...
    async def cancel_order(self, run: Run, order: OpenOrder, why: str) -> None: ...
    async def poll_orders(
        self, run: Run, targets: Callable[[Sequence[OpenOrder]], list[OpenOrder]]
    ) -> list[OpenOrder]: ...
    def owns(self, order: OpenOrder) -> bool: ...
    def targets(self, run: Run, orders: Sequence[OpenOrder], *, include_ours: bool) -> list[OpenOrder]: ...


INFO, WARNING = Severity.INFO, Severity.WARNING


async def cancel_phase(x: Hands, run: Run, *, include_ours: bool) -> list[OpenOrder]:
    """Global cancel, confirmed by fresh reads; again (plus cancels of our own) up to max_attempts."""

    def targets(orders: Sequence[OpenOrder]) -> list[OpenOrder]:
        return x.targets(run, orders, include_ours=include_ours)

    remaining: list[OpenOrder] = []
    for attempt in range(1, x.config.max_attempts + 1):
        run.attempts = max(run.attempts, attempt)
        labels = [order_label(o) for o in remaining]
        if attempt > 1:
            msg = f"{len(remaining)} order(s) still working; cancelling again (attempt {attempt})"
            x.reporter.step(run, "cancel.retry", KillEventKind.RETRY, WARNING, msg, {"orders": labels})
        if attempt > 1 or not run.cancel_sent:  # the kill switch may have sent the first already
            await x.global_cancel(run, f"attempt {attempt}")
        for o in remaining:
            if x.owns(o):
                await x.cancel_order(run, o, "still working after a global cancel")
        if run.dry:
            would = targets(await x.call("open_orders", x.broker.open_orders))
            run.seen.update((order_key(o), o) for o in would)
            labels = [order_label(o) for o in would]
            msg = f"dry run: {len(would)} working order(s) would be cancelled"
            x.reporter.step(run, "cancel.dry_run", KillEventKind.VERIFIED, INFO, msg, {"orders": labels})
            return []
        remaining = await x.poll_orders(run, targets)
        states = Counter(o.state_label for o in remaining)
        msg = f"cancel attempt {attempt}: {len(remaining)} order(s) still working" + (
            " (" + ", ".join(f"{n} {state}" for state, n in sorted(states.items())) + ")" if states else ""
        )
        details = {"attempt": attempt, "still_working": [order_label(o) for o in remaining]}
        x.reporter.step(
            run, "cancel.verify", KillEventKind.VERIFIED, WARNING if remaining else INFO, msg, details
        )
        if not remaining:
            return []
    return remaining
