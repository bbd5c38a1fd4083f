"""Prometheus series of the kill switch: posture (tripped, trading_state), a kill pending or running,
kills by action and trigger, outcomes, escalations, orders cancelled and closing orders, duration,
the last kill's time, and dry run.

Label sets are bounded: `trigger` by a `LabelBound` (beyond it folded into `other`), `action`,
`outcome` and `state` by their enums. Every fixed child exists from the start, so dashboards and
alerts see zeros, not gaps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from watchdog.model import KillOutcome, KillReport, TradingState
from watchdog.outputs.label_bounds import LabelBound

__all__ = ["KILL_BUCKETS", "KillMetrics"]

KILL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# The manual triggers (signals) exist whatever the rules say.
_MANUAL_TRIGGERS = (("close_all", "manual:SIGUSR1"), ("cancel_all", "manual:SIGUSR2"))


class KillMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str, triggers: LabelBound) -> None:
        r, p = registry, prefix
        self._triggers = triggers  # the `trigger` label of kills_total
        self.tripped = Gauge(
            p + "tripped", "1 while the watchdog is TRIPPED (latched after a kill)", registry=r
        )
        self.trading_state = Gauge(
            p + "trading_state", "Risk posture, 1 for the current state", ["state"], registry=r
        )
        self.pending = Gauge(
            p + "kill_pending", "1 while a kill waits because the gateway is unusable", registry=r
        )
        self.running = Gauge(p + "kill_running", "1 while a kill is running", registry=r)
        self.kills = Counter(p + "kills", "Kills run", ["action", "trigger"], registry=r)
        self.outcomes = Counter(p + "kill_outcomes", "Kills by outcome", ["outcome"], registry=r)
        self.escalations = Counter(
            p + "kill_escalations", "Kills that left something open after every attempt", registry=r
        )
        self.orders_cancelled = Counter(p + "orders_cancelled", "Orders cancelled by kills", registry=r)
        self.close_orders = Counter(p + "close_orders", "Closing orders placed by kills", registry=r)
        self.duration = Histogram(
            p + "kill_duration_seconds", "Trigger to verified result", buckets=KILL_BUCKETS, registry=r
        )
        self.last_kill = Gauge(
            p + "last_kill_timestamp_seconds", "Epoch the last kill finished (NaN: none yet)", registry=r
        )
        self.dry_run = Gauge(p + "dry_run", "1 while kills are planned and reported but not sent", registry=r)

        self.set_tripped(False)
        self.pending.set(0)
        self.running.set(0)
        self.last_kill.set(math.nan)  # unknown, not 1970: `time() - last_kill` must not read 56 years
        self.dry_run.set(0)
        for outcome in KillOutcome:
            self.outcomes.labels(outcome.value)
        self.escalations.inc(0)

    def observe(self, report: KillReport) -> None:
        """Count one kill report; a PENDING one sets `kill_pending` and leaves duration and time alone."""
        self.kills.labels(report.action.value, self._triggers.fold(report.trigger)).inc()
        self.outcomes.labels(report.outcome.value).inc()
        if report.outcome is KillOutcome.ESCALATED:
            self.escalations.inc()
        self.orders_cancelled.inc(len(report.cancelled_orders))
        self.close_orders.inc(len(report.close_orders))
        if report.outcome is not KillOutcome.PENDING:
            self.duration.observe(report.duration)
            self.last_kill.set(report.finished)
        self.set_pending(report.outcome is KillOutcome.PENDING)

    def declare(self, rules: Iterable[Sequence[object]], *, dry_run: bool) -> None:
        """`kills_total` at 0 for every trigger known in advance (each kill rule, given as
        (name, action, severity), and the two manual signals), so `increase()` sees the first kill."""
        self.dry_run.set(1 if dry_run else 0)
        for action, trigger in _MANUAL_TRIGGERS:
            self.kills.labels(action, self._triggers.fold(trigger))
        for rule in rules:
            name, action = str(rule[0]), str(rule[1])
            if action in ("close_all", "cancel_all"):
                self.kills.labels(action, self._triggers.fold(f"rule:{name}"))

    def set_tripped(self, tripped: bool) -> None:
        self.tripped.set(1 if tripped else 0)
        current = TradingState.TRIPPED if tripped else TradingState.ARMED
        for st in TradingState:
            self.trading_state.labels(st.value).set(1 if st is current else 0)

    def set_pending(self, pending: bool) -> None:
        """`pending` = a kill waits for the gateway (not: a running kill's pending record exists)."""
        self.pending.set(1 if pending else 0)

    def set_state(self, *, running: bool, pending: bool) -> None:
        """The two kill gauges together: a running kill is never also "pending"."""
        self.running.set(1 if running else 0)
        self.pending.set(1 if pending and not running else 0)
