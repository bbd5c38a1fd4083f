"""One outage, one page, one recovery (issue 14 #8) for every kind of outage, as pure bookkeeping.

`Incidents` decides what is said; these tests feed it what the daemon feeds it (breaches, the
gateway's state, 1100/1102, the built-in gateway-down alert) and read the notifications it returns.
One test sends through real apprise to check the recovery reaches every route that heard the outage.
"""

from __future__ import annotations

import dataclasses

from tests.outputs.conftest import Capture
from tests.outputs.test_notifier import Clock, breach, config, url
from watchdog.config.conditions import OUTAGE_METRICS
from watchdog.model import Breach, BreachKind, Severity
from watchdog.outputs.incidents import Incidents
from watchdog.outputs.notifier import Notifier

T0 = 1_700_000_000.0
LOST = "Connectivity between IB and Trader Workstation has been lost."
KEPT = "Connectivity between IB and Trader Workstation has been restored - data maintained."


def on(metric: str, kind: BreachKind, severity: Severity, rule: str = "", account: str = "DU111") -> Breach:
    b = breach(kind, rule=rule or metric, account=account)
    # a one-metric rule: about the outage exactly when its metric is one an outage moves by itself
    return dataclasses.replace(b, metric=metric, severity=severity, about_outage=metric in OUTAGE_METRICS)


def titles(ns: list[object]) -> list[str]:
    return [getattr(n, "title", "") for n in ns if n is not None]


def test_stale_data_breaches_during_an_outage_are_part_of_its_one_page() -> None:
    """The reviewer's case: two stale-data breaches (one per account) and their recoveries paged beside
    "gateway down" within 35 s. Old code: both breaches and both recoveries were sent."""
    inc = Incidents(900.0, settle=30.0)
    inc.gateway_up(False, T0)
    sent = [inc.gateway_down("gw:4001", T0, T0 + 30, "refused")]
    for acct in ("DU111", "DU222"):
        sent.append(inc.breach(on("data_age", BreachKind.BREACH, Severity.WARNING, "stale", acct), T0 + 61))
    sent.append(inc.reconnect("gw:4001", None, T0 + 106))
    for acct in ("DU111", "DU222"):
        sent.append(
            inc.breach(on("data_age", BreachKind.RECOVERED, Severity.WARNING, "stale", acct), T0 + 108)
        )
    sent += inc.reminders(T0 + 200)
    assert titles(sent) == ["Gateway down", "Gateway reconnected"]
    recovery = [n for n in sent if n is not None][-1]
    assert "stale on DU111: breach" in recovery.body and "stale on DU222: breach" in recovery.body
    assert recovery.severity is Severity.CRITICAL


def test_a_warning_about_the_outage_never_silences_the_critical_page_after_it() -> None:
    """A stale-data warning that comes first must not stand in for the critical gateway-down page.
    Old code: the warning became "the outage's page" and the built-in critical alert was held back."""
    inc = Incidents(900.0)
    inc.gateway_up(False, T0)
    first = inc.breach(on("data_age", BreachKind.BREACH, Severity.WARNING, "stale"), T0 + 20)
    page = inc.gateway_down("gw:4001", T0, T0 + 30, "refused")
    again = inc.gateway_down("gw:4001", T0, T0 + 31, "refused")
    rule = inc.breach(on("gateway_down_seconds", BreachKind.BREACH, Severity.CRITICAL, "gw"), T0 + 40)
    assert titles([first, page, again, rule]) == ["[BREACH] stale on DU111", "Gateway down"]
    end = inc.reconnect("gw:4001", None, T0 + 60)
    assert end.severity is Severity.CRITICAL and end.routes == {Severity.WARNING, Severity.CRITICAL}


def test_a_lost_link_to_ibs_servers_is_an_outage_that_1102_ends() -> None:
    """1100 → 1102 with the socket up. Old code: a bare warning, every rule's "unknown" sent, no
    recovery, and the outage never ended (later "unknown" alerts were held back for good)."""
    inc = Incidents(900.0, settle=30.0)
    notice = inc.degraded(1100, LOST, T0)
    repeat = inc.degraded(1100, LOST, T0 + 1)
    unknown = inc.breach(on("daily_pnl", BreachKind.UNKNOWN, Severity.WARNING, "loss"), T0 + 35)
    page = inc.gateway_down("gw:4001", T0, T0 + 30, LOST)
    assert titles([notice, repeat, unknown, page]) == ["Gateway lost IB's servers (1100)", "Gateway down"]
    end = inc.restored(1102, KEPT, T0 + 90)
    assert end is not None and end.title == "Gateway connectivity restored (1102)"
    assert end.severity is Severity.CRITICAL and end.routes == {Severity.WARNING, Severity.CRITICAL}
    assert "after 90s" in end.body and "loss on DU111: unknown" in end.body
    assert inc.outage is None
    assert inc.restored(1102, KEPT, T0 + 91) is None  # no outage: nothing to call off
    # the next outage is a new one: said again
    assert titles([inc.degraded(1100, LOST, T0 + 500)]) == ["Gateway lost IB's servers (1100)"]


def test_data_still_missing_after_the_outage_is_held_then_said_if_it_does_not_come_back() -> None:
    inc = Incidents(900.0, settle=30.0)
    inc.gateway_up(False, T0)
    inc.reconnect("gw:4001", None, T0 + 10)
    # right after the reconnect the first reads are not in yet: held, not sent
    assert inc.breach(on("daily_pnl", BreachKind.UNKNOWN, Severity.WARNING, "loss"), T0 + 11) is None
    assert inc.breach(on("data_age", BreachKind.BREACH, Severity.WARNING, "stale"), T0 + 12) is None
    assert inc.breach(on("daily_pnl", BreachKind.RECOVERED, Severity.WARNING, "loss"), T0 + 13) is None
    assert inc.reminders(T0 + 39) == []
    # the data never came back for the stale rule: said once the window is over, then reminded as usual
    late = inc.reminders(T0 + 41)
    assert titles(late) == ["[BREACH] stale on DU111"]
    recovered = inc.breach(on("data_age", BreachKind.RECOVERED, Severity.WARNING, "stale"), T0 + 50)
    assert titles([recovered]) == ["[RECOVERED] stale on DU111"]


def test_an_alert_held_during_a_long_outage_is_not_reminded_on_its_own() -> None:
    """Old code: a held-back alert was reminded through `breach()` once reminder_interval passed."""
    inc = Incidents(60.0)
    inc.gateway_up(False, T0)
    assert inc.gateway_down("gw:4001", T0, T0 + 30, "x") is not None
    b = on("daily_pnl", BreachKind.UNKNOWN, Severity.WARNING, "loss")
    assert [inc.breach(b, T0 + t) for t in (31, 100, 200, 400)] == [None] * 4
    assert titles(inc.reminders(T0 + 400)) == []


def test_a_breach_that_is_not_about_the_outage_still_pages_during_it() -> None:
    """Folding is for what the outage explains: a loss breach seen just before the socket dropped
    (or on data that is still fresh) is its own page."""
    inc = Incidents(900.0)
    inc.gateway_up(False, T0)
    assert inc.gateway_down("gw:4001", T0, T0 + 30, "x") is not None
    assert titles([inc.breach(breach(BreachKind.BREACH), T0 + 31)]) == ["[BREACH] daily_loss on DU111"]


async def test_the_recovery_of_an_1100_outage_reaches_the_chat_and_the_pager_once_each(
    capture: Capture,
) -> None:
    n = Notifier(
        config(
            [(url(capture.port, "pager"), ("critical",)), (url(capture.port, "chat"), ("warning", "info"))]
        ),
        clock=Clock(),
    )
    await n.start()
    try:
        n.notify_degraded(1100, LOST)
        n.notify_gateway_down("10.0.0.2:4001", 1_699_999_950.0, LOST)
        n.notify_restored(1102, KEPT)
        await n.drain(5)
    finally:
        await n.stop(2)
    got = [(p, b["title"]) for p, b in zip(capture.paths, capture.snapshot(), strict=True)]
    assert sorted(got) == [
        ("/chat", "Gateway connectivity restored (1102)"),
        ("/chat", "Gateway lost IB's servers (1100)"),
        ("/pager", "Gateway connectivity restored (1102)"),
        ("/pager", "Gateway down"),
    ]
