"""Plain-words rendering of rules and the whole config, for `ibkr-watchdog check` and notifications."""

from __future__ import annotations

from watchdog.config.conditions import METRICS, MetricKind
from watchdog.config.schema import Condition, Config, QuietWindow, Rule, Schedule
from watchdog.model import Action

__all__ = [
    "OP_SYMBOLS",
    "describe_condition",
    "describe_config",
    "describe_rule",
    "describe_window",
    "format_value",
]

OP_SYMBOLS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "=", "!=": "≠"}
_OPS = OP_SYMBOLS
_MINUS = "−"


def format_value(metric: str, value: float, currency: str = "USD") -> str:
    """A threshold or reading in the metric's own unit: '−2,500 USD', '−3%', '500 ms', '12'."""
    info = METRICS.get(metric)
    kind = info.kind if info else MetricKind.COUNT
    sign = _MINUS if value < 0 else ""
    v = abs(value)
    if kind is MetricKind.MONEY:
        body = f"{v:,.0f}" if v == int(v) else f"{v:,.2f}"
        return f"{sign}{body} {currency}"
    if kind in (MetricKind.PERCENT, MetricKind.RATIO):
        return f"{sign}{round(v * 100, 2):g}%"  # a reading like 0.308881 shows as 30.89%
    if kind is MetricKind.SECONDS:
        return sign + _duration(v)
    return f"{sign}{round(v, 2):,.12g}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000, 1):g} ms"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{round(seconds, 2):g} s"


def _scope(scope: str) -> str:
    if scope == "each":
        return "each account"
    if scope == "all":
        return "all accounts summed"
    return scope


def describe_condition(cond: Condition, scope: str = "each", currency: str = "USD") -> str:
    """'daily P&L of each account ≤ −2,500 USD'; combinations read 'A and B (each account)'."""
    if cond.metric is not None and cond.op is not None and cond.value is not None:
        info = METRICS[cond.metric]
        where = f" of {_scope(scope)}" if info.per_account else ""
        return f"{info.label}{where} {_OPS[cond.op]} {format_value(cond.metric, cond.value, currency)}"
    text = _combination(cond, currency, top=True)
    per_account = any(METRICS[leaf.metric].per_account for leaf in cond.leaves() if leaf.metric)
    return f"{text} ({_scope(scope)})" if per_account else text


def _combination(cond: Condition, currency: str, *, top: bool) -> str:
    if cond.metric is not None and cond.op is not None and cond.value is not None:
        value = format_value(cond.metric, cond.value, currency)
        return f"{METRICS[cond.metric].label} {_OPS[cond.op]} {value}"
    joiner = " and " if cond.all is not None else " or "
    parts = cond.all if cond.all is not None else (cond.any or ())
    text = joiner.join(_combination(c, currency, top=False) for c in parts)
    return text if top or len(parts) == 1 else f"({text})"


def describe_schedule(schedule: Schedule) -> str:
    """'at 15:55 America/New_York mon-fri', or the raw cron for anything fancier."""
    fields = schedule.cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and fields[2:4] == ["*", "*"]:
        days = "every day" if fields[4] == "*" else fields[4]
        return f"at {int(fields[1]):02d}:{int(fields[0]):02d} {schedule.timezone} {days}"
    return f"on cron '{schedule.cron}' ({schedule.timezone})"


def describe_rule(rule: Rule, *, currency: str = "USD") -> str:
    """One sentence: 'close all when daily P&L of each account ≤ −2,500 USD for 10 s'."""
    prefix = "" if rule.enabled else "(disabled) "
    if rule.schedule is not None:
        verb = {Action.ALERT: "alert", Action.CANCEL_ALL: "cancel all orders", Action.CLOSE_ALL: "flatten"}
        where = "" if rule.scope == "each" else f" ({_scope(rule.scope)})"
        return (
            f"{prefix}{verb[rule.action]}{where} {describe_schedule(rule.schedule)} [{rule.severity.value}]"
        )
    assert rule.when is not None  # the schema guarantees when or schedule
    verb = {Action.ALERT: "alert", Action.CANCEL_ALL: "cancel all orders", Action.CLOSE_ALL: "close all"}
    text = f"{prefix}{verb[rule.action]} when {describe_condition(rule.when, rule.scope, currency)}"
    if rule.bot is not None:
        text += f" (bot {rule.bot})"
    if rule.for_ is not None:
        text += f" for {_duration(rule.for_)}"
    if rule.consecutive is not None:
        text += f" on {rule.consecutive} successive polls"
    if rule.warn_at is not None and rule.when.metric is not None and rule.when.value is not None:
        info = METRICS[rule.when.metric]
        if info.higher_is_healthy:
            text += f"; warn {rule.warn_at * 100:g}% of the way from the day's high"
        else:
            level = format_value(info.name, rule.warn_at * rule.when.value, currency)
            text += f"; warn at {rule.warn_at * 100:g}% of the way ({_OPS[rule.when.op or '<']} {level})"
    return f"{text} [{rule.severity.value}]"


def describe_window(window: QuietWindow) -> str:
    start = describe_schedule(Schedule(cron=window.cron, timezone=window.timezone))
    which = ", ".join(window.rules) if window.rules else "every condition rule"
    length = _duration(window.duration)
    return f"quiet window {window.name}: from {start.removeprefix('at ')} for {length}, suspends {which}"


def describe_config(config: Config) -> list[str]:
    """The effective configuration as lines a person can review before deploying it."""
    gw = config.gateway
    accounts = ", ".join(gw.accounts) if gw.accounts else "every managed account"
    hb = config.heartbeat
    metrics = f"on {config.metrics.host}:{config.metrics.port}" if config.metrics.enabled else "off"
    lines = [
        f"gateway {gw.host}:{gw.port} client id {gw.client_id} ({'paper' if gw.paper else 'LIVE'}), "
        f"watching {accounts}",
        f"heartbeat every {_duration(hb.interval)}, timeout {_duration(hb.timeout)}; metrics {metrics}",
        f"kill: {'DRY RUN, ' if config.kill.dry_run else ''}{config.kill.max_attempts} attempts, "
        f"lockout {'on' if config.kill.lockout else 'off'}; "
        f"{len(config.notifications.targets)} notification target(s)",
    ]
    if config.bots.heartbeats:
        bots = ", ".join(
            f"{b.name} ({', '.join(b.accounts) or 'every account'})" for b in config.bots.heartbeats
        )
        lines.append(f"dead-man's switch on {config.bots.listen} for {bots}")
    lines.append(f"{len(config.rules)} rule(s):")
    lines += [f"  {r.name}: {describe_rule(r, currency=gw.base_currency or 'USD')}" for r in config.rules]
    lines += [f"  {describe_window(w)}" for w in config.quiet_windows]
    return lines
