"""Metrics: private registry, values from model objects, label sets that follow reloads, a server."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import urllib.error
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from tests.outputs.conftest import make_kill_report, make_snapshot
from watchdog.model import GatewayStatus, Health, KillOutcome, TradingState
from watchdog.outputs.metrics import (
    MAX_ERROR_CODES,
    MAX_RULE_SERIES,
    Metrics,
    MetricsServerError,
    rule_proximity,
)

P = "ibkr_watchdog_"


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(P + name, labels)


def test_it_never_touches_the_default_registry() -> None:
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.set_connected(True)
    assert m.registry is reg
    assert REGISTRY.get_sample_value(P + "gateway_connected") is None
    assert value(m, "gateway_connected") == 1


def test_snapshot_sets_account_values_and_counts() -> None:
    m = Metrics()
    m.observe_snapshot(make_snapshot())
    assert value(m, "net_liquidation", account="DU111") == 100_000.0
    assert value(m, "net_liquidation", account="DU222") == 100_001.0
    assert value(m, "daily_pnl", account="DU111") == -800.0
    assert value(m, "cushion_ratio", account="DU111") == 0.5
    assert value(m, "maint_margin_requirement", account="DU222") == 20_000.0
    assert value(m, "open_orders", account="DU111") == 1  # the filled order is not working
    assert value(m, "open_orders", account="DU222") == 0
    assert value(m, "positions", account="DU222") == 1
    assert value(m, "gateway_connected") == 1
    assert value(m, "gateway_health", state="healthy") == 1
    assert value(m, "gateway_health", state="down") == 0
    assert value(m, "gateway_clock_skew_seconds") == pytest.approx(0.2)


def test_an_unknown_account_value_is_nan_not_zero() -> None:
    m = Metrics()
    m.observe_snapshot(make_snapshot())
    v = value(m, "realized_pnl", account="DU222")
    assert v is not None and math.isnan(v)


def test_an_account_dropped_by_a_reload_loses_its_series() -> None:
    m = Metrics()
    m.observe_snapshot(make_snapshot(("DU111", "DU222")))
    m.observe_snapshot(make_snapshot(("DU111",)))
    assert value(m, "net_liquidation", account="DU222") is None
    assert value(m, "open_orders", account="DU222") is None
    assert value(m, "net_liquidation", account="DU111") == 100_000.0


def test_rule_status_sets_value_threshold_and_one_state() -> None:
    m = Metrics()
    m.observe_rule_status(
        [("daily_loss", "DU111", -1200.0, -1000.0, "breach"), ("stale", None, None, 30.0, "unknown")]
    )
    assert value(m, "rule_value", rule="daily_loss", account="DU111") == -1200.0
    assert value(m, "rule_threshold", rule="daily_loss", account="DU111") == -1000.0
    assert value(m, "rule_breached", rule="daily_loss", account="DU111") == 1
    assert value(m, "rule_state", rule="daily_loss", account="DU111", state="breach") == 1
    assert value(m, "rule_state", rule="daily_loss", account="DU111", state="ok") == 0
    assert value(m, "rule_unknown", rule="stale", account="all") == 1
    assert value(m, "rule_breached", rule="stale", account="all") == 0


def test_a_rule_removed_by_a_reload_loses_its_series() -> None:
    m = Metrics()
    m.observe_rule_status([("a", "DU1", -1.0, -10.0, "ok"), ("b", "DU1", 1.0, 10.0, "ok")])
    m.observe_rule_status([("a", "DU1", -2.0, -10.0, "ok")])
    assert value(m, "rule_value", rule="b", account="DU1") is None
    assert value(m, "rule_state", rule="b", account="DU1", state="ok") is None
    assert value(m, "rule_value", rule="a", account="DU1") == -2.0


def test_rule_status_objects_with_an_operator_give_a_proximity() -> None:
    class Status:
        rule, account, value, threshold, state, op = "cushion", "DU1", 0.125, 0.10, TradingState.ARMED, "<"

    m = Metrics()
    m.observe_rule_status([Status()])
    assert value(m, "rule_proximity_ratio", rule="cushion", account="DU1") == pytest.approx(0.8)
    assert value(m, "rule_state", rule="cushion", account="DU1", state="unknown") == 1  # odd state folded


@pytest.mark.parametrize(
    ("v", "threshold", "op", "expected"),
    [
        (-800.0, -1000.0, "<", 0.8),  # loss limit: losses are negative
        (-800.0, -1000.0, None, 0.8),  # a negative threshold without an operator is a loss limit
        (500.0, -1000.0, "<", 0.0),  # in profit: nowhere near
        (0.7, 0.8, ">", 0.875),  # margin usage ceiling
        (0.125, 0.10, "<", 0.8),  # cushion floor: the value falls toward the threshold
        (-0.5, 0.10, "<", math.inf),  # crossed zero: beyond
        (0.7, 0.8, None, None),  # ambiguous without the operator
        (None, 0.8, ">", None),
    ],
)
def test_rule_proximity_respects_the_direction_of_the_limit(
    v: float | None, threshold: float, op: str | None, expected: float | None
) -> None:
    got = rule_proximity(v, threshold, op)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_kill_report_counts_orders_escalation_and_duration() -> None:
    m = Metrics()
    m.observe_kill(make_kill_report(KillOutcome.ESCALATED))
    assert value(m, "kills_total", action="close_all", trigger="daily_loss") == 1
    assert value(m, "kill_escalations_total") == 1
    assert value(m, "orders_cancelled_total") == 1
    assert value(m, "close_orders_total") == 2
    assert value(m, "kill_duration_seconds_sum") == pytest.approx(2.5)
    assert value(m, "last_kill_timestamp_seconds") == 1_700_000_002.5
    assert value(m, "kill_pending") == 0


def test_a_pending_kill_sets_kill_pending_until_it_runs() -> None:
    m = Metrics()
    m.observe_kill(make_kill_report(KillOutcome.PENDING))
    assert value(m, "kill_pending") == 1
    assert value(m, "kill_duration_seconds_count") == 0
    m.observe_kill(make_kill_report(KillOutcome.FLAT))
    assert value(m, "kill_pending") == 0


def test_tripped_and_trading_state_move_together() -> None:
    m = Metrics()
    assert value(m, "tripped") == 0 and value(m, "trading_state", state="armed") == 1
    m.set_trading_state(TradingState.TRIPPED)
    assert value(m, "tripped") == 1
    assert value(m, "trading_state", state="tripped") == 1 and value(m, "trading_state", state="armed") == 0


def test_polls_heartbeats_notifications_and_reloads_are_counted() -> None:
    m = Metrics()
    m.observe_poll("pnl", True, 100.0)
    m.observe_poll("pnl", False, 101.0)
    m.observe_heartbeat(0.003, 102.0, skew=-0.4)
    m.observe_notification("critical", False)
    m.observe_reload(False, 103.0)
    m.set_health(Health.DOWN)
    assert value(m, "polls_total", poll="pnl") == 2
    assert value(m, "poll_failures_total", poll="pnl") == 1
    assert value(m, "last_successful_poll_timestamp_seconds", poll="pnl") == 100.0
    assert value(m, "heartbeat_rtt_seconds_bucket", le="0.005") == 1
    assert value(m, "gateway_clock_skew_seconds") == -0.4
    assert value(m, "notification_failures_total", severity="critical") == 1
    assert value(m, "notification_failures_total", severity="info") == 0
    assert value(m, "config_last_reload_successful") == 0
    assert value(m, "gateway_health", state="down") == 1


async def test_it_serves_metrics_on_an_ephemeral_port_and_stops() -> None:
    m = Metrics()
    port = await asyncio.wait_for(m.start("127.0.0.1", 0), 5)
    try:
        assert port > 0 and m.port == port
        url = f"http://127.0.0.1:{port}/metrics"
        body = await asyncio.wait_for(asyncio.to_thread(_get, url), 5)
        assert "ibkr_watchdog_build_info{" in body
    finally:
        m.stop()
    assert m.port is None
    with pytest.raises(urllib.error.URLError):
        await asyncio.wait_for(asyncio.to_thread(_get, url), 5)


async def test_a_port_in_use_raises_a_clear_error() -> None:
    first = Metrics()
    port = await asyncio.wait_for(first.start("127.0.0.1", 0), 5)
    try:
        with pytest.raises(MetricsServerError, match=f"127.0.0.1:{port}: address already in use"):
            await asyncio.wait_for(Metrics().start("127.0.0.1", port), 5)
    finally:
        first.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def test_declared_polls_export_zero_counters_before_the_first_poll() -> None:
    from prometheus_client import CollectorRegistry

    from watchdog.outputs.metrics import Metrics

    m = Metrics(CollectorRegistry(), process_metrics=False)
    assert m.registry.get_sample_value("ibkr_watchdog_poll_failures_total", {"poll": "orders"}) is None
    m.declare_polls(["orders", "positions"])
    assert m.registry.get_sample_value("ibkr_watchdog_poll_failures_total", {"poll": "orders"}) == 0.0
    assert m.registry.get_sample_value("ibkr_watchdog_polls_total", {"poll": "positions"}) == 0.0


def test_50000_distinct_gateway_error_codes_keep_metrics_small() -> None:
    m = Metrics(CollectorRegistry(), process_metrics=False)
    before = len(generate_latest(m.registry))
    for code in range(50_000):
        m.observe_gateway_error(code)
    page = generate_latest(m.registry)
    assert len(page) < before + 20_000  # 100 codes and `other`, not 50,000 (6.4 MB before the bound)
    get = m.registry.get_sample_value
    assert get("ibkr_watchdog_gateway_errors_total", {"code": "0"}) == 1
    assert get("ibkr_watchdog_gateway_errors_total", {"code": "other"}) == 50_000 - MAX_ERROR_CODES
    assert get("ibkr_watchdog_metric_labels_dropped_total", {"metric": "gateway_errors_total"}) == (
        50_000 - MAX_ERROR_CODES
    )


def test_rule_and_trigger_labels_are_bounded_and_a_removed_rule_frees_its_slot() -> None:
    m = Metrics(CollectorRegistry(), process_metrics=False)
    many = [(f"r{i}", "DU1", 1.0, 2.0, "ok") for i in range(MAX_RULE_SERIES + 50)]
    m.observe_rule_status(many)
    get = m.registry.get_sample_value
    assert get("ibkr_watchdog_rule_value", {"rule": f"r{MAX_RULE_SERIES - 1}", "account": "DU1"}) == 1.0
    assert get("ibkr_watchdog_rule_value", {"rule": f"r{MAX_RULE_SERIES}", "account": "DU1"}) is None
    assert get("ibkr_watchdog_metric_labels_dropped_total", {"metric": "rule"}) == 50
    m.observe_rule_status([("fresh", "DU1", 3.0, 2.0, "breach")])  # the old rules are gone: room again
    assert get("ibkr_watchdog_rule_breached", {"rule": "fresh", "account": "DU1"}) == 1.0


def test_write_access_is_nan_until_proven_then_one_or_zero() -> None:
    m = Metrics()
    assert math.isnan(value(m, "write_access") or 0.0)
    snap = make_snapshot()
    for proven, expected in ((True, 1.0), (False, 0.0)):
        m.observe_snapshot(dataclasses.replace(snap, gateway=GatewayStatus(write_access=proven)))
        assert value(m, "write_access") == expected
    m.observe_snapshot(dataclasses.replace(snap, gateway=GatewayStatus(write_access=None)))
    assert math.isnan(value(m, "write_access") or 0.0)


def test_kill_series_exist_before_the_first_kill_and_unknown_is_nan() -> None:
    """Issue 14 #9: kills_total appeared only after the first kill (increase() missed it); the last
    kill read 0 (1970) instead of unknown; nothing said dry run was on."""
    import math

    from prometheus_client import CollectorRegistry

    from watchdog.outputs.metrics import Metrics

    m = Metrics(CollectorRegistry(), process_metrics=False)
    m.declare_rules(
        [("daily_loss", "close_all", "critical"), ("low_excess", "alert", "warning")], dry_run=True
    )
    get = m.registry.get_sample_value
    assert get("ibkr_watchdog_kills_total", {"action": "close_all", "trigger": "rule:daily_loss"}) == 0
    assert get("ibkr_watchdog_kills_total", {"action": "close_all", "trigger": "manual:SIGUSR1"}) == 0
    assert get("ibkr_watchdog_kills_total", {"action": "cancel_all", "trigger": "manual:SIGUSR2"}) == 0
    assert get("ibkr_watchdog_kills_total", {"action": "alert", "trigger": "rule:low_excess"}) is None
    assert get("ibkr_watchdog_kill_outcomes_total", {"outcome": "escalated"}) == 0
    assert math.isnan(get("ibkr_watchdog_last_kill_timestamp_seconds") or 0.0)
    assert get("ibkr_watchdog_dry_run") == 1
    labels = {"rule": "low_excess", "action": "alert", "rule_severity": "warning", "about_outage": "false"}
    assert get("ibkr_watchdog_rule_info", labels) == 1
    m.declare_rules([], dry_run=False)  # a reload removed the rules and turned dry run off
    assert get("ibkr_watchdog_rule_info", labels) is None and get("ibkr_watchdog_dry_run") == 0
