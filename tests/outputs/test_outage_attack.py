"""Attacks on "one outage, one page, one recovery" (issue 14 #8) at the bookkeeping level.

Each test feeds `Incidents` what the daemon feeds it and reads what would be sent.
"""

from __future__ import annotations

from tests.outputs.test_outage_incidents import KEPT, LOST, T0, on, titles
from watchdog.model import BreachKind, Severity
from watchdog.outputs.incidents import Incidents


def test_a_gateway_that_keeps_dropping_within_the_settle_window_never_swallows_unknown_for_good() -> None:
    """The socket drops, reconnects 2 s later, drops again 6 s after that (inside the 10 s settle
    window), for ten minutes; no data ever arrives and no spell is long enough for the built-in
    gateway-down alert (30 s). The loss rule's critical "unknown" (after 60 s) must reach the pager:
    the watchdog is blind. Every "unknown" lands in an outage or in a settle window, and each new
    outage pushes `held_until` out again, so `reminders()` never announces it."""
    inc = Incidents(900.0, settle=10.0)
    sent = []
    t = T0
    unknown_sent_at = None
    while t < T0 + 600:
        inc.gateway_up(False, t)
        if t >= T0 + 60 and unknown_sent_at is None:
            n = inc.breach(on("daily_pnl", BreachKind.UNKNOWN, Severity.CRITICAL, "loss"), t)
            unknown_sent_at = t
            sent.append(n)
        sent.append(inc.reconnect("gw:4001", 2.0, t + 2))
        for s in range(3, 9):
            sent += inc.reminders(t + s)
        t += 8
    # seen: the critical "unknown" is named once, in the body of an *info* "Gateway reconnected"
    # (nothing of the outage went out, so the recovery is info): a critical-only pager never hears it
    said = [n for n in sent if n is not None and "loss" in n.title + n.body]
    paged = [n for n in said if n.severity is Severity.CRITICAL]
    assert paged, [(n.title, n.severity) for n in said]


def test_a_heartbeat_alert_sent_before_an_1100_outage_gets_its_recovery() -> None:
    """A slow-heartbeat warning goes out, then IB's servers are lost (1100, socket and heartbeats
    up); the heartbeat recovers during the outage. Nothing ever says the heartbeat alert is over:
    its recovery is dropped ("the outage's recovery covers it") and the 1102 message does not name it."""
    inc = Incidents(900.0, settle=10.0)
    first = inc.breach(on("heartbeat_rtt", BreachKind.BREACH, Severity.WARNING, "hb-slow", "all"), T0)
    notice = inc.degraded(1100, LOST, T0 + 10)
    back = inc.breach(on("heartbeat_rtt", BreachKind.RECOVERED, Severity.WARNING, "hb-slow", "all"), T0 + 20)
    end = inc.restored(1102, KEPT, T0 + 60)
    assert titles([first, notice]) == ["[BREACH] hb-slow on all", "Gateway lost IB's servers (1100)"]
    assert end is not None
    assert back is not None or "hb-slow" in end.body, end.body


def test_a_stale_data_breach_sent_before_a_socket_outage_gets_its_recovery() -> None:
    """DU111's data goes stale on its own (one account's subscription stuck; the socket fine): the
    stale-data breach is sent. Later the socket drops and comes back; DU111's data returns within the
    settle window. Its recovery is never said (folded at the outage's end) and the reconnect message
    does not name it either."""
    inc = Incidents(900.0, settle=10.0)
    first = inc.breach(on("data_age", BreachKind.BREACH, Severity.WARNING, "stale"), T0)
    inc.gateway_up(False, T0 + 100)
    end = inc.reconnect("gw:4001", None, T0 + 105)
    back = inc.breach(on("data_age", BreachKind.RECOVERED, Severity.WARNING, "stale"), T0 + 107)
    assert titles([first]) == ["[BREACH] stale on DU111"]
    assert back is not None or "stale on DU111" in end.body, end.body


def test_a_stale_data_alert_is_not_reminded_on_its_own_during_the_outage_its_page_covers() -> None:
    """docs/alerting.md: once the page went out, the stale-data breaches of every account are held
    back. DU111's stale-data warning went out first (before the page), DU222's was held; during a two
    hour outage with reminder_interval 10 min DU111's is reminded twelve times on its own."""
    inc = Incidents(600.0, settle=10.0)
    inc.gateway_up(False, T0)
    first = inc.breach(on("data_age", BreachKind.BREACH, Severity.WARNING, "stale", "DU111"), T0 + 20)
    page = inc.gateway_down("gw:4001", T0, T0 + 30, "refused")
    held = inc.breach(on("data_age", BreachKind.BREACH, Severity.WARNING, "stale", "DU222"), T0 + 31)
    assert titles([first, page, held]) == ["[BREACH] stale on DU111", "Gateway down"]
    reminders = []
    for minute in range(1, 121):
        reminders += inc.reminders(T0 + 60 * minute)
    assert titles(reminders) == [], titles(reminders)
