"""Plain checks behind the schema: metric catalogue, condition grammar (no eval), crons, cross-references."""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchdog.config.field_types import bounded_duration


class MetricKind(enum.Enum):
    """How a metric's threshold is written and shown."""

    MONEY = "money"  # account base currency; bare number: -2500
    PERCENT = "percent"  # a fraction of something; must be written with %: -3%
    RATIO = "ratio"  # a fraction 0..1; written 5% or 0.05
    COUNT = "count"  # a whole count; bare number
    RATE = "rate"  # events per minute; bare number
    SECONDS = "seconds"  # a duration; written with a unit: 500ms, 30s, 2m


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    kind: MetricKind
    label: str  # words used by `check` ("daily P&L")
    per_account: bool  # False: about the gateway connection, the same for every account
    # Metrics where a high value is healthy (cushion, net liquidation): warnings measure the way
    # from the day's high down to the threshold instead of from zero.
    higher_is_healthy: bool = False
    # A gateway outage moves it by itself (the outage's length, the heartbeat, the age of the data): a
    # breach of it during an outage is part of the outage, not a problem of its own (docs/alerting.md)
    moved_by_outage: bool = False


def _catalogue(*infos: MetricInfo) -> Mapping[str, MetricInfo]:
    return MappingProxyType({i.name: i for i in infos})


METRICS: Mapping[str, MetricInfo] = _catalogue(
    MetricInfo("daily_pnl", MetricKind.MONEY, "daily P&L", True),
    MetricInfo("daily_pnl_pct", MetricKind.PERCENT, "daily P&L in % of previous-day equity", True),
    MetricInfo("unrealized_pnl", MetricKind.MONEY, "unrealized P&L", True),
    MetricInfo("realized_pnl", MetricKind.MONEY, "realized P&L", True),
    MetricInfo("net_liquidation", MetricKind.MONEY, "net liquidation value", True, higher_is_healthy=True),
    MetricInfo("drawdown", MetricKind.MONEY, "drawdown from the day's high", True),
    MetricInfo("drawdown_pct", MetricKind.PERCENT, "drawdown in % of the day's high", True),
    MetricInfo("excess_liquidity", MetricKind.MONEY, "excess liquidity", True, higher_is_healthy=True),
    MetricInfo("cushion", MetricKind.RATIO, "cushion", True, True),
    MetricInfo("margin_ratio", MetricKind.RATIO, "maintenance margin / net liquidation", True),
    MetricInfo("gross_position_value", MetricKind.MONEY, "gross position value", True),
    MetricInfo("largest_position_value", MetricKind.MONEY, "largest single position value", True),
    MetricInfo("position_count", MetricKind.COUNT, "number of positions", True),
    MetricInfo("open_order_count", MetricKind.COUNT, "number of working orders", True),
    MetricInfo("fills_per_minute", MetricKind.RATE, "fills per minute", True),
    MetricInfo("orders_per_minute", MetricKind.RATE, "new orders per minute", True),
    MetricInfo("heartbeat_rtt", MetricKind.SECONDS, "heartbeat round trip", False, moved_by_outage=True),
    MetricInfo(
        "gateway_down_seconds",
        MetricKind.SECONDS,
        "time the gateway has been down",
        False,
        moved_by_outage=True,
    ),
    MetricInfo("data_age", MetricKind.SECONDS, "data age", True, moved_by_outage=True),
    # seconds since the rule's bot (`bot:`) last heartbeated; unknown until its first heartbeat
    # after a start or a clean stop (docs/rules.md, "Dead-man's switch")
    MetricInfo("bot_silence", MetricKind.SECONDS, "time since the bot's last heartbeat", False),
)

OUTAGE_METRICS = frozenset(name for name, info in METRICS.items() if info.moved_by_outage)
COMPARISON_OPS = frozenset({"<", "<=", ">", ">="})
OPS = ("<=", ">=", "==", "!=", "<", ">")  # longest first, for the tokenizer

_NUMBER = r"[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?"
_THRESHOLD = re.compile(rf"^\s*({_NUMBER})\s*(%|ms|s|m|h|d)?\s*$")
_CLAUSE = re.compile(
    rf"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*({_NUMBER}\s*(?:%|ms|s|m|h|d)?)\s*$"
)
_JOINER = re.compile(r"\s+(and|or)\s+")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXAMPLES = "e.g. 'daily_pnl <= -2500', 'cushion < 5%', 'heartbeat_rtt > 2s'"


def unknown_metric_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(METRICS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown metric {name!r}{hint}; known metrics: {', '.join(METRICS)}"


def parse_shorthand(text: str) -> dict[str, Any]:
    """`"daily_pnl <= -2500"` or clauses joined by ` and ` / ` or ` → the structured condition dict."""
    parts = _JOINER.split(text.strip())
    clauses, joiners = parts[0::2], set(parts[1::2])
    if len(joiners) > 1:
        raise ValueError(
            f"condition {text!r} mixes 'and' and 'or'; group them with the structured all: / any: form"
        )
    leaves: list[dict[str, Any]] = []
    for clause in clauses:
        m = _CLAUSE.match(clause)
        if not m:
            raise ValueError(
                f"cannot read condition {clause.strip()!r}: write 'metric op number', {_EXAMPLES}"
            )
        leaves.append({"metric": m.group(1), "op": m.group(2), "value": m.group(3).replace(" ", "")})
    if len(leaves) == 1:
        return leaves[0]
    return {"all" if joiners == {"and"} else "any": tuple(leaves)}


def parse_threshold(raw: Any, info: MetricInfo | None) -> float:
    """A condition's value in the metric's base unit. `info` None (unknown metric) accepts any unit."""
    if isinstance(raw, bool):
        raise ValueError(f"must be a number, got: {raw!r}")
    if isinstance(raw, int | float):
        number, unit = float(raw), None
    elif isinstance(raw, str) and (m := _THRESHOLD.match(raw)):
        number, unit = float(m.group(1)), m.group(2)
    else:
        raise ValueError(f"must be a number like -2500, 3% or 2s, got: {raw!r}")
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got: {raw!r}")
    if info is None:
        return number / 100.0 if unit == "%" else number * _SECONDS.get(unit or "s", 1.0)
    kind = info.kind
    if kind in (MetricKind.MONEY, MetricKind.COUNT, MetricKind.RATE):
        if unit is not None:
            extra = (
                " (use daily_pnl_pct for a percentage)" if unit == "%" and info.name == "daily_pnl" else ""
            )
            raise ValueError(f"{info.name} is a plain number without a unit{extra}, got: {raw!r}")
        return number
    if kind is MetricKind.PERCENT:
        if unit != "%":
            raise ValueError(f"{info.name} is a percentage: write it with %, e.g. -3%, got: {raw!r}")
        return number / 100.0
    if kind is MetricKind.RATIO:
        if unit == "%":
            return number / 100.0
        if unit is None and 0.0 <= number <= 1.0:
            return number
        raise ValueError(f"{info.name} is a ratio: write 5% or 0.05 (between 0 and 1), got: {raw!r}")
    if unit is None or unit == "%":
        raise ValueError(f"{info.name} is a duration: write it with a unit, e.g. 500ms, 2s, 5m, got: {raw!r}")
    if number < 0:
        raise ValueError(f"{info.name} is a duration and cannot be negative, got: {raw!r}")
    return bounded_duration(number * _SECONDS[unit], raw)


def check_timezone(tz: str) -> str:
    """A valid IANA time zone name (e.g. America/New_York), or ValueError."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name like America/New_York") from None
    return tz


def check_cron(expr: str, tz: str) -> None:
    """A five-field crontab expression APScheduler accepts, or ValueError with its reason."""
    from apscheduler.triggers.cron import CronTrigger  # heavy import; only configs with crons pay it

    try:
        CronTrigger.from_crontab(expr, timezone=ZoneInfo(tz))
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise ValueError(
            f"invalid cron expression {expr!r} ({e}); use five fields: minute hour day month weekday, "
            f"e.g. '55 15 * * mon-fri'"
        ) from None


Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    """('rules', 0, 'when') → 'rules[0].when'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def cross_check(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Checks spanning sections, on a plain dict tree (raw YAML or a dump): (location, message) pairs.

    Tolerates junk of the wrong type (the schema reports that) so it can run before validation.
    """
    problems: list[tuple[Loc, str]] = []
    gateway = data.get("gateway")
    accounts_raw = gateway.get("accounts") if isinstance(gateway, Mapping) else None
    accounts = [a for a in accounts_raw if isinstance(a, str)] if isinstance(accounts_raw, list) else []
    rules = data.get("rules")
    names: dict[str, int] = {}
    if isinstance(rules, list):
        for i, rule in enumerate(rules):
            if not isinstance(rule, Mapping):
                continue
            name = rule.get("name")
            if isinstance(name, str):
                if name in names:
                    problems.append(
                        ((("rules", i, "name")), f"duplicate rule name {name!r} (also rules[{names[name]}])")
                    )
                else:
                    names[name] = i
            scope = rule.get("scope")
            if isinstance(scope, str) and accounts and scope not in ("each", "all", *accounts):
                problems.append(
                    (
                        ("rules", i, "scope"),
                        f"unknown scope {scope!r}: use 'each', 'all' or one of the watched accounts "
                        f"({', '.join(accounts)}){_suggest(scope, accounts)}",
                    )
                )
    problems += _check_bot_references(data, rules, accounts)
    windows = data.get("quiet_windows")
    if isinstance(windows, list):
        for i, window in enumerate(windows):
            refs = window.get("rules") if isinstance(window, Mapping) else None
            if not isinstance(refs, list):
                continue
            for j, ref in enumerate(refs):
                if isinstance(ref, str) and ref not in names:
                    problems.append(
                        (
                            ("quiet_windows", i, "rules", j),
                            f"no rule named {ref!r}{_suggest(ref, list(names))}",
                        )
                    )
    return problems


def _check_bot_references(data: Mapping[str, Any], rules: Any, accounts: list[str]) -> list[tuple[Loc, str]]:
    """Rules name configured bots; bots trade watched accounts; a bot rule's scope is its bot's accounts."""
    problems: list[tuple[Loc, str]] = []
    bots = data.get("bots")
    entries = bots.get("heartbeats") if isinstance(bots, Mapping) else None
    known: list[str] = []
    if isinstance(entries, list):
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            if isinstance(entry.get("name"), str):
                known.append(entry["name"])
            traded = entry.get("accounts")
            if not (isinstance(traded, list) and accounts):
                continue
            for j, account in enumerate(traded):
                if isinstance(account, str) and account not in accounts:
                    problems.append(
                        (
                            ("bots", "heartbeats", i, "accounts", j),
                            f"account {account!r} is not watched (gateway.accounts: {', '.join(accounts)})"
                            f"{_suggest(account, accounts)}",
                        )
                    )
    if not isinstance(rules, list):
        return problems
    for i, rule in enumerate(rules):
        bot = rule.get("bot") if isinstance(rule, Mapping) else None
        if not isinstance(bot, str):
            continue
        if bot not in known:
            listed = ", ".join(known) or "none configured"
            problems.append(
                (
                    ("rules", i, "bot"),
                    f"no bot named {bot!r} in bots.heartbeats ({listed}){_suggest(bot, known)}",
                )
            )
        scope = rule.get("scope")
        if isinstance(scope, str) and scope != "each":
            problems.append(
                (
                    ("rules", i, "scope"),
                    "a bot rule's scope is its bot's accounts (bots.heartbeats[].accounts)",
                )
            )
    return problems
