"""One outage, one page, one recovery (issue 14 #8), for every kind of outage the gateway has.

The daemon runs its own loop (timers, polls, heartbeats) against the simulator; notifications go
through real apprise to a local endpoint with two routes: `/pager` (critical) and `/chat` (warning,
info). An outage is a lost socket, a half-open one, or the gateway losing IB's servers (1100/2110,
socket and heartbeats up, data silent) until 1101/1102.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonFactory, until, write_config
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from watchdog.config.load import load_config
from watchdog.daemon.wiring import rule_labels
from watchdog.sim import Simulator

RULES = """
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: close_all
  - name: gateway-down
    when: "gateway_down_seconds > 1s"
    action: alert
    severity: critical
  - name: stale-data
    when: "data_age > 1500ms"
    action: alert
    severity: warning
    scope: each
"""


def routes(capture: Capture) -> str:  # noqa: F811
    return f"""
notifications:
  burst_max: 50  # two outages within seconds: no burst summary in the way
  targets:
    - url: json://127.0.0.1:{capture.port}/pager
      severities: [critical]
    - url: json://127.0.0.1:{capture.port}/chat
      severities: [warning, info]
"""


def got(capture: Capture, path: str) -> list[str]:  # noqa: F811
    return [b["title"] for p, b in zip(capture.paths, capture.snapshot(), strict=True) if p == f"/{path}"]


@pytest.mark.integration
async def test_a_nightly_reset_is_one_page_and_one_recovery_on_each_route_every_time(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    """1100 → 1102 twice, each longer than the gateway-down rule's 1 s and the stale-data rule's 1.5 s:
    each outage pages once (the gateway-down rule), the chat hears the 1100 notice, and each route gets
    one recovery; the stale-data breaches of both accounts are part of the outage, not messages of
    their own. Old code: stale-data breaches and recoveries on the chat, and instead of one recovery
    per route a "[RECOVERED] gateway-down" page (1102 ended nothing: the outage was never started)."""
    d = await make_daemon(RULES, routes(capture), schedule=True)
    await until(lambda: any("started" in t for t in got(capture, "chat")), 10, "the start-up notice")
    incidents = d.c.notifier._incidents
    for outage in (1, 2):
        pager_before, chat_before = len(got(capture, "pager")), len(got(capture, "chat"))

        def pager(n: int = pager_before) -> list[str]:
            return got(capture, "pager")[n:]

        def chat(n: int = chat_before) -> list[str]:
            return got(capture, "chat")[n:]

        await sim.faults.nightly_reset(duration=2.2, wait=True)
        await until(lambda: len(pager()) >= 2 and len(chat()) >= 2, 10, f"outage {outage}'s recoveries")
        # every alert of the outage recovered: nothing is held that could still be announced
        await until(lambda: not incidents.ongoing and incidents.outage is None, 10, "the rules to recover")
        await d.c.notifier.drain(5)
        assert pager() == ["[BREACH] gateway-down on all accounts", "Gateway connectivity restored (1102)"]
        assert chat() == ["Gateway lost IB's servers (1100)", "Gateway connectivity restored (1102)"]
        recovery = capture.snapshot()[-1]["message"]
        assert "stale-data on DU111111: breach" in recovery and "stale-data on DU222222: breach" in recovery


def test_rule_info_says_which_rules_are_about_an_outage(tmp_path: Path) -> None:
    """`RuleBreached` holds back a rule about the outage (docs/alerting.md) only if `rule_info` says so:
    every metric of its condition is one an outage moves by itself."""
    rules = """
  - name: stale-data
    when: "data_age > 60s"
    action: alert
  - name: gateway-slow
    when: {any: ["heartbeat_rtt > 1s", "gateway_down_seconds > 30s"]}
    action: alert
  - name: loss-or-stale
    when: {any: ["daily_pnl <= -2500", "data_age > 60s"]}
    action: alert
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: close_all
  - name: flatten
    schedule: {cron: "55 15 * * mon-fri", timezone: America/New_York}
    action: close_all
"""
    config = load_config(write_config(tmp_path, 4002, rules))
    about = {r.name: r.about_outage for r in rule_labels(config)}
    assert about == {
        "stale-data": True,
        "gateway-slow": True,
        "loss-or-stale": False,
        "daily-loss": False,
        "flatten": False,
    }
