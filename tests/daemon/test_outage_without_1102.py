"""Second round of attacks on "one outage, one page, one recovery" (issue 14 #8), against the simulator.

Same routes as tests/daemon/test_outage_pages.py: `/pager` (critical) and `/chat` (warning, info).
"""

from __future__ import annotations

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.daemon.test_outage_pages import RULES, got, routes
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from watchdog.sim import Simulator


@pytest.mark.integration
async def test_an_1100_outage_that_ends_without_1102_is_over_once_account_data_flows(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    """1100, data stops; then IB's link is back and data flows again, but the gateway never says
    1101/1102 (QuantConnect/Lean#960 met this after the nightly reset). Seen: the account summary
    answers again, yet the outage never ends: no recovery on the pager that got the gateway-down
    rule's page nor on the chat that got the 1100 notice; the gateway's health stays "degraded", so
    `gateway_down_seconds` keeps growing and the gateway-down rule stays breached, Prometheus's
    GatewayLostIBServers fires, and RuleDataUnknown and the outage rules' RuleBreached stay muted, for
    good; every later "unknown" is held. (Until the socket drops some day: a new session's first read
    ends it.)"""
    d = await make_daemon(RULES, routes(capture), schedule=True)
    await until(lambda: any("started" in t for t in got(capture, "chat")), 10, "the start-up notice")
    pager0 = len(got(capture, "pager"))
    sim.faults.inject_error(1100)
    sim.faults.state.silenced = True
    await until(lambda: len(got(capture, "pager")) > pager0, 10, "the gateway-down rule's page")
    sim.faults.state.silenced = False  # IB's link is back; no 1101/1102 is ever sent
    incidents = d.c.notifier._incidents
    reads = dict(d._reads_ok_at)
    await until(lambda: d._reads_ok_at.get("account_summary", 0) > reads.get("account_summary", 0), 15,
                "an account summary read")  # fmt: skip
    await until(lambda: incidents.outage is None, 10, "the outage to end once account data flows")
    assert d.c.gateway.health.value == "healthy", d.c.gateway.health
