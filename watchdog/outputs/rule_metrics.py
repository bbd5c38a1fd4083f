"""Prometheus series of the rules: each rule's value, threshold, state and proximity, and `rule_info`.

Label sets are bounded: (rule, account) pairs share one `LabelBound`, rule states are the fixed
`RULE_STATES`, and `rule_info` holds the configured rules only. A rule without an account is
labelled `account="all"`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from prometheus_client import CollectorRegistry, Gauge

from watchdog.outputs.label_bounds import LabelBound

__all__ = ["ALL_ACCOUNTS", "RULE_STATES", "RuleMetrics", "RuleStatusLike", "RuleTuple", "rule_proximity"]

RULE_STATES = ("ok", "pending", "warning", "breach", "unknown", "suspended")
# Spellings a rules engine may use, folded onto the fixed set above (label cardinality stays fixed).
_STATE_ALIASES = {
    "breached": "breach",
    "firing": "breach",
    "normal": "ok",
    "clear": "ok",
    "recovered": "ok",
    "warn": "warning",
    "stale": "unknown",
    "missing": "unknown",
    "quiet": "suspended",
    "disabled": "suspended",
}
# A rule breaches when the value goes above (+1) or below (-1) its threshold.
_DIRECTION = {">": 1, ">=": 1, "<": -1, "<=": -1}
ALL_ACCOUNTS = "all"


class RuleInfo(NamedTuple):
    """One configured rule as `rule_info` labels it. `about_outage`: every metric of its condition
    is one a gateway outage moves by itself (`config.conditions.OUTAGE_METRICS`): the alert rules hold
    its breaches back while the gateway is down, as the notifications do."""

    name: str
    action: str
    severity: str
    about_outage: bool = False


class RuleStatusLike(Protocol):
    """What `observe_rule_status` reads from each rule result (the rules engine's `RuleStatus` fits)."""

    @property
    def rule(self) -> str: ...
    @property
    def account(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def state(self) -> object: ...  # str or enum with a str value


RuleTuple = tuple[str, str | None, float | None, float | None, object]


def number_or_nan(v: float | None) -> float:
    """None and NaN are exported as NaN: 'not known' must not read as zero."""
    return math.nan if v is None else float(v)


def _state_name(state: object) -> str:
    raw = state.value if isinstance(state, enum.Enum) else state
    name = str(raw).strip().lower()
    name = _STATE_ALIASES.get(name, name)
    return name if name in RULE_STATES else "unknown"


def _rule_key(item: RuleStatusLike | RuleTuple) -> tuple[str, str]:
    if isinstance(item, tuple):
        return (item[0], item[1] or ALL_ACCOUNTS)
    return (item.rule, item.account or ALL_ACCOUNTS)


def rule_proximity(value: float | None, threshold: float | None, op: str | None) -> float | None:
    """How far a value has gone toward its threshold: 0 = far, 1 = at it, > 1 = beyond. None if unknowable.

    Losses are negative (daily_pnl < -1000): -800 is 0.8 of the way. For a floor above zero
    (cushion < 0.10) the value falls toward the threshold, so the ratio is threshold / value.
    """
    if value is None or threshold is None or math.isnan(value) or math.isnan(threshold) or threshold == 0:
        return None
    direction = _DIRECTION.get(op or "")
    if direction is None:
        # Without the operator only a negative threshold is unambiguous: a loss limit (value < threshold).
        if threshold >= 0:
            return None
        direction = -1
    away_from_zero = (direction > 0) == (threshold > 0)
    if away_from_zero:
        return max(0.0, value / threshold)
    if value == 0 or (value > 0) != (threshold > 0):
        return math.inf  # crossed zero toward the breach side: at or beyond the threshold
    return max(0.0, threshold / value)


@dataclass(slots=True)
class _RuleSeries:
    """The label children of one (rule, account), looked up once."""

    value: Any
    threshold: Any
    breached: Any
    unknown: Any
    state: str = ""
    has_proximity: bool = False


class RuleMetrics:
    """`rule_value`, `rule_threshold`, `rule_breached`, `rule_unknown`, `rule_state`,
    `rule_proximity_ratio` by (rule, account), and `rule_info` by (rule, action, rule_severity)."""

    def __init__(self, registry: CollectorRegistry, prefix: str, bound: LabelBound) -> None:
        r, p, rl = registry, prefix, ["rule", "account"]
        self._bound = bound  # one slot per (rule, account), keyed "rule|account"
        self._rules: set[tuple[str, str]] = set()
        self._series: dict[tuple[str, str], _RuleSeries] = {}
        self.value = Gauge(p + "rule_value", "Current value a rule compares", rl, registry=r)
        self.threshold = Gauge(p + "rule_threshold", "Threshold of the rule", rl, registry=r)
        self.breached = Gauge(p + "rule_breached", "1 while the rule is breached", rl, registry=r)
        self.unknown = Gauge(p + "rule_unknown", "1 while the rule cannot be evaluated", rl, registry=r)
        self.state = Gauge(p + "rule_state", "Rule state, 1 for the current one", [*rl, "state"], registry=r)
        self.proximity = Gauge(
            p + "rule_proximity_ratio", "Fraction of the way to the threshold (1 = at it)", rl, registry=r
        )
        self.info = Gauge(
            p + "rule_info",
            "1 per configured rule: its action and severity, and whether it is about a gateway outage "
            "(join on rule to route alerts)",
            ["rule", "action", "rule_severity", "about_outage"],
            registry=r,
        )

    def declare(self, rules: Iterable[RuleInfo]) -> None:
        """`rule_info` for the configured rules; earlier ones go."""
        self.info.clear()
        for r in rules:  # rules come from the config file: few, and reviewed
            self.info.labels(r.name, r.action, r.severity, "true" if r.about_outage else "false").set(1)

    def observe(self, statuses: Iterable[RuleStatusLike | RuleTuple]) -> None:
        """Set every rule series from one complete evaluation; rules not in it lose their series.

        Runs on every evaluation (several a second): label children are looked up once per
        (rule, account) and the one-hot state series are only rewritten when the state changes.
        """
        seen: set[tuple[str, str]] = set()
        if self._bound.full:  # free the slots of rules gone from this evaluation before adding
            statuses = list(statuses)
            current = {_rule_key(item) for item in statuses}
            self.retain(self._rules & current)
        for item in statuses:
            if isinstance(item, tuple):
                rule, account, value, threshold, state = item
                op = None
            else:
                rule, account, value = item.rule, item.account, item.value
                threshold, state = item.threshold, item.state
                op = getattr(item, "op", None)
            key = (rule, account or ALL_ACCOUNTS)
            series = self._series.get(key)
            if series is None and not self._bound.admit("|".join(key)):
                continue
            seen.add(key)
            name = _state_name(state)
            if series is None:
                series = self._series[key] = _RuleSeries(
                    self.value.labels(*key),
                    self.threshold.labels(*key),
                    self.breached.labels(*key),
                    self.unknown.labels(*key),
                )
            series.value.set(number_or_nan(value))
            series.threshold.set(number_or_nan(threshold))
            if series.state != name:
                series.state = name
                series.breached.set(1 if name == "breach" else 0)
                series.unknown.set(1 if name == "unknown" else 0)
                for s in RULE_STATES:
                    self.state.labels(*key, s).set(1 if s == name else 0)
            prox = rule_proximity(value, threshold, op if isinstance(op, str) else None)
            if prox is None:
                if series.has_proximity:
                    self.proximity.remove(*key)
                    series.has_proximity = False
            else:
                self.proximity.labels(*key).set(prox)
                series.has_proximity = True
        if seen != self._rules:
            self.retain(seen)

    def retain(self, keys: Iterable[tuple[str, str]]) -> None:
        """Drop the series of every (rule, account) not in `keys`, and free their label slots."""
        keep = set(keys)
        for gone in self._rules - keep:
            for g in (self.value, self.threshold, self.breached, self.unknown, self.proximity):
                g.remove(*gone)
            for s in RULE_STATES:
                self.state.remove(*gone, s)
            self._series.pop(gone, None)
            self._bound.forget("|".join(gone))
        self._rules = keep
