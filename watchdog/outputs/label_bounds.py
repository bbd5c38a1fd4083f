"""Bounds on metric label values: a fixed number per label, later values folded into `other` and counted.

A label value that comes from outside (a gateway error code, a trigger name, an account id, a rule
name) could otherwise grow `/metrics` and the process without limit: 50,000 distinct error codes
once made a 6 MB page and a 1.4 s heartbeat gap. Each label keeps the first `limit` values it sees.
"""

from __future__ import annotations

from prometheus_client import Counter

OTHER = "other"


class LabelBound:
    """The first `limit` distinct values of one metric's label pass; the rest read as `other` (or are
    refused with `admit`), and each refusal counts in `metric_labels_dropped_total{metric}`."""

    def __init__(self, metric: str, limit: int, dropped: Counter) -> None:
        self.metric = metric
        self.limit = limit
        self._dropped = dropped.labels(metric)
        self._seen: set[str] = set()

    def admit(self, value: str) -> bool:
        """True when `value` may have its own series; False (counted) when the label is full."""
        if value in self._seen:
            return True
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return True
        self._dropped.inc()
        return False

    def fold(self, value: str) -> str:
        """`value` itself, or `other` once the label is full (for counters: nothing is lost in the sum)."""
        return value if self.admit(value) else OTHER

    @property
    def full(self) -> bool:
        return len(self._seen) >= self.limit

    def forget(self, value: str) -> None:
        """`value`'s series was removed (an account or rule gone after a reload): its slot is free."""
        self._seen.discard(value)
