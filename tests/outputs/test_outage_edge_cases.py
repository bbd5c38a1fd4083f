"""Attacks on "one outage, one page, one recovery" (issue 14 #8) at the bookkeeping level.

Each test feeds `Incidents` what the daemon feeds it and reads what would be sent.
"""

from __future__ import annotations

from tests.outputs.conftest import Capture
from tests.outputs.test_notifier import Clock, config, url
from tests.outputs.test_outage_incidents import KEPT, LOST, T0, on, titles
from watchdog.model import BreachKind, Severity
from watchdog.outputs.incidents import Incidents
from watchdog.outputs.notifier import Notifier


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


def test_a_compound_rule_with_a_loss_in_it_is_never_held_as_part_of_an_outage() -> None:
    """`loss-or-stale: any: [daily_pnl <= -2500, data_age > 60s]` (alert, critical). During the outage
    it breaches on data_age. Old code: held (the deciding metric was data_age), and after the
    reconnect, with a real loss showing, the rule stayed breached, so nothing was said until the
    settle window ended. A rule is about the outage only when every one of its metrics is (as
    Prometheus's rule_info says): this one pages at once, and its loss is never held back."""
    from tests.rules.helpers import rule, snap
    from watchdog.rules.evaluate import RuleMemory, evaluate

    r = rule(
        {"any": ["daily_pnl <= -2500", "data_age > 60s"]},
        name="loss-or-stale",
        action="alert",
        severity="critical",
    )
    memory, inc = RuleMemory(), Incidents(900.0, settle=10.0)
    sent: list[object] = []

    def step(at: float, pnl: float, values_at: float) -> None:
        for b in evaluate([r], snap(at, {"DU1": {"daily_pnl": pnl}}, values_at=values_at), at, memory):
            sent.append(inc.breach(b, at))
        sent.extend(inc.reminders(at))

    step(T0, -100.0, T0)
    inc.gateway_up(False, T0 + 10)
    sent.append(inc.gateway_down("gw:4001", T0 + 10, T0 + 40, "refused"))
    step(T0 + 80, -100.0, T0 + 5)  # 75 s old: daily_pnl unknown, data_age breaches
    sent.append(inc.reconnect("gw:4001", None, T0 + 100))
    for t in range(101, 106):  # (at 110 the held data_age breach is announced, still about data_age)
        step(T0 + t, -3_000.0, T0 + t)  # fresh data: a real loss
    assert titles(sent) == ["Gateway down", "[BREACH] loss-or-stale on DU1", "Gateway reconnected"]
    assert [n.severity for n in sent if n is not None][1] is Severity.CRITICAL


async def test_the_gateway_down_page_is_not_held_behind_a_burst_summary(capture: Capture) -> None:
    """docs/alerting.md: gateway-down is never held back by the burst limit. A busy moment (two
    warnings fill burst_max: 2), then the socket drops: the gateway-down rule's critical breach is held
    for the burst summary, yet it counts as "said" for the outage, so the built-in page (never
    limited) is held back too. The pager hears nothing until the summary (burst_window later)."""
    clock = Clock(T0)
    n = Notifier(
        config(
            [(url(capture.port, "pager"), ("critical",)), (url(capture.port, "chat"), ("warning", "info"))],
            burst_max=2,
            burst_window="60s",
        ),
        clock=clock,
        tick_interval=3600.0,
    )
    await n.start()
    try:
        for acct in ("DU111", "DU222"):
            n.notify_breach(on("excess_liquidity", BreachKind.WARNING, Severity.WARNING, "cushion", acct))
        clock.now = T0 + 1
        n.gateway_up(False)
        n.notify_breach(on("gateway_down_seconds", BreachKind.BREACH, Severity.CRITICAL, "gw-down", "all"))
        clock.now = T0 + 31
        n.notify_gateway_down("10.0.0.2:4001", T0 + 1, "refused")
        await n.drain(5)
    finally:
        clock.now = T0 + 32  # stop() sends the burst summary at once: look before it
        pager = [b["title"] for p, b in zip(capture.paths, capture.snapshot(), strict=True) if p == "/pager"]
        await n.stop(2)
    assert pager, "no page 30 s into the outage"


def test_the_1102_recovery_never_says_a_kill_runs() -> None:
    """Every 1101/1102 recovery says "a kill parked meanwhile runs now", pending kill or not (every night
    after IB's reset): at 3 a.m. that reads as "a kill is running". `restored()` does not know whether
    one is pending; the daemon does (`store.pending_kill()`)."""
    inc = Incidents(900.0)
    inc.degraded(1100, LOST, T0)
    end = inc.restored(1102, KEPT, T0 + 90)
    assert end is not None
    assert "kill" not in end.body, end.body


def test_an_1100_that_comes_with_the_reconnect_is_not_ended_by_it() -> None:
    """A gateway restarted during IB's nightly reset: the socket drops, and the new connection is told
    1100 while it is being set up (before the daemon's after-connect step calls `reconnect`). The
    reconnect then ends the outage 1100 just began: the loss rule's "unknown" a minute later is paged
    on its own while IB's servers are still away, and the 1102 that really ends the outage says
    nothing (there is none). Same cause as tests/daemon/test_outage_edge_cases.py's
    test_a_socket_drop_during_an_1100_outage_does_not_end_it_before_1102."""
    inc = Incidents(900.0, settle=10.0)
    inc.gateway_up(False, T0)
    notice = inc.degraded(1100, LOST, T0 + 5)
    inc.reconnect("gw:4001", 5.0, T0 + 5)
    held = inc.breach(on("daily_pnl", BreachKind.UNKNOWN, Severity.CRITICAL, "loss"), T0 + 65)
    spilled = inc.reminders(T0 + 80)
    end = inc.restored(1102, KEPT, T0 + 300)
    assert titles([notice]) == ["Gateway lost IB's servers (1100)"]
    assert held is None, held.title  # seen: "[UNKNOWN] loss on DU111", critical, during the outage
    assert titles(spilled) == [], titles(spilled)
    assert end is not None and "loss on DU111: unknown" in end.body


def test_a_blip_nobody_was_told_of_is_an_info_line_that_never_reaches_a_pager() -> None:
    """A 3 s socket drop told nobody anything: its "Gateway reconnected" is info (the chat log keeps
    a record of every drop: a gateway that drops often is worth seeing), never a page."""
    inc = Incidents(900.0, settle=10.0)
    inc.gateway_up(False, T0)
    end = inc.reconnect("gw:4001", 3.0, T0 + 3)
    assert end is not None and end.severity is Severity.INFO and end.routes == frozenset()


def test_repeated_1100s_do_not_push_the_held_alerts_out_of_the_recovery() -> None:
    """A gateway that repeats 1100/2110 while IB's servers are away (each repeat is held and listed):
    after 25 repeats the recovery's list of 20 lines is all "gateway 2110 at …" and the rules that
    were held ("loss on DU111: unknown") are in "… and N more (see the log)". Repeats of the
    outage's own code say nothing the first notice did not; the held alerts are what the operator
    needs to read. (Every repeat is also kept for the whole outage: a list without a bound.)"""
    inc = Incidents(900.0, settle=10.0)
    inc.degraded(1100, LOST, T0)
    for i in range(25):
        inc.degraded(2110, "Connectivity between Trader Workstation and server is broken.", T0 + 1 + i)
    inc.breach(on("daily_pnl", BreachKind.UNKNOWN, Severity.CRITICAL, "loss"), T0 + 60)
    end = inc.restored(1102, KEPT, T0 + 120)
    assert end is not None
    assert "loss on DU111: unknown" in end.body, end.body[-300:]


def test_a_rule_paused_by_a_quiet_window_is_not_paged_again_after_the_outage() -> None:
    """The gateway-down rule pages; during the outage a quiet window opens for it (a reload adding one,
    or the `nightly-reset` window of rules.yaml opening at 23:45). A paused rule reports no recovery,
    so it stays ongoing. Seen: once the settle window was over it was announced again as a new
    critical breach seconds after "Gateway reconnected", with the gateway fine, then reminded until the
    window closed. A quiet window pauses the rule: nothing of it is repeated while the window is open."""
    inc = Incidents(60.0, settle=10.0)
    inc.gateway_up(False, T0)
    page = inc.breach(on("gateway_down_seconds", BreachKind.BREACH, Severity.CRITICAL, "gw", "all"), T0 + 30)
    inc.quiet = {"gw"}  # the window opens
    end = inc.reconnect("gw:4001", None, T0 + 40)
    later = [n for t in range(41, 400, 5) for n in inc.reminders(T0 + t)]
    assert titles([page, end]) == ["[BREACH] gw on all", "Gateway reconnected"]
    assert later == [], titles(later)
    inc.quiet = set()  # the window closes; the rules engine reports the recovery at its next evaluation
    assert (
        inc.breach(on("gateway_down_seconds", BreachKind.RECOVERED, Severity.CRITICAL, "gw", "all"), T0 + 401)
        is None
    )
    assert inc.reminders(T0 + 500) == []
