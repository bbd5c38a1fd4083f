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
