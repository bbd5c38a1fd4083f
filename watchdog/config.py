"""Configuration schema (frozen pydantic models) and the rules.yaml loader.

The schema below is the contract every other module reads. The loader (strict YAML with line
numbers, `${VAR}` / `file:` / systemd-credential interpolation, all errors at once) lives in
`watchdog/configload.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from watchdog.model import Action, Severity

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Percent = Annotated[float, BeforeValidator(parse_percent), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


PAPER_PORTS = frozenset({7497, 4002})
LIVE_PORTS = frozenset({7496, 4001})


class GatewayConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    client_id: int = Field(ge=0, le=2_147_483_647)
    paper: bool  # mandatory: cross-checked against the port and the account ids
    accounts: tuple[str, ...] = ()  # empty = every managed account; else only these (and refuse others)
    connect_timeout: Duration = 10.0


class HeartbeatConfig(_Model):
    interval: Duration = 1.0
    timeout: Duration = 1.5
    misses: int = Field(default=1, ge=1, le=100)  # consecutive unanswered heartbeats = gateway down
    reconnect_initial: Duration = 1.0
    reconnect_max: Duration = 60.0
    tcp_keepalive: bool = True


class PollingConfig(_Model):
    pnl: Duration = 1.0
    account_summary: Duration = 5.0
    positions: Duration = 2.0
    orders: Duration = 2.0
    executions: Duration = 5.0
    timeout: Duration = 5.0  # hard timeout for one poll


class MetricsConfig(_Model):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)  # 0 = ephemeral (tests)


class NotifyTarget(_Model):
    url: SecretStr
    severities: tuple[Severity, ...] = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)


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


class Condition(_Model):
    """One comparison, or a combination. Exactly one of (metric, all, any) is set."""

    metric: str | None = None
    op: Literal["<", "<=", ">", ">=", "==", "!="] | None = None
    value: float | None = None
    all: tuple[Condition, ...] | None = None
    any: tuple[Condition, ...] | None = None


class Schedule(_Model):
    cron: str  # five-field crontab: "55 15 * * mon-fri"
    timezone: str = "America/New_York"


class Rule(_Model):
    name: str = Field(min_length=1, max_length=64)
    when: Condition | None = None  # absent only for scheduled rules
    schedule: Schedule | None = None  # fires the action at these times (e.g. flatten before the close)
    for_: Duration | None = Field(default=None, alias="for")
    consecutive: int | None = Field(default=None, ge=1)
    action: Action = Action.ALERT
    severity: Severity = Severity.CRITICAL
    scope: str = "each"  # "each" watched account, "all" summed, or one account id
    warn_at: Percent | None = None  # alert when this fraction of the way to the threshold
    unknown_after: Duration = 60.0  # missing/stale data this long → an "unknown" alert
    stale_after: Duration = 30.0  # data older than this counts as missing
    enabled: bool = True


class QuietWindow(_Model):
    name: str
    cron: str  # when the window opens
    duration: Duration
    timezone: str = "America/New_York"
    rules: tuple[str, ...] = ()  # rules suspended inside the window (empty = all condition rules)


class LoggingConfig(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, alias="json")


class Config(_Model):
    gateway: GatewayConfig
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    polling: PollingConfig = PollingConfig()
    metrics: MetricsConfig = MetricsConfig()
    state_dir: str = "/var/lib/ibkr-watchdog"
    notifications: NotificationsConfig = NotificationsConfig()
    kill: KillConfig = KillConfig()
    logging: LoggingConfig = LoggingConfig()
    quiet_windows: tuple[QuietWindow, ...] = ()
    rules: tuple[Rule, ...] = ()
