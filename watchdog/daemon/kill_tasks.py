"""The daemon's kill tasks: started at once, tracked until done, their reports kept in order.

A kill never runs inside an evaluation cycle or a signal handler: it is its own task, so the
cycle goes on (metrics, status, lockout) while the kill verifies, and a graceful stop can wait for
it (bounded) or leave it pending on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from watchdog.kill.switch import KillSwitch
from watchdog.model import Action, KillOutcome, KillReport, OpenOrder
from watchdog.outputs.notifier import Notifier

log = logging.getLogger("watchdog.daemon.lifecycle")


class KillTasks:
    def __init__(
        self,
        killswitch: KillSwitch,
        notifier: Notifier,
        known_orders: Callable[[], Sequence[OpenOrder]],
        *,
        monotonic: Callable[[], float],
        on_parked: Callable[[], None] | None = None,
    ) -> None:
        self._killswitch = killswitch
        self._notifier = notifier
        self._known_orders = known_orders  # the latest snapshot's working orders, for the report
        self._monotonic = monotonic
        self._on_parked = on_parked  # a kill went pending: the daemon reconnects fast until it runs
        self.tasks: set[asyncio.Future[Any]] = set()
        self.reports: list[KillReport] = []  # every kill this process ran, in order
        self.parked_at = float("-inf")  # monotonic time a kill last went pending (gateway unusable)
        self.parked_in_a_row = 0  # consecutive runs that ended pending (reset by one that did not)
        self._resuming: asyncio.Future[KillReport | None] | None = None

    @property
    def running(self) -> bool:
        return bool(self.tasks)

    def start(
        self, action: Action, trigger: str, *, reason: str = "", accounts: list[str] | None = None
    ) -> asyncio.Task[KillReport | None]:
        """Start a kill at once; the kill switch serialises concurrent kills itself."""
        task: asyncio.Task[KillReport | None] = asyncio.ensure_future(
            self._run(action, trigger, reason, accounts)
        )
        self.track(task)
        return task

    def start_pending(self) -> bool:
        """Run the persisted pending kill (once the gateway is usable again); False if one already runs."""
        if self._resuming is not None and not self._resuming.done():
            return False
        self._resuming = asyncio.ensure_future(self._run_pending())
        self.track(self._resuming)
        return True

    def track(self, task: asyncio.Future[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(
        self, action: Action, trigger: str, reason: str, accounts: list[str] | None
    ) -> KillReport | None:
        """Metrics and notifications hear about the kill through the kill switch's events."""
        try:
            report = await self._killswitch.kill(
                action, trigger, reason=reason, accounts=accounts, known_orders=self._known_orders()
            )
        except Exception:
            log.exception("kill %s (%s) failed unexpectedly", action.value, trigger)
            self._notifier.notify_text("critical", "Kill failed", f"{action.value} from {trigger}: see logs")
            return None
        self._record(report)
        return report

    async def _run_pending(self) -> KillReport | None:
        report = await self._killswitch.run_pending()
        if report is not None:
            self._record(report)
        return report

    def _record(self, report: KillReport) -> None:
        self.reports.append(report)
        if report.outcome is not KillOutcome.PENDING:
            self.parked_in_a_row = 0
        else:
            self.parked_at = self._monotonic()
            self.parked_in_a_row += 1
            if self._on_parked is not None:
                self._on_parked()

    async def wait(self, timeout: float) -> list[KillReport]:
        """Wait until every running kill finished; return their reports (tests, the demo)."""
        tasks = list(self.tasks)
        if not tasks:
            return []
        done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)
        return [r for r in done if isinstance(r, KillReport)]
