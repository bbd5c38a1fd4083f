"""The rule sections of rules.yaml: conditions, schedules, rules and quiet windows.

A condition is one metric comparison or an `all:` / `any:` combination (also written as one line,
`"daily_pnl <= -2500"`); a rule pairs a condition or a cron schedule with an action. The metric
catalogue and the condition grammar behind these validators live in `watchdog/config/conditions.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from watchdog.config.conditions import (
    COMPARISON_OPS,
    METRICS,
    OUTAGE_METRICS,
    check_cron,
    check_timezone,
    parse_shorthand,
    parse_threshold,
    unknown_metric_message,
)
from watchdog.config.field_types import Duration, FrozenModel, Percent, from_file
from watchdog.model import Action, Severity

__all__ = ["MAX_CONDITION_DEPTH", "Condition", "QuietWindow", "Rule", "Schedule"]

MAX_CONDITION_DEPTH = 8  # deeper nesting is a mistake, not a rule anyone can review


class Condition(FrozenModel):
    """One comparison, or a combination. Exactly one of (metric, all, any) is set.

    Also accepts the one-line form `"daily_pnl <= -2500"` (clauses joined by ` and ` or ` or `).
    `value` is stored in base units: money as is, percentages and ratios as fractions, durations in seconds.
    """

    metric: str | None = None
    op: Literal["<", "<=", ">", ">=", "==", "!="] | None = None
    value: float | None = None
    all: tuple[Condition, ...] | None = None
    any: tuple[Condition, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return parse_shorthand(data)
        if isinstance(data, dict):
            # Whatever a before-validator returns is re-validated as Python input, where strict mode
            # wants tuples: hand the lists of a combination over as tuples.
            return {
                k: tuple(v) if k in ("all", "any") and isinstance(v, list) else v for k, v in data.items()
            }
        return data

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        if v is not None and v not in METRICS:
            raise ValueError(unknown_metric_message(v))
        return v

    @field_validator("value", mode="before")
    @classmethod
    def _threshold_in_metric_units(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return None
        if not from_file(info) and isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)  # from Python: already in base units (fractions, seconds)
        metric = info.data.get("metric")
        return parse_threshold(v, METRICS.get(metric) if isinstance(metric, str) else None)

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [k for k in ("metric", "all", "any") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a condition needs exactly one of metric (with op and value), all: [...] or any: [...]"
                + (f"; found {', '.join(given)}" if given else "")
            )
        if self.metric is not None:
            if self.op is None or self.value is None:
                missing = " and ".join(k for k in ("op", "value") if getattr(self, k) is None)
                raise ValueError(f"metric {self.metric!r} needs {missing} (e.g. op: '<=', value: -2500)")
        else:
            if self.op is not None or self.value is not None:
                raise ValueError("op and value belong to a metric comparison, not to all:/any:")
            parts = self.all if self.all is not None else self.any
            if not parts:
                raise ValueError("all:/any: needs at least one condition")
        if self.depth() > MAX_CONDITION_DEPTH:
            raise ValueError(f"conditions nest deeper than {MAX_CONDITION_DEPTH} levels")
        return self

    def depth(self) -> int:
        parts = self.all or self.any or ()
        return 1 + max((c.depth() for c in parts), default=0)

    def leaves(self) -> tuple[Condition, ...]:
        """The metric comparisons, in reading order."""
        if self.metric is not None:
            return (self,)
        return tuple(leaf for c in (self.all or self.any or ()) for leaf in c.leaves())


class Schedule(FrozenModel):
    cron: str  # five-field crontab: "55 15 * * mon-fri"
    timezone: str = "America/New_York"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @model_validator(mode="after")
    def _cron_valid(self) -> Schedule:
        check_cron(self.cron, self.timezone)
        return self


class Rule(FrozenModel):
    name: str = Field(min_length=1, max_length=64)
    when: Condition | None = None  # absent only for scheduled rules
    schedule: Schedule | None = None  # fires the action at these times (e.g. flatten before the close)
    for_: Duration | None = Field(default=None, alias="for")
    consecutive: int | None = Field(default=None, ge=1, le=10_000)
    action: Action = Action.ALERT
    severity: Severity = Severity.CRITICAL
    scope: str = Field(
        default="each", min_length=1
    )  # "each" watched account, "all" summed, or one account id
    warn_at: Percent | None = None  # alert when this fraction of the way to the threshold
    unknown_after: Duration = 60.0  # missing/stale data this long → an "unknown" alert
    stale_after: Duration = 30.0  # data older than this counts as missing
    enabled: bool = True
    bot: str | None = None  # the bot a bot_silence rule watches (bots.heartbeats[].name)

    @property
    def about_outage(self) -> bool:
        """Every metric of its condition is one a gateway outage moves by itself (`OUTAGE_METRICS`):
        during an outage its breach is part of the outage, for notifications and alert rules alike."""
        leaves = self.when.leaves() if self.when is not None else ()
        return bool(leaves) and all(leaf.metric in OUTAGE_METRICS for leaf in leaves)

    @field_validator("name")
    @classmethod
    def _printable_name(cls, v: str) -> str:
        # Names become metric labels, audit records and quiet-window references: keep them plain.
        if v != v.strip() or any(not ch.isprintable() for ch in v):
            raise ValueError(f"must be printable without leading/trailing spaces, got: {v!r}")
        return v

    @field_validator("when")
    @classmethod
    def _silence_only_longer_than(cls, v: Condition | None) -> Condition | None:
        # A heartbeat only makes silence shorter: `bot_silence < X` would fire on every heartbeat,
        # so a request could cause a kill. Only "silent for longer than" is a dead-man's condition.
        leaves = [leaf for leaf in v.leaves() if leaf.metric == "bot_silence"] if v is not None else []
        wrong = sorted({str(leaf.op) for leaf in leaves} - {">", ">="})
        if wrong:
            raise ValueError(
                f"bot_silence compares only with > or >= (silent for longer than), not {', '.join(wrong)}: "
                "a heartbeat makes silence shorter, so any other comparison would fire on heartbeats"
            )
        if any(leaf.value is None or leaf.value <= 0 for leaf in leaves):
            raise ValueError(
                "bot_silence needs a limit above 0 s (e.g. bot_silence > 15s): silence is 0 right "
                "after a heartbeat, so a zero limit would fire on the heartbeat itself"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if (self.when is None) == (self.schedule is None):
            raise ValueError(
                "a rule needs exactly one of when: (a condition) or schedule: (cron times)"
                + ("; it has both" if self.when is not None else "")
            )
        if self.schedule is not None:
            extra = [k for k, v in (("for", self.for_), ("consecutive", self.consecutive)) if v is not None]
            if self.warn_at is not None:
                extra.append("warn_at")
            if extra:
                raise ValueError(f"a scheduled rule fires at fixed times; {', '.join(extra)} does not apply")
        silence = self.when is not None and any(leaf.metric == "bot_silence" for leaf in self.when.leaves())
        if silence and self.bot is None:
            raise ValueError("bot_silence needs bot: NAME (which bot's heartbeats to watch)")
        if self.bot is not None and not silence:
            raise ValueError('bot: belongs to a rule on bot_silence (e.g. when: "bot_silence > 15s")')
        if self.warn_at is not None and self.when is not None:
            if not 0.0 < self.warn_at < 1.0:
                raise ValueError(f"warn_at must be between 0% and 100% (exclusive), got: {self.warn_at:.0%}")
            if self.when.metric is None or self.when.op not in COMPARISON_OPS:
                raise ValueError("warn_at needs a single comparison with <, <=, > or >=")
        return self


class QuietWindow(FrozenModel):
    name: str = Field(min_length=1, max_length=64)
    cron: str  # when the window opens
    duration: Duration
    timezone: str = "America/New_York"
    rules: tuple[str, ...] = ()  # rules suspended inside the window (empty = all condition rules)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("duration")
    @classmethod
    def _at_most_a_week(cls, v: float) -> float:
        if v > 7 * 86400:
            raise ValueError(f"must be at most 7d, got: {v:g}s")
        return v

    @model_validator(mode="after")
    def _cron_valid(self) -> QuietWindow:
        check_cron(self.cron, self.timezone)
        return self
