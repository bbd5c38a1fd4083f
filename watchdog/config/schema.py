"""Configuration schema (frozen pydantic models) of rules.yaml, with its validators.

The schema below is the contract every other module reads. The loader (strict YAML with line
numbers, `${VAR}` / `file:` / systemd-credential interpolation, all errors at once) lives in
`watchdog/config/load.py`; the metric catalogue and condition grammar in `watchdog/config/conditions.py`;
the plain-words rendering of rules in `watchdog/config/describe.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watchdog.config.conditions import (
    COMPARISON_OPS,
    METRICS,
    MetricInfo,
    MetricKind,
    check_cron,
    check_timezone,
    cross_check,
    dotted,
    parse_shorthand,
    parse_threshold,
    unknown_metric_message,
)
from watchdog.model import Action, Severity

__all__ = [
    "LIVE_PORTS",
    "METRICS",
    "PAPER_PORTS",
    "Condition",
    "Config",
    "GatewayConfig",
    "HeartbeatConfig",
    "KillConfig",
    "LoggingConfig",
    "MetricInfo",
    "MetricKind",
    "MetricsConfig",
    "NotificationsConfig",
    "NotifyTarget",
    "PollingConfig",
    "QuietWindow",
    "Rule",
    "Schedule",
    "cross_check",
    "parse_duration",
    "parse_percent",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_CONDITION_DEPTH = 8  # deeper nesting is a mistake, not a rule anyone can review


def parse_duration(v: Any) -> Any:
    """'500ms', '2s', '5m', '1h', '1d' → seconds. Bare numbers are refused: a unit is required."""
    if isinstance(v, str):
        m = _DURATION.match(v)
        if not m:
            raise ValueError(f"must be a duration like 500ms, 2s, 5m, 1h, got: {v!r}")
        return float(m.group(1)) * _UNIT[m.group(2)]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"must be a duration like 500ms, 2s, 5m, 1h, got: {v!r}")
    raise ValueError(f"must be a duration with a unit (e.g. {v}s), got: {v!r}")


def parse_percent(v: Any) -> Any:
    """'3%' → 0.03. Bare numbers are refused so 3 and 0.03 cannot be confused."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100.0
        except ValueError:
            pass
    raise ValueError(f"must be a percentage like 3%, got: {v!r}")


def _from_file(info: ValidationInfo) -> bool:
    return isinstance(info.context, Mapping) and bool(info.context.get("from_file"))


def _duration_field(v: Any, info: ValidationInfo) -> Any:
    # In a file a bare number is refused (2 what?); from Python, a number is already seconds,
    # so a dumped config validates again.
    if not _from_file(info) and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return parse_duration(v)


def _percent_field(v: Any, info: ValidationInfo) -> Any:
    if not _from_file(info) and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)  # from Python: already a fraction
    return parse_percent(v)


Duration = Annotated[float, BeforeValidator(_duration_field), Field(gt=0)]
Percent = Annotated[float, BeforeValidator(_percent_field), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


PAPER_PORTS = frozenset({7497, 4002})
LIVE_PORTS = frozenset({7496, 4001})


class GatewayConfig(_Model):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(ge=1, le=65535)
    client_id: int = Field(ge=0, le=2_147_483_647)
    paper: bool  # mandatory: cross-checked against the port and the account ids
    accounts: tuple[str, ...] = ()  # empty = every managed account; else only these (and refuse others)
    connect_timeout: Duration = 10.0
    # Only used to print rules in plain words; amounts are always in each account's base currency.
    base_currency: str = Field(default="USD", min_length=1, max_length=8)

    @field_validator("accounts")
    @classmethod
    def _accounts_distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for a in v:
            if not a.strip() or a != a.strip():
                raise ValueError(f"account ids must be non-empty without spaces, got: {a!r}")
        if len(set(v)) != len(v):
            raise ValueError("account ids must be listed once each")
        return v


class HeartbeatConfig(_Model):
    interval: Duration = 1.0
    timeout: Duration = 1.5
    misses: int = Field(default=1, ge=1, le=100)  # consecutive unanswered heartbeats = gateway down
    reconnect_initial: Duration = 1.0
    reconnect_max: Duration = 60.0
    tcp_keepalive: bool = True

    @field_validator("interval")
    @classmethod
    def _interval_sensible(cls, v: float) -> float:
        # Faster than 100 ms floods the gateway; slower than a minute cannot notice a hang in time.
        if not 0.1 <= v <= 60.0:
            raise ValueError(f"must be between 100ms and 60s, got: {v:g}s")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout_sensible(cls, v: float) -> float:
        if not 0.05 <= v <= 60.0:
            raise ValueError(f"must be between 50ms and 60s, got: {v:g}s")
        return v

    @field_validator("reconnect_max")
    @classmethod
    def _backoff_ordered(cls, v: float, info: ValidationInfo) -> float:
        initial = info.data.get("reconnect_initial")
        if isinstance(initial, float) and v < initial:
            raise ValueError(f"must not be shorter than reconnect_initial ({initial:g}s), got: {v:g}s")
        return v


class PollingConfig(_Model):
    pnl: Duration = 1.0
    account_summary: Duration = 5.0
    positions: Duration = 2.0
    orders: Duration = 2.0
    executions: Duration = 5.0
    timeout: Duration = 5.0  # hard timeout for one poll


class MetricsConfig(_Model):
    enabled: bool = True
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=9108, ge=0, le=65535)  # 0 = ephemeral (tests)


class NotifyTarget(_Model):
    url: SecretStr
    severities: tuple[Severity, ...] = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)

    @field_validator("url")
    @classmethod
    def _looks_like_url(cls, v: SecretStr) -> SecretStr:
        # The message must never echo the value: it is a secret (tokens live in apprise URLs).
        if "://" not in v.get_secret_value():
            raise ValueError("must be an apprise URL like json://host/path (value not shown: it is secret)")
        return v


class NotificationsConfig(_Model):
    targets: tuple[NotifyTarget, ...] = ()
    urls_file: str | None = None  # one apprise URL per line, optional "severity,severity=URL"
    timeout: Duration = 5.0
    reminder_interval: Duration = 900.0  # an ongoing breach is reminded this often
    burst_window: Duration = 10.0  # more than burst_max messages in this window are summarised
    burst_max: int = Field(default=5, ge=1)
    gateway_down_after: Duration = 30.0  # notify when the gateway has been down this long


class KillConfig(_Model):
    dry_run: bool = False
    max_attempts: int = Field(default=3, ge=1, le=20)
    verify_timeout: Duration = 10.0  # per attempt, waiting for cancels / fills to show
    collar: Percent = 0.01  # aggressive limit = mark ± collar outside regular hours
    order_ref: str = Field(default="ibkr-watchdog", min_length=1, max_length=40)
    pacing: float = Field(default=40.0, gt=0, le=50)  # order messages per second, under IB's 50/s
    lockout: bool = True  # while TRIPPED, cancel any new working order
    lockout_flatten: bool = False  # while TRIPPED, also flatten any new position
    rearm_cron: str | None = None  # automatic re-arm at a session boundary, e.g. "0 18 * * sun-thu"
    timezone: str = "America/New_York"
    standby: bool = False  # second instance: cancel at once, close only after standby_grace
    standby_grace: Duration = 5.0

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("collar")
    @classmethod
    def _collar_range(cls, v: float) -> float:
        # A collar of 0 never fills outside regular hours; above 20 % is a typo, not a price.
        if not 0.0 < v <= 0.2:
            raise ValueError(f"must be more than 0% and at most 20%, got: {v * 100:g}%")
        return v

    @model_validator(mode="after")
    def _rearm_cron_valid(self) -> KillConfig:
        if self.rearm_cron is not None:
            check_cron(self.rearm_cron, self.timezone)
        return self


class Condition(_Model):
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
        if not _from_file(info) and isinstance(v, int | float) and not isinstance(v, bool):
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


class Schedule(_Model):
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


class Rule(_Model):
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

    @field_validator("name")
    @classmethod
    def _printable_name(cls, v: str) -> str:
        # Names become metric labels, audit records and quiet-window references: keep them plain.
        if v != v.strip() or any(not ch.isprintable() for ch in v):
            raise ValueError(f"must be printable without leading/trailing spaces, got: {v!r}")
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
        if self.warn_at is not None and self.when is not None:
            if not 0.0 < self.warn_at < 1.0:
                raise ValueError(f"warn_at must be between 0% and 100% (exclusive), got: {self.warn_at:.0%}")
            if self.when.metric is None or self.when.op not in COMPARISON_OPS:
                raise ValueError("warn_at needs a single comparison with <, <=, > or >=")
        return self


class QuietWindow(_Model):
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


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, alias="json")


class Config(_Model):
    gateway: GatewayConfig
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    polling: PollingConfig = PollingConfig()
    metrics: MetricsConfig = MetricsConfig()
    state_dir: str = Field(default="/var/lib/ibkr-watchdog", min_length=1)
    notifications: NotificationsConfig = NotificationsConfig()
    kill: KillConfig = KillConfig()
    logging: LoggingConfig = LoggingConfig()
    quiet_windows: tuple[QuietWindow, ...] = ()
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _cross_checked(self, info: ValidationInfo) -> Config:
        # The file loader runs cross_check itself on the raw tree (to report each problem at its
        # own line, alongside type errors); direct constructions get the same checks here.
        if isinstance(info.context, Mapping) and info.context.get("skip_cross_check"):
            return self
        problems = cross_check(self.model_dump(by_alias=True, mode="json"))
        if problems:
            raise ValueError("; ".join(f"{dotted(loc)}: {msg}" for loc, msg in problems))
        return self
