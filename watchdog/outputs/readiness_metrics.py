"""Kill readiness series: would a kill now close every position, and if not, how many and why.

`kill_plan_problems{account,reason}` has one child per reason of `model.PlanReason` for every
account from the first plan on (0 when that reason is absent), so its label set is bounded and an
alert's `> 0` sees a reason appear and clear.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from watchdog.readiness_model import PlanReason, Readiness


class ReadinessMetrics:
    def __init__(
        self, registry: CollectorRegistry, prefix: str, *, admit: Callable[[str], bool] = lambda _a: True
    ) -> None:
        self._admit = admit  # the account label's bound: an account past it gets no series
        self.ready = Gauge(
            prefix + "kill_ready",
            "1 when a kill now would close every in-scope position of the account (readiness plan)",
            ["account"],
            registry=registry,
        )
        self.problems = Gauge(
            prefix + "kill_plan_problems",
            "Positions a kill now would leave open, by reason (an account-wide reason counts 1)",
            ["account", "reason"],
            registry=registry,
        )
        self.timestamp = Gauge(
            prefix + "kill_readiness_timestamp_seconds",
            "Epoch of the last kill readiness plan",
            registry=registry,
        )
        self.timestamp.set(float("nan"))  # unknown until the first plan, never 0
        self._accounts: set[str] = set()

    def observe(self, readiness: Readiness) -> None:
        seen = set()
        for account in readiness.accounts:
            if not self._admit(account.account):
                continue
            seen.add(account.account)
            self.ready.labels(account.account).set(1 if account.ready else 0)
            counts = account.problem_counts()
            for reason in PlanReason:
                self.problems.labels(account.account, reason.value).set(counts.get(reason, 0))
        for gone in self._accounts - seen:  # no longer watched (reload)
            self.ready.remove(gone)
            for reason in PlanReason:
                self.problems.remove(gone, reason.value)
        self._accounts = seen
        self.timestamp.set(readiness.planned_at)
