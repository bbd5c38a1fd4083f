"""Attack 3: a pending kill taken up again (resumed, or folded into a new manual kill) and now running:
the old kill.pending record is not what the kill is doing now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.test_kill_story import KILL, _record, write_audit
from watchdog.commands.history import history_command
from watchdog.commands.kill import wait_for_outcome

RULE = {"trigger": "rule:daily-loss", "action": "close_all", "reason": "daily_pnl <= -2500"}
FOLDED = {"trigger": "manual:SIGUSR1 + pending rule:daily-loss", "action": "close_all", "reason": "desk"}


def test_kill_wait_into_a_kill_pending_from_before_never_says_pending_while_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule's kill went pending at 900 (gateway down); the operator runs `kill --wait` at 1000 with
    the gateway back: the daemon folds the pending kill into the manual one (same id) and runs it."""
    before = [
        _record(900.0, "kill.triggered", **RULE),
        _record(900.5, "kill.pending", error="gateway not connected"),
        _record(1000.1, "kill.triggered", resumed=True, **FOLDED),
    ]
    write_audit(tmp_path, *before)
    polls: list[int] = []

    def sleep(_: float) -> None:  # the kill runs (the gateway answers) and ends flat
        polls.append(1)
        if len(polls) == 3:
            write_audit(
                tmp_path,
                *before,
                _record(1000.2, "cancel.global", attempt=1),
                _record(1002.0, "kill.finished", outcome="flat", cancelled=0, close_orders=1),
            )

    assert wait_for_outcome(tmp_path, since=1000.0, timeout=30, sleep=sleep) == 0
    out = capsys.readouterr().out
    # seen: "kill abc123def456 is PENDING: the gateway does not answer (gateway not connected)" — the
    # old record's, printed while the kill was running with the gateway answering
    assert "PENDING" not in out, out


def test_history_of_a_resumed_kill_still_running_is_not_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_audit(
        tmp_path,
        _record(900.0, "kill.triggered", **RULE),
        _record(900.5, "kill.pending", error="gateway not connected"),
        _record(960.0, "kill.triggered", resumed=True, **RULE),
        _record(960.1, "cancel.global", attempt=1),
    )
    assert history_command(tmp_path, limit=0) == 0
    out = capsys.readouterr().out
    assert KILL in out
    # seen: "→ pending in 0.5s": the kill has resumed and is running
    assert "→ pending" not in out, out


def test_kill_wait_never_follows_a_cancel_only_kill_another_operator_sent_just_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Operator A sends `kill --cancel-only` at 1000.0 (done at 1000.2, positions left open); operator
    B sends `kill --wait` (close all) at 1000.25, which runs as its own kill and escalates."""
    b_kill = "b0b0b0b0b0b0"
    write_audit(
        tmp_path,
        _record(1000.0, "kill.triggered", trigger="manual:SIGUSR2", action="cancel_all", reason="A"),
        _record(1000.2, "kill.finished", outcome="flat", positions_open=5, cancelled=1, close_orders=0),
        _record(1000.3, "kill.triggered", b_kill, trigger="manual:SIGUSR1", action="close_all", reason="B"),
        _record(1002.0, "kill.escalated", b_kill, outcome="escalated", problems=["AAPL 100 open"]),
    )
    rc = wait_for_outcome(
        tmp_path, since=1000.25, timeout=1, sleep=lambda _: None, action="close_all", reason="B"
    )
    out = capsys.readouterr().out
    # seen: exit 0 with "cancel_all by manual:SIGUSR2 → orders cancelled (positions not closed: 5)"
    assert b_kill in out, out
    assert rc == 1, out


def test_a_lockout_that_could_not_act_is_not_told_as_still_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchdog.commands.kill_report import report_command

    message = "lockout: 1 new risk-increasing order(s), 0 new position(s)"
    write_audit(
        tmp_path,
        _record(1000.0, "lockout.detected", trigger="lockout", action="cancel_all", message=message),
        _record(1000.1, "lockout.failed", error="gateway not connected"),
    )
    assert history_command(tmp_path, limit=10) == 0
    assert report_command(tmp_path, None) == 0
    out = capsys.readouterr().out
    # seen: "→ running (or interrupted)" and "(no final record: the kill is still running, or the
    # daemon stopped during it)" for a lockout that ended at once, failed (the next poll tries again)
    assert "running (or interrupted)" not in out and "still running" not in out, out
