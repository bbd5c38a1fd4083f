"""Pure rule evaluation: Snapshot + time + memory → edge-triggered Breach list. No I/O, no asyncio.

Per (rule, account) the memory keeps a small state machine:

    ok ──cond──► pending ──for:/consecutive: met──► breached ──cond false──► ok   (RECOVERED)
     │                                                   ▲
     └─ value past the warning level ─► warning ─────────┘
    any state ──data missing/NaN/stale──► unknown (after unknown_after: one UNKNOWN alert, never a kill)

A breach, warning or unknown is announced once; a recovery is announced once.
"""

from __future__ import annotations

import datetime
import enum
import math
import operator
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from watchdog.config.conditions import COMPARISON_OPS, METRICS
from watchdog.config.describe import OP_SYMBOLS, format_value
from watchdog.config.schema import Condition, Rule
from watchdog.model import Action, Breach, BreachKind, Severity, Snapshot
from watchdog.rules.readings import Reading, Readings

__all__ = ["ALL", "AllRules", "RuleMemory", "RuleState", "RuleStatus", "evaluate", "scheduled_breach"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
# Metrics whose day high is tracked: drawdown needs net liquidation's; warnings on "higher is
# healthy" metrics measure from the day's high.
_TRACKED_HIGHS = tuple(m for m, i in METRICS.items() if i.higher_is_healthy)


class AllRules(enum.Enum):
    """Marker for "every condition rule is suspended" (a quiet window without a rule list)."""

    ALL = "all"


ALL = AllRules.ALL
RuleState = Literal["ok", "pending", "warning", "breached", "unknown", "suspended"]


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """The current reading of one rule for one account (None = all accounts / the gateway), for metrics."""

    rule: str
    account: str | None
    metric: str
    op: str | None
    value: float | None
    threshold: float | None
    state: RuleState
    since: float | None = None  # when the current state began
    why: str = ""  # why the value is unknown


@dataclass(slots=True)
class _Track:
    rule: Rule
    cond_since: float | None = None  # condition has held continuously since
    count: int = 0  # successive evaluations the condition held
    announced: Literal["warning", "breach"] | None = None
    unknown_since: float | None = None
    unknown_announced: bool = False
    status: RuleStatus | None = None


@dataclass(slots=True)
class RuleMemory:
    """What evaluation remembers between polls. The daemon keeps one and passes it to every `evaluate`.

    `timezone` sets the trading day for day highs (drawdown): they restart at local midnight.
    """

    timezone: str = "America/New_York"
    _tracks: dict[tuple[str, str | None], _Track] = field(default_factory=dict)
    _highs: dict[tuple[str | None, str], tuple[datetime.date, float]] = field(default_factory=dict)

    def status(self) -> list[RuleStatus]:
        """The latest status of every evaluated (rule, account), in evaluation order."""
        return [t.status for t in self._tracks.values() if t.status is not None]

    def retain(self, rules: Iterable[Rule]) -> set[str]:
        """After a reload: keep timers and announced state of unchanged rules, drop the rest.
        Returns the names whose state was dropped: what they announced will never be called off."""
        keep = {r.name: r for r in rules}
        dropped = [k for k, t in self._tracks.items() if keep.get(k[0]) != t.rule]
        for key in dropped:
            del self._tracks[key]
        return {name for name, _ in dropped}

    def day_high(self, key: str | None, metric: str) -> float | None:
        """The day's high of a tracked metric for an account (None = summed accounts), if seen today."""
        entry = self._highs.get((key, metric))
        return None if entry is None else entry[1]

    def observe_high(self, key: str | None, metric: str, value: float, now: float) -> float:
        """Fold a fresh value into the day's high and return the high (a new day starts from `value`)."""
        day = datetime.datetime.fromtimestamp(now, ZoneInfo(self.timezone)).date()
        entry = self._highs.get((key, metric))
        high = value if entry is None or entry[0] != day else max(entry[1], value)
        self._highs[(key, metric)] = (day, high)
        return high

    def seed_high(self, key: str | None, metric: str, value: float, now: float) -> None:
        """Restore a persisted day high after a restart (ignored if it is from another day)."""
        self.observe_high(key, metric, value, now)

    def export_highs(self) -> list[dict[str, object]]:
        """The day highs as plain JSON records, for the state file (a restart must not forget them:
        a drawdown limit measured from a fresh high after a restart would be looser than configured)."""
        return [
            {"account": key, "metric": metric, "day": day.isoformat(), "high": high}
            for (key, metric), (day, high) in self._highs.items()
        ]

    def import_highs(self, records: Iterable[object], now: float) -> int:
        """Restore highs written by `export_highs`; records of another day or malformed ones are skipped."""
        today = datetime.datetime.fromtimestamp(now, ZoneInfo(self.timezone)).date().isoformat()
        restored = 0
        for r in records:
            if not isinstance(r, dict) or r.get("day") != today:
                continue
            account, metric, high = r.get("account"), r.get("metric"), r.get("high")
            key_ok = (account is None or isinstance(account, str)) and isinstance(metric, str)
            if key_ok and isinstance(high, int | float) and not isinstance(high, bool):
                self.seed_high(account, str(metric), float(high), now)
                restored += 1
        return restored

    def _track(self, rule: Rule, key: str | None) -> _Track:
        track = self._tracks.get((rule.name, key))
        if track is None or track.rule != rule:
            track = _Track(rule)
            self._tracks[(rule.name, key)] = track
        return track


@dataclass(frozen=True, slots=True)
class _Leaf:
    cond: Condition
    reading: Reading
    result: bool | None


def evaluate(
    rules: Sequence[Rule],
    snapshot: Snapshot,
    now: float,
    memory: RuleMemory,
    suspended: Collection[str] | AllRules = (),
    *,
    accounts: Sequence[str] | None = None,
) -> list[Breach]:
    """Evaluate every enabled condition rule; return only what changed (breach, warning, unknown, recovery).

    `accounts` are the watched accounts (config `gateway.accounts`); default: those in the snapshot.
    A configured account missing from the snapshot reads as unknown, never as fine.
    Scheduled rules are not evaluated here (see `scheduled_breach`).
    """
    watched = list(accounts) if accounts else sorted(snapshot.accounts)
    readings = Readings(snapshot, now, watched, memory.observe_high)
    _observe_highs(readings, memory, watched)
    out: list[Breach] = []
    touched: set[tuple[str, str | None]] = set()
    for rule in rules:
        if rule.when is None or not rule.enabled:
            continue
        quiet = suspended is ALL or (not isinstance(suspended, AllRules) and rule.name in suspended)
        for key in _keys(rule, rule.when, watched):
            touched.add((rule.name, key))
            track = memory._track(rule, key)
            if quiet:
                _suspend(track, rule, key, now)
                continue
            judged = _judge(rule.when, key, readings, rule.stale_after, rule.bot)
            out += _step(track, rule, key, judged, readings, memory)
    for stale_key in [k for k in memory._tracks if k not in touched]:
        del memory._tracks[stale_key]
    return out


def scheduled_breach(rule: Rule, now: float, account: str | None = None) -> Breach:
    """The Breach a scheduled rule hands to the kill switch / notifier when its cron time comes."""
    return Breach(
        rule=rule.name,
        kind=BreachKind.BREACH,
        action=rule.action,
        severity=rule.severity,
        account=account if account is not None else (None if rule.scope in ("each", "all") else rule.scope),
        metric="schedule",
        value=None,
        threshold=None,
        since=now,
        message=f"{rule.name}: scheduled {rule.action.value}",
    )


def _observe_highs(readings: Readings, memory: RuleMemory, watched: Sequence[str]) -> None:
    for metric in _TRACKED_HIGHS:
        for key in [*watched, None]:
            r = readings.read(metric, key, math.inf)
            if r.value is not None and math.isfinite(r.value):
                memory.observe_high(key, metric, r.value, readings.now)


def _keys(rule: Rule, cond: Condition, watched: Sequence[str]) -> list[str | None]:
    if rule.scope == "all":
        return [None]
    if rule.scope != "each":
        return [rule.scope]
    per_account = any(METRICS[leaf.metric].per_account for leaf in cond.leaves() if leaf.metric)
    # No account known yet: evaluate once over "all" (zero accounts = unknown), so it is never silent.
    return list(watched) if per_account and watched else [None]


def _judge(
    cond: Condition, key: str | None, readings: Readings, stale_after: float, bot: str | None = None
) -> tuple[bool | None, _Leaf]:
    """Kleene three-valued logic: unknown only decides when the known parts cannot."""
    if cond.metric is not None and cond.op is not None and cond.value is not None:
        reading = readings.read(cond.metric, key, stale_after, bot)
        result = None if reading.value is None else _COMPARE[cond.op](reading.value, cond.value)
        return result, _Leaf(cond, reading, result)
    parts = [_judge(c, key, readings, stale_after, bot) for c in (cond.all or cond.any or ())]
    results = [r for r, _ in parts]
    decisive = cond.all is None  # one False decides an all:, one True decides an any:
    combined: bool | None
    if decisive in results:
        combined = decisive
    elif None in results:
        combined = None
    else:
        combined = not decisive
    leaf = next((lf for r, lf in parts if r is combined), parts[0][1])
    return combined, leaf


def _breach(rule: Rule, key: str | None, kind: BreachKind, leaf: _Leaf, since: float, text: str) -> Breach:
    action = rule.action if kind is BreachKind.BREACH else Action.ALERT
    severity = {
        BreachKind.BREACH: rule.severity,
        BreachKind.UNKNOWN: rule.severity,
        BreachKind.WARNING: Severity.WARNING,
        BreachKind.RECOVERED: Severity.INFO,
    }[kind]
    return Breach(
        rule=rule.name,
        kind=kind,
        action=action,
        severity=severity,
        account=key,
        metric=leaf.cond.metric or "",
        value=leaf.reading.value,
        threshold=leaf.cond.value,
        since=since,
        message=f"{rule.name}: {text}",
        about_outage=rule.about_outage,
    )


def _shown(leaf: _Leaf, key: str | None) -> str:
    metric = leaf.cond.metric or ""
    where = f" of {key}" if key is not None and METRICS[metric].per_account else ""
    value = "unknown" if leaf.reading.value is None else format_value(metric, leaf.reading.value)
    threshold = format_value(metric, leaf.cond.value or 0.0)
    return f"{metric}{where} = {value} (limit {OP_SYMBOLS.get(leaf.cond.op or '', '?')} {threshold})"


def _step(
    track: _Track,
    rule: Rule,
    key: str | None,
    judged: tuple[bool | None, _Leaf],
    readings: Readings,
    memory: RuleMemory,
) -> list[Breach]:
    result, leaf = judged
    now = readings.now
    out: list[Breach] = []
    prev = track.status.state if track.status is not None else None

    def status(state: RuleState, since: float | None) -> None:
        keep = track.status.since if track.status is not None and prev == state else since
        track.status = RuleStatus(
            rule.name, key, leaf.cond.metric or "", leaf.cond.op, leaf.reading.value, leaf.cond.value,
            state, keep, leaf.reading.why,
        )  # fmt: skip

    if result is None and leaf.reading.resting:
        # A bot that stopped cleanly: nothing to judge and nothing to report until it heartbeats
        # again; what was announced stays announced (like a quiet window).
        track.cond_since, track.count, track.unknown_since, track.unknown_announced = None, 0, None, False
        status("suspended", now)
        return out
    if result is None:
        # Unknown interrupts for:/consecutive: (the condition is not known to hold), but an
        # announced breach stays announced until fresh data shows it cleared.
        track.cond_since, track.count = None, 0
        if track.unknown_since is None:
            track.unknown_since = now
        if not track.unknown_announced and now - track.unknown_since >= rule.unknown_after:
            track.unknown_announced = True
            text = f"cannot evaluate for {now - track.unknown_since:.0f} s: {leaf.reading.why}"
            out.append(_breach(rule, key, BreachKind.UNKNOWN, leaf, track.unknown_since, text))
        status("unknown", track.unknown_since)
        return out
    if track.unknown_announced:
        out.append(_breach(rule, key, BreachKind.RECOVERED, leaf, now, f"data is back: {_shown(leaf, key)}"))
    track.unknown_since, track.unknown_announced = None, False

    if result:
        track.cond_since = now if track.cond_since is None else track.cond_since
        track.count += 1
    else:
        track.cond_since, track.count = None, 0
    held = bool(result) and (rule.for_ is None or now - (track.cond_since or now) >= rule.for_)
    held = held and (rule.consecutive is None or track.count >= rule.consecutive)
    warn = _warning_holds(rule, leaf, key, memory)

    if result and track.announced == "breach":
        status("breached", track.cond_since)
    elif held:
        track.announced = "breach"
        out.append(_breach(rule, key, BreachKind.BREACH, leaf, track.cond_since or now, _shown(leaf, key)))
        status("breached", track.cond_since)
    elif result or warn:
        if track.announced == "breach":
            text = f"back within the limit, still in the warning band: {_shown(leaf, key)}"
            out.append(_breach(rule, key, BreachKind.RECOVERED, leaf, now, text))
            track.announced = "warning" if warn else None
        elif warn and track.announced is None:
            track.announced = "warning"
            if result:  # already past the limit, waiting for for:/consecutive: before acting
                text = f"past the limit, {rule.action.value} if it holds: {_shown(leaf, key)}"
            else:
                text = f"{rule.warn_at or 0:.0%} of the way to the limit: {_shown(leaf, key)}"
            out.append(_breach(rule, key, BreachKind.WARNING, leaf, now, text))
        status("pending" if result else "warning", track.cond_since if result else now)
    else:
        if track.announced is not None:
            out.append(_breach(rule, key, BreachKind.RECOVERED, leaf, now, f"recovered: {_shown(leaf, key)}"))
            track.announced = None
        status("ok", now)
    return out


def warning_level(rule: Rule, baseline: float) -> float | None:
    """The value at which `warn_at` alerts: baseline + warn_at × (threshold − baseline).

    None when the rule has no warning, or the baseline is already on the breaching side.
    """
    cond = rule.when
    if rule.warn_at is None or cond is None or cond.value is None or cond.op not in COMPARISON_OPS:
        return None
    if _COMPARE[cond.op](baseline, cond.value) or baseline == cond.value:
        return None
    return baseline + rule.warn_at * (cond.value - baseline)


def _warning_holds(rule: Rule, leaf: _Leaf, key: str | None, memory: RuleMemory) -> bool:
    cond = rule.when
    if rule.warn_at is None or cond is None or cond.metric is None or cond.op is None:
        return False
    value = leaf.reading.value
    if value is None:
        return False
    baseline = memory.day_high(key, cond.metric) if METRICS[cond.metric].higher_is_healthy else 0.0
    level = None if baseline is None else warning_level(rule, baseline)
    return level is not None and _COMPARE[cond.op](value, level)


def _suspend(track: _Track, rule: Rule, key: str | None, now: float) -> None:
    # A quiet window pauses the rule: timers restart afterwards; what was announced stays announced.
    track.cond_since, track.count, track.unknown_since = None, 0, None
    leaf = rule.when.leaves()[0] if rule.when is not None else None
    since = track.status.since if track.status is not None and track.status.state == "suspended" else now
    track.status = RuleStatus(
        rule.name,
        key,
        leaf.metric or "" if leaf else "",
        leaf.op if leaf else None,
        None,
        leaf.value if leaf else None,
        "suspended",
        since,
        "inside a quiet window",
    )
