"""Prometheus metrics: a private registry, `observe_*` methods over model objects, a `/metrics` server.

Every series is prefixed `ibkr_watchdog_` and uses base units (seconds, ratios, account currency).
Nothing here may ever raise into the kill path: the observers only set numbers, and the daemon
continues without the HTTP server when its port cannot be bound. The rule and kill-switch series live
in `rule_metrics.py` and `kill_metrics.py`; the methods here delegate to them.
"""

from __future__ import annotations

import asyncio
import math
import platform
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from watchdog import __version__
from watchdog.model import Health, KillReport, Snapshot, TradingState
from watchdog.outputs.bot_metrics import BotMetrics
from watchdog.outputs.kill_metrics import KillMetrics
from watchdog.outputs.label_bounds import LabelBound
from watchdog.outputs.metrics_server import MetricsServer, MetricsServerError
from watchdog.outputs.readiness_metrics import ReadinessMetrics
from watchdog.outputs.rule_metrics import (
    RULE_STATES,
    RuleInfo,
    RuleMetrics,
    RuleStatusLike,
    RuleTuple,
    number_or_nan,
    rule_proximity,
)

__all__ = ["RULE_STATES", "Metrics", "MetricsServerError", "RuleStatusLike", "rule_proximity"]

PREFIX = "ibkr_watchdog_"
RTT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# Account gauge name → (AccountState field, help). Names follow DESIGN.md, fields model.py.
ACCOUNT_FIELDS: dict[str, tuple[str, str]] = {
    "daily_pnl": ("daily_pnl", "P&L since the start of the trading day, account currency"),
    "unrealized_pnl": ("unrealized_pnl", "Unrealized P&L of open positions, account currency"),
    "realized_pnl": ("realized_pnl", "Realized P&L today, account currency"),
    "net_liquidation": ("net_liquidation", "Net liquidation value, account currency"),
    "excess_liquidity": ("excess_liquidity", "Excess liquidity (equity with loan minus maintenance margin)"),
    "cushion_ratio": ("cushion", "Excess liquidity / net liquidation, 0..1"),
    "maint_margin_requirement": ("maint_margin_req", "Maintenance margin requirement, account currency"),
    "gross_position_value": ("gross_position_value", "Gross position value, account currency"),
}

# Label bounds (see label_bounds.py): error codes IB documents number ~300, and a deployment watches a
# handful of accounts, a few dozen rules and a few kill triggers; beyond these the label set is an attack.
MAX_ERROR_CODES = 100
MAX_ACCOUNTS = 100
MAX_RULE_SERIES = 1000  # (rule, account) pairs
MAX_TRIGGERS = 100


class Metrics:
    """All watchdog series on a private `CollectorRegistry` (never the process-wide default)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r, p = self.registry, PREFIX
        if process_metrics:
            ProcessCollector(registry=r)  # process_start_time_seconds feeds the restart-loop alert
        self._server: MetricsServer | None = None
        self._accounts: set[str] = set()
        self.labels_dropped = Counter(
            p + "metric_labels_dropped",
            "Label values refused because the metric's label set is full (folded into 'other' or not shown)",
            ["metric"],
            registry=r,
        )
        self._error_codes = LabelBound("gateway_errors_total", MAX_ERROR_CODES, self.labels_dropped)
        self._account_bound = LabelBound("account", MAX_ACCOUNTS, self.labels_dropped)
        self._rule_bound = LabelBound("rule", MAX_RULE_SERIES, self.labels_dropped)
        self._triggers = LabelBound("kills_total", MAX_TRIGGERS, self.labels_dropped)

        self.build_info = Gauge(
            p + "build_info", "Build of the running watchdog", ["version", "python"], registry=r
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)

        # gateway
        self.gateway_connected = Gauge(p + "gateway_connected", "1 while the API socket is up", registry=r)
        self.write_access = Gauge(
            p + "write_access",
            "1 when the API accepts orders, 0 when it is read-only (error 321), NaN until proven",
            registry=r,
        )
        self.write_access.set(math.nan)
        self.gateway_health = Gauge(
            p + "gateway_health", "Gateway health, 1 for the current state", ["state"], registry=r
        )
        self.heartbeat_rtt = Histogram(
            p + "heartbeat_rtt_seconds", "reqCurrentTime round trip", buckets=RTT_BUCKETS, registry=r
        )
        self.last_heartbeat = Gauge(
            p + "last_heartbeat_timestamp_seconds", "Epoch of the last answered heartbeat", registry=r
        )
        self.clock_skew = Gauge(
            p + "gateway_clock_skew_seconds", "Gateway clock minus the watchdog's clock", registry=r
        )
        self.reconnects = Counter(p + "reconnects", "Reconnections to the gateway", registry=r)
        self.gateway_errors = Counter(
            p + "gateway_errors", "Error messages from the gateway by code", ["code"], registry=r
        )
        self.malformed = Counter(
            p + "malformed_messages", "Gateway messages that could not be decoded", registry=r
        )

        # polling
        self.polls = Counter(p + "polls", "Polls run, by poll", ["poll"], registry=r)
        self.poll_failures = Counter(
            p + "poll_failures", "Polls that raised or timed out, by poll", ["poll"], registry=r
        )
        self.last_successful_poll = Gauge(
            p + "last_successful_poll_timestamp_seconds", "Epoch of the last good poll", ["poll"], registry=r
        )
        self.last_snapshot = Gauge(
            p + "last_snapshot_timestamp_seconds", "Epoch the last snapshot was taken", registry=r
        )

        # per account
        self.account_values = {
            name: Gauge(p + name, help_text, ["account"], registry=r)
            for name, (_, help_text) in ACCOUNT_FIELDS.items()
        }
        self.open_orders = Gauge(
            p + "open_orders", "Working orders of the account, every client", ["account"], registry=r
        )
        self.positions = Gauge(p + "positions", "Non-zero positions of the account", ["account"], registry=r)
        self.account_data_ts = Gauge(
            p + "account_data_timestamp_seconds", "Epoch of the newest account value", ["account"], registry=r
        )

        self.rules = RuleMetrics(r, p, self._rule_bound)  # rule_* by (rule, account), rule_info
        self.kill = KillMetrics(r, p, self._triggers)  # tripped, trading_state, kill_*, dry_run
        # the account label shares the account series' bound (admit reads it when a plan arrives)
        self.readiness = ReadinessMetrics(r, p, admit=lambda account: self._account_bound.admit(account))

        # notifications and config
        self.notifications = Counter(
            p + "notifications", "Notification deliveries attempted", ["severity"], registry=r
        )
        self.notification_failures = Counter(
            p + "notification_failures",
            "Notification deliveries that failed or timed out",
            ["severity"],
            registry=r,
        )
        self.notifications_dropped = Counter(
            p + "notifications_dropped", "Notifications dropped because a send queue was full", registry=r
        )
        self.reload_ok = Gauge(
            p + "config_last_reload_successful", "1 if the last config (re)load succeeded", registry=r
        )
        self.reload_ts = Gauge(
            p + "config_last_reload_timestamp_seconds",
            "Epoch of the last config (re)load attempt",
            registry=r,
        )

        self.bots = BotMetrics(r)  # the dead-man's switch series (bot_*)

        # Fixed label sets exist from the start so dashboards and alerts see zeros, not gaps.
        self.reload_ok.set(1)
        self.set_health(Health.UNKNOWN)
        for sev in ("info", "warning", "critical"):
            self.notifications.labels(sev)
            self.notification_failures.labels(sev)

    # gateway -----------------------------------------------------------------------------
    def set_connected(self, connected: bool) -> None:
        self.gateway_connected.set(1 if connected else 0)

    def set_health(self, health: Health) -> None:
        for h in Health:
            self.gateway_health.labels(h.value).set(1 if h is health else 0)

    def observe_heartbeat(self, rtt: float, at: float, skew: float | None = None) -> None:
        self.heartbeat_rtt.observe(max(0.0, rtt))
        self.last_heartbeat.set(at)
        if skew is not None:
            self.clock_skew.set(skew)

    def observe_reconnect(self) -> None:
        self.reconnects.inc()

    def observe_gateway_error(self, code: int) -> None:
        self.gateway_errors.labels(self._error_codes.fold(str(code))).inc()

    def observe_malformed(self) -> None:
        self.malformed.inc()

    # polls and snapshots -------------------------------------------------------------------
    def declare_polls(self, names: Iterable[str]) -> None:
        """Create the poll counters at zero, so `increase()` sees the very first failure."""
        for name in names:
            self.polls.labels(name)
            self.poll_failures.labels(name)

    def observe_poll(self, name: str, ok: bool, at: float) -> None:
        self.polls.labels(name).inc()
        if ok:
            self.last_successful_poll.labels(name).set(at)
        else:
            self.poll_failures.labels(name).inc()

    def observe_snapshot(self, snapshot: Snapshot) -> None:
        """Account gauges from one snapshot; accounts absent from it lose their series."""
        gw = snapshot.gateway
        self.set_connected(gw.connected)
        self.write_access.set(math.nan if gw.write_access is None else float(gw.write_access))
        self.set_health(gw.health)
        if gw.clock_skew is not None:
            self.clock_skew.set(gw.clock_skew)
        self.last_snapshot.set(snapshot.taken_at)
        orders: dict[str, int] = {}
        for o in snapshot.open_orders:
            if o.is_working:
                orders[o.account] = orders.get(o.account, 0) + 1
        positions: dict[str, int] = {}
        for pos in snapshot.positions:
            if pos.quantity != 0:
                positions[pos.account] = positions.get(pos.account, 0) + 1
        for account, state in snapshot.accounts.items():
            if not self._account_bound.admit(account):
                continue
            for name, (field, _) in ACCOUNT_FIELDS.items():
                self.account_values[name].labels(account).set(number_or_nan(state.value(field)))
            self.open_orders.labels(account).set(orders.get(account, 0))
            self.positions.labels(account).set(positions.get(account, 0))
            if state.as_of:
                self.account_data_ts.labels(account).set(max(state.as_of.values()))
        self.retain_accounts(snapshot.accounts.keys())

    def retain_accounts(self, accounts: Iterable[str]) -> None:
        """Drop the series of accounts no longer watched (after a reload)."""
        keep = set(accounts)
        for gone in self._accounts - keep:
            for g in (*self.account_values.values(), self.open_orders, self.positions, self.account_data_ts):
                g.remove(gone)  # a no-op for label sets that were never set
            self._account_bound.forget(gone)
        self._accounts = keep

    # rules -----------------------------------------------------------------------------------
    def observe_rule_status(self, statuses: Iterable[RuleStatusLike | RuleTuple]) -> None:
        """Set every rule series from one complete evaluation; rules not in it lose their series.

        Runs on every evaluation (several a second): see `RuleMetrics.observe`.
        """
        self.rules.observe(statuses)

    def retain_rules(self, keys: Iterable[tuple[str, str]]) -> None:
        self.rules.retain(keys)

    # kill switch -----------------------------------------------------------------------------
    def observe_kill(self, report: KillReport) -> None:
        self.kill.observe(report)

    def declare_rules(self, rules: Iterable[RuleInfo | tuple[str, str, str]], *, dry_run: bool) -> None:
        """The configured rules (`RuleInfo`, or (name, action, severity)): `rule_info`, and
        `kills_total` at 0 for every trigger known in advance (each kill rule, the two manual signals),
        so `increase()` sees the first kill. Call at start and after every reload."""
        configured = [RuleInfo(*r) for r in rules]  # read twice
        self.kill.declare(configured, dry_run=dry_run)
        self.rules.declare(configured)

    def set_tripped(self, tripped: bool) -> None:
        self.kill.set_tripped(tripped)

    def set_trading_state(self, state: TradingState) -> None:
        self.kill.set_tripped(state is TradingState.TRIPPED)

    def set_pending(self, pending: bool) -> None:
        """`pending` = a kill waits for the gateway (not: a running kill's pending record exists)."""
        self.kill.set_pending(pending)

    def set_kill_state(self, *, running: bool, pending: bool) -> None:
        """The two kill gauges together: a running kill is never also "pending"."""
        self.kill.set_state(running=running, pending=pending)

    # notifications and config ---------------------------------------------------------------------
    def observe_notification(self, severity: str, ok: bool) -> None:
        """Matches the notifier's `on_result(severity, ok)` hook."""
        self.notifications.labels(severity).inc()
        if not ok:
            self.notification_failures.labels(severity).inc()

    def observe_notification_dropped(self, count: int = 1) -> None:
        self.notifications_dropped.inc(count)

    def observe_reload(self, ok: bool, at: float) -> None:
        self.reload_ok.set(1 if ok else 0)
        self.reload_ts.set(at)

    # HTTP ------------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 9108) -> int:
        """Serve `/metrics`; returns the bound port (port 0 = ephemeral). Raises MetricsServerError."""
        if self._server is not None:
            return self._server.port
        server = MetricsServer(self.registry)
        await asyncio.to_thread(server.start, host, port)
        self._server = server
        return server.port

    def stop(self) -> None:
        """Stop serving (idempotent); blocks at most ~0.1 s while the server thread notices."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def port(self) -> int | None:
        return None if self._server is None else self._server.port
