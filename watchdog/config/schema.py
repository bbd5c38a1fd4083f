"""Configuration schema (frozen pydantic models) of rules.yaml, with its validators.

The schema is the contract every other module reads, and this module its one address: the
connection, polling, metrics, notification, kill and logging sections and the whole `Config` are
here; the rule sections (conditions, schedules, rules, quiet windows) in
`watchdog/config/rule_schema.py`; durations, percentages and the frozen base model in
`watchdog/config/field_types.py`. Both are re-exported. The loader (strict YAML with line
numbers, `${VAR}` / `file:` / systemd-credential interpolation, all errors at once) lives in
`watchdog/config/load.py`; the metric catalogue and condition grammar in `watchdog/config/conditions.py`;
the plain-words rendering of rules in `watchdog/config/describe.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from watchdog.config.bots import BotHeartbeat, BotsConfig
from watchdog.config.conditions import (
    METRICS,
    MetricInfo,
    MetricKind,
    check_cron,
    check_timezone,
    cross_check,
    dotted,
)
from watchdog.config.field_types import Duration, FrozenModel, Host, Percent, parse_duration, parse_percent
from watchdog.config.rule_schema import Condition, QuietWindow, Rule, Schedule
from watchdog.model import Severity

__all__ = [
    "LIVE_PORTS",
    "METRICS",
    "PAPER_PORTS",
    "BotHeartbeat",
    "BotsConfig",
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

PAPER_PORTS = frozenset({7497, 4002})
LIVE_PORTS = frozenset({7496, 4001})


class GatewayConfig(FrozenModel):
    host: Host = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    client_id: int = Field(ge=0, le=2_147_483_647)
    paper: bool  # mandatory: cross-checked against the port and the account ids
    accounts: tuple[str, ...] = ()  # empty = every managed account; else only these (and refuse others)
    connect_timeout: Duration = 10.0
    # The watched accounts' base currency: picks the account summary rows when an account reports
    # several currencies, and prints rules in words. Unset: learned from the gateway (BASE ledger
    # block, else a single-currency answer); amounts are always in each account's base currency.
    base_currency: str | None = None

    @field_validator("base_currency")
    @classmethod
    def _currency_code(cls, v: str | None) -> str | None:
        if v is not None and not (len(v) == 3 and v.isalpha() and v.isascii()):
            raise ValueError(f"must be a three-letter currency code like USD or EUR, got: {v!r}")
        return v.upper() if v is not None else None

    @field_validator("accounts")
    @classmethod
    def _accounts_distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for a in v:
            if not a.strip() or a != a.strip():
                raise ValueError(f"account ids must be non-empty without spaces, got: {a!r}")
        if len(set(v)) != len(v):
            raise ValueError("account ids must be listed once each")
        return v


class HeartbeatConfig(FrozenModel):
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


class PollingConfig(FrozenModel):
    pnl: Duration = 1.0
    account_summary: Duration = 5.0
    positions: Duration = 2.0
    orders: Duration = 2.0
    executions: Duration = 5.0
    timeout: Duration = 5.0  # hard timeout for one poll


class MetricsConfig(FrozenModel):
    enabled: bool = True
    host: Host = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)  # 0 = ephemeral (tests)


class NotifyTarget(FrozenModel):
    url: SecretStr
    severities: tuple[Severity, ...] = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)

    @field_validator("url")
    @classmethod
    def _looks_like_url(cls, v: SecretStr) -> SecretStr:
        # The message must never echo the value: it is a secret (tokens live in apprise URLs).
        if "://" not in v.get_secret_value():
            raise ValueError("must be an apprise URL like json://host/path (value not shown: it is secret)")
        return v


class NotificationsConfig(FrozenModel):
    targets: tuple[NotifyTarget, ...] = ()
    urls_file: str | None = None  # one apprise URL per line, optional "severity,severity=URL"
    timeout: Duration = 5.0
    reminder_interval: Duration = 900.0  # an ongoing breach is reminded this often
    burst_window: Duration = 10.0  # more than burst_max messages in this window are summarised
    burst_max: int = Field(default=5, ge=1)
    gateway_down_after: Duration = 30.0  # notify when the gateway has been down this long


class KillConfig(FrozenModel):
    dry_run: bool = False
    max_attempts: int = Field(default=3, ge=1, le=20)
    verify_timeout: Duration = 10.0  # per attempt, waiting for cancels / fills to show
    collar: Percent = 0.01  # aggressive limit = price ± collar outside regular hours (first attempt)
    collar_step: Percent = 0.01  # each retry widens the collar by this much ...
    max_collar: Percent = 0.05  # ... up to this
    max_price_age: Duration = 1200.0  # a quote older than this is reported, never used (delayed ≈ 900 s)
    max_order_value: float | None = Field(default=None, gt=0)  # per closing order, contract currency
    max_order_quantity: float | None = None  # per closing order, whole shares / contracts (≥ 1)
    order_ref: str = Field(default="ibkr-watchdog", min_length=1, max_length=40)
    pacing: float = Field(default=40.0, gt=0, le=50)  # order messages per second, under IB's 50/s
    lockout: bool = True  # while TRIPPED, cancel new risk-increasing orders (docs/killswitch.md)
    lockout_flatten: bool = False  # while TRIPPED, also flatten any new position
    rearm_cron: str | None = None  # automatic re-arm at a session boundary, e.g. "0 18 * * sun-thu"
    timezone: str = "America/New_York"
    standby: bool = False  # second instance: cancel at once, close only after standby_grace
    standby_grace: Duration = 5.0
    # every this often (and after each reconnect) plan a close_all against the live book, sending nothing
    readiness_interval: Duration = 60.0

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

    @field_validator("max_order_quantity")
    @classmethod
    def _quantity_limit_whole(cls, v: float | None) -> float | None:
        # closing orders are sized in whole shares / contracts (IB refuses fractional API orders):
        # a limit under one unit could never let a single order through
        if v is not None and v < 1:
            raise ValueError(f"must be at least 1 (whole shares / contracts per closing order), got: {v:g}")
        return v

    @field_validator("max_collar")
    @classmethod
    def _max_collar_range(cls, v: float) -> float:
        if not 0.0 < v <= 0.2:
            raise ValueError(f"must be more than 0% and at most 20%, got: {v * 100:g}%")
        return v

    @model_validator(mode="after")
    def _collar_within_max(self) -> KillConfig:
        if self.max_collar < self.collar:
            raise ValueError(
                f"max_collar ({self.max_collar * 100:g}%) must be at least collar ({self.collar * 100:g}%)"
            )
        return self

    @model_validator(mode="after")
    def _rearm_cron_valid(self) -> KillConfig:
        if self.rearm_cron is not None:
            check_cron(self.rearm_cron, self.timezone)
        return self


class LoggingConfig(FrozenModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, alias="json")


class Config(FrozenModel):
    gateway: GatewayConfig
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    polling: PollingConfig = PollingConfig()
    metrics: MetricsConfig = MetricsConfig()
    state_dir: str = Field(default="/var/lib/ibkr-watchdog", min_length=1)
    notifications: NotificationsConfig = NotificationsConfig()
    kill: KillConfig = KillConfig()
    logging: LoggingConfig = LoggingConfig()
    quiet_windows: tuple[QuietWindow, ...] = ()
    bots: BotsConfig = BotsConfig()
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
