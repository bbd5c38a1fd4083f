"""One outage, one page, one recovery (issue 14 #8), for every kind of outage the gateway has.

The daemon runs its own loop (timers, polls, heartbeats) against the simulator; notifications go
through real apprise to a local endpoint with two routes: `/pager` (critical) and `/chat` (warning,
info). An outage is a lost socket, a half-open one, or the gateway losing IB's servers (1100/2110,
socket and heartbeats up, data silent) until 1101/1102.
"""

from __future__ import annotations

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

RULES = """
  - name: daily-loss
    when: "daily_pnl <= -2500"
    action: close_all
  - name: stale-data
    when: "data_age > 1500ms"
    action: alert
    severity: warning
    scope: each
"""


def routes(capture: Capture) -> str:  # noqa: F811
    return f"""
notifications:
  gateway_down_after: 1s
  burst_max: 50  # two outages within seconds: no burst summary in the way
  targets:
    - url: json://127.0.0.1:{capture.port}/pager
      severities: [critical]
    - url: json://127.0.0.1:{capture.port}/chat
      severities: [warning, info]
"""


def got(capture: Capture, path: str) -> list[str]:  # noqa: F811
    return [b["title"] for p, b in zip(capture.paths, capture.snapshot(), strict=True) if p == f"/{path}"]


async def test_a_nightly_reset_is_one_page_and_one_recovery_on_each_route_every_time(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    """1100 → 1102 twice, each longer than gateway_down_after and the stale-data rule's 1.5 s: each
    outage pages once (the built-in gateway-down alert), the chat hears the 1100 notice, and each
    route gets one recovery; the stale-data breaches of both accounts are part of the outage, not
    messages of their own. Old code: stale-data breaches and recoveries on the chat, no recovery of
    the page after 1102, and no page at all for the second outage (the built-in alert was never
    re-armed after 1102, only after a reconnect)."""
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
        assert pager() == ["Gateway down", "Gateway connectivity restored (1102)"]
        assert chat() == ["Gateway lost IB's servers (1100)", "Gateway connectivity restored (1102)"]
        recovery = capture.snapshot()[-1]["message"]
        assert "stale-data on DU111111: breach" in recovery and "stale-data on DU222222: breach" in recovery
