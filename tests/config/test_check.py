"""`ibkr-watchdog check`: the effective rules in plain words, or every problem and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.cli import main
from watchdog.commands.check import check_command
from watchdog.config.load import describe_rule
from watchdog.config.schema import Rule

REPO_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"


def test_check_prints_the_rules_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command(str(REPO_RULES)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"{REPO_RULES}: OK\n")
    assert "gateway 127.0.0.1:4002 client id 99 (paper), watching DU111111, DU222222" in out
    assert (
        "  daily-loss: close all when daily P&L of each account ≤ −2,500 USD for 2 s; "
        "warn at 80% of the way (≤ −2,000 USD) [critical]" in out
    )
    assert "flatten-before-close: (disabled) flatten at 15:55 America/New_York mon-fri" in out
    assert "runaway-orders: cancel all orders when new orders per minute of each account > 60" in out
    assert "quiet window nightly-reset: from 23:45 America/New_York every day for 2 h" in out


def test_check_quiet_prints_nothing_for_a_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command(str(REPO_RULES), quiet=True) == 0
    assert capsys.readouterr() == ("", "")


def test_check_prints_every_problem_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "gateway:\n  port: 4002\n  client_id: 99\n  paper: off\n"
        "rules:\n  - name: x\n    when: 'daly_pnl < 0'\n"
    )
    assert main(["check", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"{bad}:4: gateway.paper: must be true or false, got: 'off'"
    assert lines[1].startswith(
        f"{bad}:7: rules[0].when.metric: unknown metric 'daly_pnl' (did you mean 'daily_pnl'?)"
    )
    assert lines[2] == f"{bad}: 2 problems; nothing was changed"


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        (
            {
                "name": "a",
                "when": "daily_pnl <= -2500",
                "for": "10s",
                "action": "close_all",
                "scope": "DU123456",
            },
            "close all when daily P&L of DU123456 ≤ −2,500 USD for 10 s [critical]",
        ),
        (
            {"name": "a", "when": "daily_pnl_pct <= -3%", "scope": "all", "severity": "warning"},
            "alert when daily P&L in % of previous-day equity of all accounts summed ≤ −3% [warning]",
        ),
        (
            {
                "name": "a",
                "when": "cushion < 5% or margin_ratio > 0.9",
                "consecutive": 3,
                "action": "cancel_all",
            },
            "cancel all orders when cushion < 5% or maintenance margin / net liquidation > 90% "
            "(each account) on 3 successive polls [critical]",
        ),
        (
            {"name": "a", "when": {"all": ["heartbeat_rtt > 500ms", "gateway_down_seconds >= 2m"]}},
            "alert when heartbeat round trip > 500 ms and time the gateway has been down ≥ 2 min [critical]",
        ),
        (
            {"name": "a", "when": "net_liquidation < 50000", "warn_at": "50%"},
            "alert when net liquidation value of each account < 50,000 USD; "
            "warn 50% of the way from the day's high [critical]",
        ),
        (
            {"name": "a", "schedule": {"cron": "55 15 * * mon-fri"}, "action": "close_all"},
            "flatten at 15:55 America/New_York mon-fri [critical]",
        ),
        (
            {"name": "a", "schedule": {"cron": "*/5 9-16 * * *", "timezone": "Europe/Zurich"}},
            "alert on cron '*/5 9-16 * * *' (Europe/Zurich) [critical]",
        ),
    ],
)
def test_describe_rule_reads_like_a_sentence(rule: dict[str, object], words: str) -> None:
    assert describe_rule(Rule.model_validate(rule)) == words
