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
    assert (
        err
        == f"warning: {REPO_RULES}: notifications: no notification target: nobody will be told about a kill\n"
    )
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


def _config(tmp_path: Path, extra: str = "", port: int = 4002, paper: str = "true") -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"gateway:\n  port: {port}\n  client_id: 99\n  paper: {paper}\nstate_dir: {tmp_path / 'st'}\n{extra}"
    )
    return path


def test_check_refuses_a_paper_config_on_a_live_port_like_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14 #6: `check` said OK, `run` refused (after binding metrics and announcing "started")."""
    assert main(["check", str(_config(tmp_path, port=4001))]) == 2
    err = capsys.readouterr().err
    assert "gateway.port 4001 is a LIVE trading port" in err and "`run` would refuse this file" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "notification URLs: "),
        ("this is not a url\n", ":1: not an apprise URL"),
        ("nosuchservice://x/y\n", "not a valid apprise URL"),
    ],
)
def test_check_reads_the_urls_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    urls = tmp_path / "notify-urls"
    if content is not None:
        urls.write_text(content)
    assert main(["check", str(_config(tmp_path, f"notifications:\n  urls_file: {urls}\n"))]) == 2
    assert expected in capsys.readouterr().err


def test_an_empty_urls_file_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = tmp_path / "notify-urls"
    urls.write_text("# only comments, as a fresh install leaves it\n")
    assert main(["check", str(_config(tmp_path, f"notifications:\n  urls_file: {urls}\n"))]) == 0
    assert "holds none): nobody will be told about a kill" in capsys.readouterr().err


def test_check_counts_the_targets_of_the_urls_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = tmp_path / "notify-urls"
    urls.write_text("critical=json://127.0.0.1:9/hook\nwarning,info=json://127.0.0.1:9/chat\n")
    assert main(["check", str(_config(tmp_path, f"notifications:\n  urls_file: {urls}\n"))]) == 0
    assert "2 notification target(s) (urls_file included)" in capsys.readouterr().out


def test_check_warns_of_a_likely_sign_slip_and_of_metrics_beyond_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = (
        "metrics:\n  host: 0.0.0.0\n"
        "rules:\n  - name: loss\n    when: 'daily_pnl <= 2500'\n    action: close_all\n"
    )
    assert main(["check", str(_config(tmp_path, rules))]) == 0  # warnings, not errors
    err = capsys.readouterr().err
    assert "rules.loss: daily_pnl <= 2,500 USD fires (CLOSE ALL POSITIONS)" in err
    assert "did you mean daily_pnl <= −2,500 USD?" in err
    assert "metrics.host 0.0.0.0 serves /metrics" in err and "SSH tunnel or a VPN" in err


def test_check_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """Issue 14 #10: `check rules.yaml | head -1` ended in a BrokenPipeError traceback."""
    import subprocess
    import sys

    for reader in ("head -1", "true"):  # `true` leaves before anything is written: EPIPE for sure
        proc = subprocess.run(
            f"{sys.executable} -m watchdog check {REPO_RULES} | {reader}",
            shell=True, capture_output=True, text=True, timeout=60, cwd=REPO_RULES.parent,
        )  # fmt: skip
        assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0
