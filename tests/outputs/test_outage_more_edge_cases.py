"""Second round of attacks on "one outage, one page, one recovery" (issue 14 #8).

Bookkeeping (`Incidents`, with the rules engine where a reload is involved), the notifier through real
apprise to a local endpoint, and the shipped Prometheus rules through promtool. Each test fails on
today's code; its docstring says what was seen.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.outputs.conftest import Capture
from tests.outputs.test_notifier import Clock, config, url
from tests.outputs.test_outage_incidents import KEPT, LOST, T0, on, titles
from tests.rules.helpers import rule, snap
from watchdog.model import Action, BreachKind, Severity
from watchdog.outputs.incidents import Incidents
from watchdog.outputs.notifier import Notifier
from watchdog.rules.evaluate import RuleMemory, evaluate

REPO = Path(__file__).resolve().parents[2]


def test_a_reload_during_an_outage_does_not_leave_its_alert_reminded_forever() -> None:
    """The stale-data rule (alert, critical) pages during a socket outage. At 3 a.m. the operator
    raises its threshold (60 s → 5 min) and reloads, as jobs.py does: `memory.retain` drops the
    rule's track (its definition changed), `notifier.retain_rules` keeps the ongoing alert (same
    name). The new track never announced a breach, so it never reports a recovery. Seen: 10 s after
    the reconnect, with fresh data, "[BREACH] stale on DU1" is paged again as a new problem, then
    reminded every reminder_interval forever (6 reminders in the hour after). Expected: nothing about
    the stale rule after the outage's recovery: the data is fresh and the new rule is not breached."""
    before = rule("data_age > 60s", name="stale", action="alert", severity="critical")
    after = rule("data_age > 300s", name="stale", action="alert", severity="critical")
    memory, inc = RuleMemory(), Incidents(600.0, settle=10.0)
    sent: list[object] = []

    def step(rules: list[object], at: float, values_at: float) -> None:
        shot = snap(at, {"DU1": {"daily_pnl": 1.0}}, values_at=values_at)
        for b in evaluate(rules, shot, at, memory):  # type: ignore[arg-type]
            sent.append(inc.breach(b, at))
        sent.extend(inc.reminders(at))

    step([before], T0, T0)
    inc.gateway_up(False, T0 + 5)
    step([before], T0 + 80, T0)  # 80 s old: the stale rule pages (nothing else said of the outage yet)
    dropped = memory.retain([after])  # the reload, as jobs.py does it
    inc.retain_rules(name for name in ["stale"] if name not in dropped)
    sent.append(inc.reconnect("gw:4001", None, T0 + 100))
    for t in range(101, 3700, 30):
        step([after], T0 + t, T0 + t)  # fresh data from the reconnect on
    assert titles(sent) == ["[BREACH] stale on DU1", "Gateway reconnected"], titles(sent)


async def test_a_flapping_link_to_ibs_servers_is_held_to_the_burst_limit(capture: Capture) -> None:
    """IB's link flaps: 1100 / 1102 every 2 s (2110 / 1102 on a bad line does the same). Each flap is
    a new outage: a warning "lost IB's servers" and a warning "restored", both `limited=False`, so
    the burst limit (5 in 10 s here) never applies: 10 messages in the first 10 s, 60 a minute, all
    night, to the chat on the phone. docs/alerting.md exempts kill reports, pending kills,
    escalations, gateway-down and critical free-text events: not a flapping link's warnings. (The
    same with a flapping socket: one info "Gateway reconnected" per blip, never limited.) Expected:
    at most burst_max messages within one burst window, the rest in the summary."""
    clock = Clock(T0)
    n = Notifier(
        config([(url(capture.port, "chat"), ("warning", "info"))], burst_max=5, burst_window="10s"),
        clock=clock,
        tick_interval=3600.0,
    )
    await n.start()
    try:
        for i in range(5):  # 10 s
            clock.now = T0 + 2 * i
            n.notify_degraded(1100, LOST)
            clock.now = T0 + 2 * i + 1
            n.notify_restored(1102, KEPT)
        await n.drain(5)
        chat = [b["title"] for b in capture.snapshot()]
    finally:
        await n.stop(2)
    assert len(chat) <= 5, chat


async def test_a_stop_during_an_outage_reaches_the_pager_that_got_the_page(capture: Capture) -> None:
    """The pager got "Gateway down"; then the watchdog stops (a deploy, `systemctl restart`, the host
    going down). Outage state is in memory only: the next start knows nothing of it and, with the
    gateway back, says only an info "started" to the chat. Seen: "ibkr-watchdog stopping" is a
    warning to the chat only; the pager's page is never followed by anything, ever. Expected: a stop
    while an outage is open reaches every route that heard of the outage (it is the last word the
    process can say about it)."""
    clock = Clock(T0)
    n = Notifier(
        config(
            [(url(capture.port, "pager"), ("critical",)), (url(capture.port, "chat"), ("warning", "info"))]
        ),
        clock=clock,
        tick_interval=3600.0,
    )
    await n.start()
    try:
        n.gateway_up(False)
        clock.now = T0 + 30
        n.notify_gateway_down("10.0.0.2:4001", T0, "refused")
        clock.now = T0 + 40
        n.notify_shutdown("SIGTERM", "armed")
        await n.drain(5)
    finally:
        await n.stop(2)
    pager = [b["title"] for p, b in zip(capture.paths, capture.snapshot(), strict=True) if p == "/pager"]
    assert len(pager) == 2 and "stopping" in pager[1], pager


def test_a_kill_rule_held_during_an_outage_is_not_announced_later_as_firing_now() -> None:
    """`stale-close: data_age > 5m → close_all` (critical) breaches during a socket outage after the
    page: its breach is held (the page covers it), the kill fires at once (the daemon does not ask the
    notifier) and goes pending, then runs at the reconnect. The account's data does not come back
    within the settle window (one subscription stuck), so the held breach is announced as a problem of
    its own. Seen: 10 s after the kill report, "[BREACH] stale-close … Action: the kill switch is
    firing (close_all); the kill report follows." — at 3 a.m. that reads as a second liquidation
    starting, with no kill report to follow. Expected: the late announcement does not say a kill
    is firing now (it fired when the rule breached; its report already went out)."""
    inc = Incidents(900.0, settle=10.0)
    inc.gateway_up(False, T0)
    assert inc.gateway_down("gw:4001", T0, T0 + 30, "refused") is not None
    b = on("data_age", BreachKind.BREACH, Severity.CRITICAL, "stale-close")
    b = dataclasses.replace(
        b, action=Action.CLOSE_ALL, value=400.0, threshold=300.0, message="data_age of DU111 = 400 s"
    )
    assert inc.breach(b, T0 + 300) is None  # held; the kill fires and goes pending meanwhile
    inc.reconnect("gw:4001", None, T0 + 400)  # the pending kill runs now; its report goes out
    late = inc.reminders(T0 + 411)
    assert titles(late) == ["[BREACH] stale-close on DU111"]
    assert "is firing" not in late[0].body, late[0].body


def test_a_clock_stepped_back_after_an_outage_does_not_hold_alerts_for_the_size_of_the_step() -> None:
    """NTP steps the wall clock back one hour just after a reconnect (a VM resumed, a bad RTC fixed).
    `Incidents` measures the settle window on the wall clock (`settle_until = now + settle`), so
    every new "unknown" for the next hour is held as "data still coming back": the loss rule's
    critical "unknown" (the watchdog blind to losses) waits an hour instead of 10 s. Expected: held
    no longer than the settle window (10 s) whatever the wall clock does."""
    inc = Incidents(900.0, settle=10.0)
    inc.gateway_up(False, T0)
    inc.reconnect("gw:4001", 3.0, T0 + 3)
    stepped = T0 + 4 - 3600.0  # the clock is stepped back
    unknown = on("daily_pnl", BreachKind.UNKNOWN, Severity.CRITICAL, "loss")
    said = [inc.breach(unknown, stepped + 60)]  # a minute later by any stopwatch
    for t in range(61, 120):
        said += inc.reminders(stepped + t)
    assert titles(said) == ["[UNKNOWN] loss on DU111"], titles(said)


def test_an_1100_outage_that_ends_without_1102_ends_when_account_data_flows_again() -> None:
    """IB's link comes back after the nightly reset but the gateway never says 1101/1102 (seen in the
    wild: QuantConnect/Lean#960 "if no reconnect message was received after the nightly reset").
    The socket never dropped, so `link_unknown` is False and the first good account-summary round trip
    ended nothing. Now the gateway reports it as restored (`ConnectionEvents.account_data_read`: a
    summary asked for after the 1100 was answered), with no code. Seen before: the outage
    never ends: no recovery on either route, ever; hours later a real data problem (the loss rule
    "unknown", critical) is held as "part of the outage" and never sent nor reminded; every
    stale-data breach stays covered by the 1100 notice. Expected: account data read again ends the
    outage like a new session's first read does (docs/alerting.md: data that flows proves the link)."""
    inc = Incidents(900.0, settle=10.0)
    assert inc.degraded(1100, LOST, T0) is not None
    end = inc.restored(None, "account data flows again", T0 + 600)  # no 1102 came
    later = [inc.breach(on("daily_pnl", BreachKind.UNKNOWN, Severity.CRITICAL, "loss"), T0 + 4 * 3600)]
    for h in range(5, 12):
        later += inc.reminders(T0 + h * 3600)
    assert end is not None, "the outage never ends"
    # said at once, then reminded every reminder_interval as any ongoing alert
    assert titles(later)[0] == "[UNKNOWN] loss on DU111", titles(later)
    assert all(t == "Reminder: [UNKNOWN] loss on DU111" for t in titles(later)[1:]), titles(later)
