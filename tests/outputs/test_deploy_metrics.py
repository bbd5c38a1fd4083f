"""A live /metrics scrape has every documented series and passes `promtool check metrics`; the
dashboard and alert rules only query series the watchdog exports."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
from collections.abc import AsyncIterator

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.outputs.conftest import REPO, make_kill_report, make_snapshot
from watchdog.bots.receiver import REJECT_REASONS
from watchdog.model import KillOutcome
from watchdog.outputs.metrics import Metrics

pytestmark = pytest.mark.deploy

# DESIGN.md's list ("Metrics") as exposed on the wire; docs/alerting.md's table is read below.
DESIGN_SERIES = [
    "gateway_connected",
    "heartbeat_rtt_seconds",
    "last_heartbeat_timestamp_seconds",
    "last_successful_poll_timestamp_seconds",
    "polls_total",
    "poll_failures_total",
    "gateway_clock_skew_seconds",
    "daily_pnl",
    "unrealized_pnl",
    "realized_pnl",
    "net_liquidation",
    "excess_liquidity",
    "cushion_ratio",
    "maint_margin_requirement",
    "gross_position_value",
    "open_orders",
    "positions",
    "rule_value",
    "rule_threshold",
    "rule_breached",
    "tripped",
    "kills_total",
    "orders_cancelled_total",
    "close_orders_total",
    "kill_duration_seconds",
    "notifications_total",
    "notification_failures_total",
    "config_last_reload_successful",
    "build_info",
]
NAME = re.compile(r"\b((?:ibkr_watchdog|process)_[a-z0-9_]+)")


def documented_series() -> set[str]:
    text = (REPO / "docs" / "alerting.md").read_text()
    doc = set(re.findall(r"^\| `((?:ibkr_watchdog|process)_[a-z0-9_]+)`", text, re.MULTILINE))
    return doc | {"ibkr_watchdog_" + n for n in DESIGN_SERIES}


def filled_metrics() -> Metrics:
    m = Metrics()
    m.observe_snapshot(make_snapshot())
    m.observe_heartbeat(0.002, 1_700_000_000.0, 0.1)
    for poll in ("pnl", "positions"):
        m.observe_poll(poll, True, 1_700_000_000.0)
    m.observe_poll("orders", False, 1_700_000_000.0)
    m.observe_gateway_error(1100)
    m.observe_malformed()
    m.observe_reconnect()
    m.observe_rule_status(
        [("daily_loss", "DU111", -800.0, -1000.0, "warning"), ("cushion", "DU222", None, 0.1, "unknown")]
    )
    m.observe_kill(make_kill_report(KillOutcome.ESCALATED))
    m.set_tripped(True)
    m.observe_notification("critical", False)
    m.observe_notification_dropped()
    m.observe_reload(True, 1_700_000_000.0)
    m.bots.declare(["alpha"], REJECT_REASONS)
    m.bots.observe_heartbeat("alpha", 1_700_000_000.0)
    m.bots.set_state("alpha", 1_700_000_000.0, True)
    m.bots.observe_rejected("unauthorized")
    return m


@pytest.fixture
async def scraped() -> AsyncIterator[str]:
    m = filled_metrics()
    port = await asyncio.wait_for(m.start("127.0.0.1", 0), 5)
    try:
        yield await asyncio.wait_for(asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics"), 5)
    finally:
        m.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def exported_names(text: str) -> set[str]:
    """Family names (histogram bases) and every sample name (_total, _bucket, _sum, _count …)."""
    names: set[str] = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        names.update(s.name for s in fam.samples)
    return names


@pytest.fixture
def exported() -> set[str]:
    return exported_names(generate_latest(filled_metrics().registry).decode())


async def test_a_live_scrape_has_every_documented_series(scraped: str) -> None:
    names = exported_names(scraped)
    missing = sorted(documented_series() - names)
    assert not missing, f"documented but not exported: {missing}"
    assert "process_start_time_seconds" in names  # the restart-loop alert needs it


def test_every_exported_watchdog_series_is_documented(exported: set[str]) -> None:
    doc = documented_series()
    undocumented = sorted(
        n
        for n in exported
        if n.startswith("ibkr_watchdog_")
        and not n.endswith(("_created", "_bucket", "_sum", "_count"))
        and n not in doc
        and n.removesuffix("_total") not in {d.removesuffix("_total") for d in doc}
    )
    assert not undocumented, f"exported but not in docs/alerting.md: {undocumented}"


async def test_promtool_check_metrics_accepts_a_live_scrape(scraped: str, promtool: str) -> None:
    proc = await asyncio.wait_for(
        asyncio.to_thread(
            subprocess.run,
            [promtool, "check", "metrics"],
            input=scraped,
            capture_output=True,
            text=True,
            timeout=30,
        ),
        40,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_dashboard_only_queries_exported_series(exported: set[str]) -> None:
    dash = json.loads((REPO / "deploy" / "grafana" / "ibkr-watchdog.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    assert len(exprs) > 30
    used = {n for e in exprs for n in NAME.findall(e)}
    assert not sorted(used - exported), f"dashboard queries unknown series: {sorted(used - exported)}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_only_query_exported_series(exported: set[str]) -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {n for e in exprs for n in NAME.findall(e)}
    assert used and not sorted(used - exported), f"alerts query unknown series: {sorted(used - exported)}"
    for g in rules["groups"]:
        for r in g["rules"]:
            # RuleBreached takes the rule's own severity from rules.yaml (critical, warning or info)
            assert r["labels"]["severity"] in {"critical", "warning", "none", "{{ $labels.rule_severity }}"}
            assert {"summary", "description", "runbook"} <= set(r["annotations"])
