"""Static checks beyond the schema, shared by `ibkr-watchdog check` and `run` (before anything is announced).

Errors stop `run` before it binds the metrics port or notifies "started" — the same ones `check`
reports, so `ExecStartPre=… check` catches them: a paper config on a live port (the safety
valve), a `notifications.urls_file` that cannot be read or holds no valid apprise URL.
Warnings never stop anything: a likely sign slip in a loss rule, metrics exposed beyond loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import apprise

from watchdog.config.describe import format_value
from watchdog.config.schema import Condition, Config
from watchdog.errors import SafetyValveError
from watchdog.gateway.valve import check_port
from watchdog.outputs.targets import load_targets

_LOSS_METRICS = frozenset({"daily_pnl", "daily_pnl_pct", "unrealized_pnl", "realized_pnl"})


@dataclass(frozen=True, slots=True)
class Preflight:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    targets: int = 0  # notification targets that would be used


def preflight(config: Config) -> Preflight:
    """Every static check that needs no gateway; never raises for a bad config, it lists it."""
    errors: list[str] = []
    notes: list[str] = []
    gw = config.gateway
    try:
        logging.getLogger("watchdog.gateway.client").disabled = True  # its non-standard-port log line
        check_port(gw.port, gw.paper)
    except SafetyValveError as exc:
        errors.append(f"gateway.port: {exc}")
    finally:
        logging.getLogger("watchdog.gateway.client").disabled = False
    count, problems = _targets(config)
    errors += [f"notifications: {p}" for p in problems]
    if count == 0 and not problems:
        # a fresh install's credential file holds only comments: legal, but nobody would hear a kill
        where = f" ({config.notifications.urls_file} holds none)" if config.notifications.urls_file else ""
        notes.append(f"notifications: no notification target{where}: nobody will be told about a kill")
    notes += _metrics_host(config)
    notes += list(_sign_slips(config))
    return Preflight(errors, notes, count)


def _targets(config: Config) -> tuple[int, list[str]]:
    specs, problems = load_targets(config.notifications)
    count = 0
    asset = apprise.AppriseAsset(storage_mode="memory")
    apprise_log = logging.getLogger("apprise")
    before = apprise_log.disabled
    apprise_log.disabled = True  # it logs the URL it rejects: a secret
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"apprise(\.|$)")
            for spec in specs:
                if apprise.Apprise(asset=asset).add(spec.url):
                    count += 1
                else:
                    problems.append(f"{spec.label}: not a valid apprise URL (unknown service or bad syntax)")
    finally:
        apprise_log.disabled = before
    return count, problems


def _metrics_host(config: Config) -> list[str]:
    m = config.metrics
    if not m.enabled:
        return []
    host = m.host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return []
    return [
        f"metrics.host {m.host} serves /metrics (P&L, positions, account ids) beyond this host, with no "
        "authentication: keep 127.0.0.1 and let Prometheus reach it over an SSH tunnel or a VPN "
        "(docs/deployment.md, 'Metrics and Prometheus')"
    ]


def _comparisons(cond: Condition | None) -> Iterator[Condition]:
    if cond is None:
        return
    if cond.metric is not None:
        yield cond
    for sub in (*(cond.all or ()), *(cond.any or ())):
        yield from _comparisons(sub)


def _sign_slips(config: Config) -> Iterator[str]:
    """A loss limit written with a positive threshold (`daily_pnl <= 2500`) fires on every quiet day."""
    for rule in config.rules:
        for c in _comparisons(rule.when):
            if c.metric in _LOSS_METRICS and c.op in ("<", "<=") and c.value is not None and c.value > 0:
                shown = format_value(c.metric, c.value)
                minus = format_value(c.metric, -c.value)
                what = "CLOSE ALL POSITIONS" if rule.action.value == "close_all" else rule.action.value
                yield (
                    f"rules.{rule.name}: {c.metric} {c.op} {shown} fires ({what}) whenever it is below "
                    f"+{shown}, on any day that is not a good one; a loss limit is negative: did you "
                    f"mean {c.metric} {c.op} {minus}?"
                )
