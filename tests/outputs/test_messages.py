"""Message texts a person can act on, as pure functions; URL parsing and redaction of notification targets."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from tests.outputs.conftest import AAPL, ES, make_kill_report
from watchdog.model import Action, Breach, BreachKind, Fill, KillOutcome, Severity
from watchdog.outputs.messages import (
    Kind,
    format_breach,
    format_kill,
    format_pending_kill,
    format_reload_failure,
    format_summary,
    format_text,
)
from watchdog.outputs.outage_messages import format_gateway_down
from watchdog.outputs.targets import SecretFilter, describe_url, parse_urls_file, redact, secret_fragments


def _breach(kind: BreachKind, account: str | None = "DU111", value: float | None = -1200.0) -> Breach:
    return Breach(
        rule="daily_loss",
        kind=kind,
        action=Action.CLOSE_ALL,
        severity=Severity.CRITICAL,
        account=account,
        metric="daily_pnl",
        value=value,
        threshold=-1000.0,
        since=1_700_000_000.0,
    )


def test_a_breach_says_value_threshold_action_and_since_when() -> None:
    n = format_breach(_breach(BreachKind.BREACH), now=1_700_000_090.0)
    assert n.title == "[BREACH] daily_loss on DU111" and n.kind is Kind.BREACH and n.limited
    assert "value −1,200 USD vs threshold −1,000 USD" in n.body
    assert "the kill switch is firing (close_all)" in n.body
    assert "Since 2023-11-14 22:13:20 UTC (90s ago)" in n.body


def test_unknown_data_says_the_watchdog_will_not_kill_on_it() -> None:
    n = format_breach(_breach(BreachKind.UNKNOWN, account=None, value=None), now=1_700_000_000.0)
    assert n.title == "[UNKNOWN] daily_loss on all accounts"
    assert "value unknown" in n.body and "never kills on missing data" in n.body


def test_a_kill_report_lists_cancelled_closing_and_open_and_how_to_reset() -> None:
    fill = Fill(
        exec_id="e1",
        time=1_700_000_001.0,
        account="DU111",
        contract=AAPL,
        side="SLD",
        shares=100,
        price=179.9,
        order_id=41,
    )
    report = dataclasses.replace(make_kill_report(), close_fills=(fill,), close_order_ids=(41, 42))
    n = format_kill(report)
    assert n.kind is Kind.KILL and n.severity is Severity.CRITICAL and not n.limited
    assert n.title == "[KILL DONE] close_all by daily_loss on DU111"
    assert "What fired: daily_loss — daily P&L -1,200 below -1,000" in n.body
    assert "Cancelled orders (1):\n  - DU111 BUY 10 AAPL LMT 180.5 (order 7, client 1, Cancelled)" in n.body
    assert "  - DU111 SELL 100 AAPL MKT via SMART" in n.body
    assert "  - DU111 BUY 2 ESZ6 LMT 5001.25 outside RTH via CME" in n.body
    assert (
        "Closing fills (1):\n  - order 41: DU111 SLD 100 of 100 AAPL @ 179.9 (2023-11-14 22:13:21 UTC)"
        in n.body
    )
    assert "Still open: nothing" in n.body
    assert "Outcome: verified: no working orders and no positions left." in n.body
    assert "Re-arm when safe: ibkr-watchdog reset --reason" in n.body
    assert "When: 2023-11-14 22:13:20 UTC" in n.body


def test_many_fills_of_a_closing_order_are_one_line_with_the_total_and_average() -> None:
    """A phone gets one line per closing order: 52 partial fills of two orders are two lines."""
    aapl = [
        Fill(
            exec_id=f"a{i}",
            time=1_700_000_001.0 + i,
            account="DU111",
            contract=AAPL,
            side="SLD",
            shares=2,
            price=180.0 + (i % 4) * 0.01,
            order_id=41,
        )
        for i in range(50)
    ]
    es = [
        Fill(
            exec_id=f"e{i}",
            time=1_700_000_060.0 + i,
            account="DU111",
            contract=ES,
            side="BOT",
            shares=1,
            price=5001.25,
            order_id=42,
        )
        for i in range(2)
    ]
    report = dataclasses.replace(make_kill_report(), close_fills=(*aapl, *es), close_order_ids=(41, 42))
    body = format_kill(report).body
    block = body[body.index("Closing fills") :].split("\n")[:3]
    assert block == [
        "Closing fills (2):",
        "  - order 41: DU111 SLD 100 of 100 AAPL @ avg 180.0146 (50 fills, last 2023-11-14 22:14:10 UTC)",
        "  - order 42: DU111 BOT 2 of 2 ESZ6 @ avg 5001.25 (2 fills, last 2023-11-14 22:14:21 UTC)",
    ]
    assert len(body.splitlines()) < 30


@pytest.mark.parametrize(
    ("outcome", "kind", "text"),
    [
        (KillOutcome.ESCALATED, Kind.ESCALATION, "act by hand now"),
        (KillOutcome.PENDING, Kind.PENDING_KILL, "runs the moment it is back"),
        (KillOutcome.DRY_RUN, Kind.KILL, "the account was not touched"),
    ],
)
def test_each_kill_outcome_reads_differently(outcome: KillOutcome, kind: Kind, text: str) -> None:
    n = format_kill(make_kill_report(outcome))
    assert n.kind is kind and text in n.body


def test_gateway_down_and_reload_failure_tell_what_to_check() -> None:
    down = format_gateway_down("10.0.0.2:4001", 1_700_000_000.0, 1_700_000_045.0, "connection refused")
    assert down.severity is Severity.CRITICAL and not down.limited
    assert "for 45s" in down.body and "connection refused" in down.body and "tunnel" in down.body
    bad = format_reload_failure(["rules.yaml:12: rules[0].for: must be a duration"])
    assert "rules.yaml:12" in bad.body and "running config is kept" in bad.body


def test_a_summary_counts_by_severity_and_takes_the_highest() -> None:
    held = [format_text(Severity.WARNING, f"w{i}", "") for i in range(3)] + [
        format_breach(_breach(BreachKind.BREACH), now=1_700_000_000.0)
    ]
    n = format_summary(held, 10.0)
    assert n.severity is Severity.CRITICAL and n.title == "4 notifications summarised"
    assert "within 10s (1 critical, 3 warning)" in n.body


def test_free_text_is_limited_unless_critical() -> None:
    assert format_text(Severity.WARNING, "t", "b").limited
    assert not format_text(Severity.CRITICAL, "t", "b").limited


def test_a_urls_file_gives_severities_per_line_and_names_bad_lines_only() -> None:
    text = (
        "# comment\n"
        "critical, warning = json://127.0.0.1:9/pager?token=abc=def\n"
        "json://127.0.0.1:9/all\n"
        "pager=json://127.0.0.1:9/s3cr3tpath\n"
        "no url here s3cr3tpath\n"
    )
    targets, problems = parse_urls_file(text, source="urls")
    assert [(t.url, sorted(s.value for s in t.severities)) for t in targets] == [
        ("json://127.0.0.1:9/pager?token=abc=def", ["critical", "warning"]),
        ("json://127.0.0.1:9/all", ["critical", "info", "warning"]),
    ]
    assert problems == [
        "urls:4: unknown severity 'pager' (use info, warning, critical)",
        "urls:5: not an apprise URL (expected scheme://…)",
    ]
    assert "s3cr3t" not in repr(targets)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("json://user:pw@127.0.0.1:8080/hook/tok?x=1", "json://127.0.0.1:8080/…"),
        ("tgram://123456789:AAHsecretbot/987654", "tgram://…"),
        ("discord://webhook_id/webhook_token", "discord://…"),
        ("not a url", "?://…"),
    ],
)
def test_describe_url_keeps_only_what_is_safe_to_log(url: str, shown: str) -> None:
    assert describe_url(url) == shown


def test_redaction_removes_credentials_tokens_and_query_values() -> None:
    url = "slack://T1ABCDEFG/B2HIJKLMN/xoxbsecret123?footer=no&token=qwertyuiop"
    frags = secret_fragments(url)
    line = f"failed to post to {url} (token qwertyuiop, T1ABCDEFG)"
    clean = redact(line, frags)
    for secret in ("T1ABCDEFG", "B2HIJKLMN", "xoxbsecret123", "qwertyuiop"):
        assert secret not in clean
    assert clean.startswith("failed to post to ***")


def test_a_slug_of_words_in_a_webhook_path_never_blanks_those_words_out_of_messages() -> None:
    """A path like /hooks/drill-scenario-manual-kill is a name: "manual" must survive in the text."""
    frags = secret_fragments("json://127.0.0.1:8080/hooks/drill-scenario-manual-kill")
    clean = redact("manual kill: scenario passed", frags)
    assert clean == "manual kill: scenario passed"
    # a random token in the same place is still masked, pieces included
    frags = secret_fragments("json://127.0.0.1:8080/hooks/k3j9x2lq8vz7mw4r")
    assert "k3j9x2" not in redact("webhook said: bad token k3j9x2lq", frags)


def test_the_log_filter_scrubs_messages_args_and_tracebacks() -> None:
    f = SecretFilter()
    f.fragments = frozenset({"hunter2secret"})
    try:
        raise ValueError("bad url json://u:hunter2secret@h/")
    except ValueError as exc:
        rec = logging.LogRecord(
            "apprise", logging.ERROR, __file__, 1, "send %s", ("hunter2secret",), (type(exc), exc, None)
        )
    assert f.filter(rec)
    assert rec.exc_info is None
    assert (
        "hunter2secret" not in rec.getMessage() and "ValueError: bad url json://u:***@h/" in rec.getMessage()
    )


def test_plain_words_in_a_url_are_not_scrubbed_from_messages() -> None:
    frags = secret_fragments("json://127.0.0.1:9/notifications/webhook/Ab12cd34ef")
    assert redact("5 notifications summarised via webhook", frags) == "5 notifications summarised via webhook"
    assert (
        redact("posted to /notifications/webhook/Ab12cd34ef", frags) == "posted to /notifications/webhook/***"
    )


def test_an_escalation_lists_each_closing_order_by_id_and_says_which_was_rejected() -> None:
    """Issue 14: the escalation page listed closing orders without ids and without "rejected"."""
    report = dataclasses.replace(
        make_kill_report(KillOutcome.ESCALATED), close_order_ids=(41, 42), rejected={42: "201 Order rejected"}
    )
    body = format_kill(report).body
    assert "SELL 100 AAPL MKT via SMART (order 41)" in body, body
    assert "(order 42, REJECTED: 201 Order rejected)" in body, body


def test_a_pending_kill_that_already_sent_closing_orders_says_not_to_close_them_by_hand() -> None:
    """A walkthrough found "[KILL PENDING] … Meanwhile nothing is cancelled: … act there" while the
    kill's closing orders were working and a third filled: an operator closing by hand would have
    closed those positions twice. The page lists what was sent and what filled, and says so."""
    fill = Fill(
        exec_id="e1.01", time=1_700_000_001.0, account="DU111", contract=AAPL, side="SLD",
        shares=40, price=190.0, order_id=41,
    )  # fmt: skip
    sent = dataclasses.replace(
        make_kill_report(KillOutcome.PENDING, "manual:SIGUSR1"),
        close_order_ids=(41, None),
        close_fills=(fill,),
        trigger_reason="desk says stop",
    )
    n = format_pending_kill(sent, "positions: no answer within 5s")
    assert n.title == "[KILL PENDING] close_all by manual:SIGUSR1: the gateway does not answer"
    assert "(desk says stop), cannot go on now: positions: no answer within 5s." in n.body
    assert "Already sent, and may still fill (1):" in n.body and "(order 41)" in n.body
    assert "SLD 40 of 100 AAPL" in n.body and "Do NOT close these positions by hand" in n.body
    assert "nothing is cancelled" not in n.body and "report k-20240101-0001" in n.body
    nothing = format_pending_kill(dataclasses.replace(sent, close_order_ids=(), close_fills=()))
    assert "No closing order of this kill is known to be working" in nothing.body
    assert (
        "cancel any order with order ref 'k-20240101-0001'" in nothing.body and "Do NOT" not in nothing.body
    )
