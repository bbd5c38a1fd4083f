"""Attacks on "one outage, one page, one recovery" (issue 14 #8), driven against the simulator.

Same routes as tests/daemon/test_outage_pages.py: `/pager` (critical) and `/chat` (warning, info).
"""

from __future__ import annotations

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.daemon.test_outage_pages import RULES, got, routes
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from watchdog.sim import Simulator


@pytest.mark.integration
async def test_a_socket_drop_during_an_1100_outage_does_not_end_it_before_1102(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    """1100, then the gateway's socket drops and the daemon reconnects while IB's servers are still
    lost (no data flows), then 1102 (IB's nightly reset and a gateway restart at once; the simulator
    sends no 1100 on the new connection, and nothing in the TWS API says a gateway must). One
    outage: the pager hears one page and one recovery, the chat
    the 1100 notice and one recovery; no stale-data breach of its own while data is still away."""
    d = await make_daemon(RULES, routes(capture), schedule=True, connect_timeout="1s")
    await until(lambda: any("started" in t for t in got(capture, "chat")), 10, "the start-up notice")
    pager0, chat0 = len(got(capture, "pager")), len(got(capture, "chat"))
    await sim.faults.nightly_reset(duration=4.0)
    await until(lambda: len(got(capture, "pager")) > pager0, 10, "the gateway-down rule's page")
    await sim.faults.drop()
    await sim.faults.wait_idle(15)  # 1102 sent
    incidents = d.c.notifier._incidents
    await until(lambda: not incidents.ongoing and incidents.outage is None, 15, "the rules to recover")
    await d.c.notifier.drain(5)
    pager, chat = got(capture, "pager")[pager0:], got(capture, "chat")[chat0:]
    # seen: the reconnect ends the outage ("Gateway reconnected" on both routes while IB's servers are
    # still lost and no data flows), the stale-data breaches held during it are then announced one by
    # one and recovered one by one, and 1102 ends nothing
    assert [t for t in chat if "stale-data" in t] == [], chat
    assert len(pager) == 2 and len(chat) == 2, (pager, chat)
    assert "(1102)" in pager[1]  # the recovery came when IB's servers were back, not at the reconnect


def fast_page(capture: Capture) -> str:  # noqa: F811
    return routes(capture).replace("  burst_max: 50", "  gateway_down_after: 1s\n  burst_max: 50")


@pytest.mark.integration
async def test_a_half_open_socket_whose_session_the_gateway_still_holds_is_one_page(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    """The link to the gateway goes half-open (a network partition): the daemon gives the socket up and
    reconnects, but the gateway still holds the old session with client id 99 (it never saw the close)
    and answers each attempt with 326 until it lets the old session go. One outage: one page, one
    recovery on the route that got the page. Seen (every run): the pager gets "Client id in use (326)"
    (a critical `notify_text` past the outage's bookkeeping, saying another program uses the
    watchdog's id, while it is the watchdog's own lost session) and never a recovery: the outage
    recorded no page, so "Gateway reconnected" is info and goes to the chat only, which heard nothing
    of the outage. Held longer than gateway_down_after, the pager gets "Gateway down" as well."""
    d = await make_daemon(RULES, fast_page(capture), schedule=True, connect_timeout="1s")
    await until(lambda: any("started" in t for t in got(capture, "chat")), 10, "the start-up notice")
    pager0, chat0 = len(got(capture, "pager")), len(got(capture, "chat"))
    sim.faults.freeze(99)  # the old session: the gateway reads nothing more from it, nor its close
    await until(lambda: len(got(capture, "pager")) > pager0, 10, "the page")
    await until(lambda: "326" in d.c.gateway.status().last_error, 10, "a reconnect refused with 326")
    sim.faults.unfreeze(99)
    incidents = d.c.notifier._incidents
    await until(lambda: incidents.outage is None, 10, "the reconnect")
    await until(lambda: not incidents.ongoing, 10, "the rules to recover")
    await d.c.notifier.drain(5)
    pager, chat = got(capture, "pager")[pager0:], got(capture, "chat")[chat0:]
    assert len(pager) == 2 and pager[-1] == "Gateway reconnected" and chat == [], (pager, chat)


@pytest.mark.integration
@pytest.mark.parametrize(("lost", "back"), [(2110, 1101)])  # 1100 → 1102: test_outage_pages.py
async def test_other_codes_of_a_lost_link_to_ibs_servers_are_one_page_and_one_recovery(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
    lost: int,
    back: int,
) -> None:
    """Held up: 2110 (or 1100), a repeated 1100, a stray 1102 first, then 1101 (data lost: the
    subscriptions are re-requested)."""
    d = await make_daemon(RULES, routes(capture), schedule=True)
    await until(lambda: any("started" in t for t in got(capture, "chat")), 10, "the start-up notice")
    pager0, chat0 = len(got(capture, "pager")), len(got(capture, "chat"))
    incidents = d.c.notifier._incidents
    sim.faults.inject_error(1102)  # nothing to call off: nothing said
    sim.faults.inject_error(lost)
    sim.faults.state.silenced = True
    await until(lambda: len(got(capture, "pager")) > pager0, 10, "the page")
    sim.faults.inject_error(1100)
    await until(lambda: len(incidents.ongoing) >= 3, 10, "the stale-data breaches")
    sim.faults.state.silenced = False
    sim.faults.inject_error(back)
    await until(lambda: incidents.outage is None, 10, str(back))
    await until(lambda: not incidents.ongoing, 10, "the rules to recover")
    await d.c.notifier.drain(5)
    pager, chat = got(capture, "pager")[pager0:], got(capture, "chat")[chat0:]
    restored = f"Gateway connectivity restored ({back})"
    assert pager == ["[BREACH] gateway-down on all accounts", restored], pager
    assert chat == [f"Gateway lost IB's servers ({lost})", restored], chat
