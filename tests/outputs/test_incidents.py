"""Messages on a phone (issue 14 #7, #8): one page per incident, recoveries on the same route, real apprise.

Every test sends through real apprise to a local HTTP endpoint and reads what arrived per path
(`/pager` takes critical only, `/chat` warning and info).
"""

from __future__ import annotations

import dataclasses

from tests.outputs.conftest import Capture, make_kill_report
from tests.outputs.test_notifier import Clock, breach, config, url
from watchdog.model import BreachKind, KillOutcome
from watchdog.outputs.messages import MessageContext
from watchdog.outputs.notifier import Notifier


def _routes(capture: Capture) -> Notifier:
    return Notifier(
        config(
            [(url(capture.port, "pager"), ("critical",)), (url(capture.port, "chat"), ("warning", "info"))]
        ),
        clock=Clock(),
        origin="vps2/acct1",
    )


def _got(capture: Capture, path: str) -> list[str]:
    return [b["title"] for p, b in zip(capture.paths, capture.snapshot(), strict=True) if p == f"/{path}"]


async def test_a_gateway_outage_is_one_page_and_one_recovery_on_the_pager(capture: Capture) -> None:
    """Issue 14 #8: a 106 s outage paged 8 times (built-in, the gateway rule, five unknowns, a summary)."""
    n = _routes(capture)
    await n.start()
    try:
        n.gateway_up(False)
        n.notify_breach(
            dataclasses.replace(
                breach(BreachKind.BREACH, rule="gw"), metric="gateway_down_seconds", about_outage=True
            )
        )
        for rule in ("loss", "margin", "fills", "stale", "orders"):
            n.notify_breach(breach(BreachKind.UNKNOWN, rule=rule))
        n.notify_gateway_down("10.0.0.2:4001", 1_700_000_000.0, "connection refused")
        n.notify_reconnect("10.0.0.2:4001")
        for rule in ("gw", "loss", "margin"):
            n.notify_breach(breach(BreachKind.RECOVERED, rule=rule))
        n.tick()
        await n.drain(5)
    finally:
        await n.stop(2)
    assert _got(capture, "pager") == ["vps2/acct1: [BREACH] gw on DU111", "vps2/acct1: Gateway reconnected"]
    recovery = capture.snapshot()[-1]["message"]
    assert "Alerts held back during the outage" in recovery and "loss on DU111: unknown" in recovery
    assert "built-in gateway-down alert" in recovery


async def test_the_built_in_gateway_page_gets_its_recovery_on_the_same_pager(capture: Capture) -> None:
    """Issue 14 #7: "gateway reconnected" (info) never reached the pager that got "gateway down"."""
    n = _routes(capture)
    await n.start()
    try:
        n.notify_gateway_down("10.0.0.2:4001", 1_699_999_900.0, "timeout")
        n.notify_reconnect("10.0.0.2:4001")
        await n.drain(5)
    finally:
        await n.stop(2)
    assert _got(capture, "pager") == ["vps2/acct1: Gateway down", "vps2/acct1: Gateway reconnected"]
    assert "at 2023-11-14 22:13:20 UTC after 100s" in capture.snapshot()[-1]["message"]


async def test_a_breach_recovery_goes_where_the_breach_went(capture: Capture) -> None:
    n = _routes(capture)
    await n.start()
    try:
        n.notify_breach(breach(BreachKind.BREACH))
        n.notify_breach(breach(BreachKind.RECOVERED))
        await n.drain(5)
    finally:
        await n.stop(2)
    assert _got(capture, "pager") == [
        "vps2/acct1: [BREACH] daily_loss on DU111",
        "vps2/acct1: [RECOVERED] daily_loss on DU111",
    ]


async def test_a_burst_summary_gives_each_target_only_its_severities(capture: Capture) -> None:
    """Issue 14 #7: a summary sent to a critical-only target carried warning items."""
    n = Notifier(
        config(
            [(url(capture.port, "pager"), ("critical",)), (url(capture.port, "chat"), ("warning", "info"))],
            burst_max=1,
        ),
        clock=Clock(),
    )
    await n.start()
    try:
        n.notify_text("warning", "first", "goes out")
        n.notify_text("warning", "held warning", "summarised")
        n.notify_breach(breach(BreachKind.BREACH, rule="r1"))  # critical breaches are burst-limited too
        await n.stop(2)  # flushes the summary
    finally:
        await n.stop(2)
    pager = [b for p, b in zip(capture.paths, capture.snapshot(), strict=True) if p == "/pager"]
    assert [b["title"] for b in pager] == ["1 notifications summarised"]
    assert "r1" in pager[0]["message"] and "held warning" not in pager[0]["message"]


async def test_dry_run_says_so_in_every_title_and_never_claims_the_book_is_clean(capture: Capture) -> None:
    """Issue 14 #7: a dry run said "Still open: nothing" with positions open; its title said nothing."""
    n = Notifier(config([(url(capture.port), ("critical",))]), clock=Clock(), dry_run=True)
    await n.start()
    try:
        n.notify_text("critical", "[KILL STARTED] close_all by manual:SIGUSR1", "x")
        n.notify_kill(dataclasses.replace(make_kill_report(KillOutcome.DRY_RUN), dry_run=True))
        await n.drain(5)
    finally:
        await n.stop(2)
    titles = [b["title"] for b in capture.snapshot()]
    assert all("DRY RUN" in t for t in titles), titles
    report = capture.snapshot()[-1]["message"]
    assert "Still open: everything" in report and "Still open: nothing" not in report


async def test_an_escalation_keeps_the_operators_reason_and_names_the_next_command(capture: Capture) -> None:
    """Issue 14 #7: the escalation showed the problem list where "what fired" should be."""
    ctx = MessageContext(exe="/opt/ibkr-watchdog/venv/bin/ibkr-watchdog", state_dir="/var/lib/ibkr-watchdog")
    n = Notifier(config([(url(capture.port), ("critical",))]), clock=Clock())
    n.ctx = ctx
    report = dataclasses.replace(
        make_kill_report(KillOutcome.ESCALATED),
        reason="position DU111 -2 ESZ6 not closed",
        trigger_reason="bot looping on ES (by alice)",
    )
    await n.start()
    try:
        n.notify_kill(report)
        await n.drain(5)
    finally:
        await n.stop(2)
    body = capture.snapshot()[0]["message"]
    assert "What fired: daily_loss — bot looping on ES (by alice)" in body
    assert "What is wrong: position DU111 -2 ESZ6 not closed" in body
    assert (
        "sudo /opt/ibkr-watchdog/venv/bin/ibkr-watchdog reset --state-dir /var/lib/ibkr-watchdog --reason"
        in body
    )
    exe = "sudo /opt/ibkr-watchdog/venv/bin/ibkr-watchdog"
    assert f"{exe} report --state-dir /var/lib/ibkr-watchdog {report.kill_id}" in body


async def test_a_warning_before_a_close_all_rule_says_it_will_close_all_positions(capture: Capture) -> None:
    """Issue 14 #7: the last message before a liquidation said "Action: none yet; … will alert"."""
    n = Notifier(config([(url(capture.port), ("warning",))]), clock=Clock())
    await n.start()
    try:
        n.notify_breach(dataclasses.replace(breach(BreachKind.WARNING), value=-830.8881))
        await n.drain(5)
    finally:
        await n.stop(2)
    [body] = capture.snapshot()
    assert body["title"] == "[WARNING] daily_loss on DU111 — at the threshold: CLOSE ALL POSITIONS"
    assert "AT THE THRESHOLD THIS RULE WILL CLOSE ALL POSITIONS" in body["message"]
    assert "value −830.89 USD vs threshold −1,000 USD" in body["message"]
    assert "Since 2023-11-14 22:13:20 UTC" in body["message"]
