"""`kill --wait`, `history` and `report` read back from the audit log (issue 14), as the daemon writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchdog.commands.history import history_command
from watchdog.commands.kill import wait_for_outcome
from watchdog.commands.kill_report import report_command
from watchdog.kill.fills import CloseFills
from watchdog.model import ContractRef, Fill
from watchdog.state.audit import AuditLog

KILL = "abc123def456"
AAPL = ContractRef(con_id=265598, symbol="AAPL", sec_type="STK")


def write_audit(state_dir: Path, *records: dict[str, object]) -> None:
    state_dir.mkdir(exist_ok=True, mode=0o750)
    lines = [json.dumps(r) for r in records]
    (state_dir / "audit.jsonl").write_text("\n".join(lines) + "\n")


def _record(ts: float, event: str, kill_id: str | None = KILL, **details: object) -> dict[str, object]:
    return {"ts": ts, "event": event, "kill_id": kill_id, "details": details}


def test_a_kill_wait_folded_into_a_running_kill_follows_it_and_keeps_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_audit(
        tmp_path,
        _record(1000.0, "kill.triggered", trigger="manual:SIGUSR1", action="close_all", reason="first"),
        _record(1001.0, "kill.folded", trigger="manual:SIGUSR1", action="close_all", reason="second op"),
        _record(1003.0, "kill.finished", outcome="flat", cancelled=0, close_orders=1),
    )

    rc = wait_for_outcome(tmp_path, since=1001.0, timeout=0.5, sleep=lambda _: None)

    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"folded into kill {KILL} already running" in out
    assert "second op" in out
    assert history_command(tmp_path, limit=0) == 0
    assert "also: second op" in capsys.readouterr().out
    assert report_command(tmp_path, KILL) == 0
    assert "folded: manual:SIGUSR1 (second op)" in capsys.readouterr().out


def test_report_renders_notes_rejections_and_hand_off_as_one_readable_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_audit(
        tmp_path,
        _record(1000.0, "kill.triggered", trigger="rule:loss", action="close_all", reason="loss"),
        _record(1000.1, "close.note", position="DU1 100 AAPL", message="AAPL: hours from the fallback table"),
        _record(1000.2, "close.rejected", order_id=7, message="closing order 7 for DU1 AAPL rejected: 201"),
        _record(1000.3, "kill.handoff", ours_still_alive=[], message="handed over: cancelled order 7 (held)"),
        _record(1001.0, "kill.escalated", outcome="escalated", problems=["DU1 AAPL 100 still open"]),
    )
    assert report_command(tmp_path, None) == 0
    out = capsys.readouterr().out
    assert "note: AAPL: hours from the fallback table" in out
    assert "closing order REJECTED: closing order 7 for DU1 AAPL rejected: 201" in out
    assert "hand-off: handed over: cancelled order 7 (held)" in out
    assert "{" not in out, out


def test_a_cancel_only_kill_with_positions_open_is_never_labelled_flat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_audit(
        tmp_path,
        _record(
            1000.0, "kill.triggered", trigger="manual:SIGUSR2", action="cancel_all", reason="stop orders"
        ),
        _record(1001.0, "kill.finished", outcome="flat", cancelled=3, close_orders=0, positions_open=2),
    )
    assert history_command(tmp_path, limit=0) == 0
    line = capsys.readouterr().out
    assert "→ orders cancelled (positions not closed: 2)" in line and "→ flat" not in line, line
    # kill --wait --cancel-only: 0 means every order verified cancelled (README), and it says what is left
    assert wait_for_outcome(tmp_path, since=1000.0, timeout=0.5, sleep=lambda _: None) == 0
    assert "positions not closed: 2" in capsys.readouterr().out


def test_a_damaged_audit_line_is_skipped_with_a_count_not_shown_as_a_1970_kill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_audit(
        tmp_path,
        {"event": "kill.triggered", "kill_id": "deadbeef0000", "details": {}},  # no time, no trigger
        _record(1_700_000_000.0, "kill.triggered", trigger="rule:loss", action="close_all", reason="loss"),
        _record(1_700_000_001.0, "kill.finished", outcome="flat"),
    )
    assert history_command(tmp_path, limit=0) == 0
    out = capsys.readouterr().out
    assert "1970" not in out and "? by ?" not in out and "deadbeef" not in out, out
    assert "(1 damaged audit record skipped)" in out and f"{KILL}  close_all by rule:loss → flat" in out, out


def test_report_of_an_empty_id_matches_no_kill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_audit(tmp_path, _record(1000.0, "kill.triggered", trigger="rule:loss", action="close_all"))
    assert report_command(tmp_path, "") == 2
    assert "empty kill id" in capsys.readouterr().err


def test_a_mistyped_state_dir_is_said_not_to_exist_never_armed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from watchdog.cli import main

    for command in (["status"], ["history"], ["report"], ["kill"], ["reset", "--reason", "x"]):
        assert main([*command, "--state-dir", str(tmp_path / "typo")]) == 2, command
        captured = capsys.readouterr()
        assert f"state dir {tmp_path / 'typo'} does not exist" in captured.err, (command, captured)
        assert "ARMED" not in captured.out


def test_report_lists_each_execution_once_under_its_order_and_a_correction_replaces_what_it_corrects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records as the kill writes them: an execution again with its commission, a correction (same
    exec id, higher revision: IB's way), and a restart re-reading today's executions."""
    request = {"account": "DU1", "action": "SELL", "quantity": 100.0, "order_type": "MKT",
               "contract": {"symbol": "AAPL", "con_id": 265598}}  # fmt: skip
    write_audit(
        tmp_path,
        _record(1000.0, "kill.triggered", trigger="rule:loss", action="close_all", reason="loss"),
        _record(1000.1, "close.order", order_id=7, request=request, sent=True),
        _record(1000.2, "close.order", order_id=8, request=request | {"quantity": 5.0}, sent=True),
    )
    now = iter(range(1001, 1100))
    audit = AuditLog(tmp_path / "audit.jsonl", lambda: float(next(now)))

    def fill(exec_id: str, shares: float, price: float, commission: float | None = None) -> Fill:
        return Fill(exec_id=exec_id, time=1000.5, account="DU1", contract=AAPL, side="SLD", shares=shares,
                    price=price, order_id=7, client_id=99, order_ref=f"ibkr-watchdog:{KILL}",
                    commission=commission)  # fmt: skip

    first = CloseFills(audit, lambda: "ibkr-watchdog", 99)
    for f in (fill("e.01.01", 60, 190.0), fill("e.01.01", 60, 190.0, 1.0), fill("e.02.01", 40, 190.5, 1.0)):
        assert first.note(f)
    assert not first.note(fill("e.01.01", 60, 190.0, 1.0))  # known with its commission: not again
    audit.record("kill.finished", {"outcome": "flat", "cancelled": 0, "close_orders": 2}, kill_id=KILL)
    assert first.note(fill("e.02.02", 40, 190.25, 1.0))  # IB's correction, after the outcome
    restarted = CloseFills(audit, lambda: "ibkr-watchdog", 99)  # re-reads today's executions
    assert restarted.note(fill("e.01.01", 60, 190.0, 1.0)) and restarted.note(
        fill("e.02.02", 40, 190.25, 1.0)
    )
    audit.close()

    assert report_command(tmp_path, KILL) == 0
    out = capsys.readouterr().out
    assert out.count("exec e.01.01, commission 1 USD") == 1, out
    assert "exec e.02.01" not in out, out  # corrected
    assert out.count("fill SLD 40 @ 190.25  1970-01-01 00:16:40.500 UTC  exec e.02.02, commission 1 USD") == 1
    assert "filled 100 of 100, avg 190.1 (2 fills)" in out, out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "closing order 8:" in line)
    assert "filled 100 of 100" in lines[at - 1] and lines[at + 1].strip() == "no fill recorded yet", out


def test_a_resumed_kill_reads_as_one_kill_with_its_totals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A walkthrough read a second "triggered:" line after a pending kill resumed as a new kill, and the
    final "0 closing order(s)" (the resumed part's own count) as the whole kill's."""
    req = {
        "account": "DU1",
        "action": "SELL",
        "quantity": 100,
        "order_type": "MKT",
        "contract": {"symbol": "AAPL"},
    }
    write_audit(
        tmp_path,
        _record(1000.0, "kill.triggered", trigger="manual:SIGUSR1", action="close_all", reason="desk"),
        _record(1000.1, "close.order", order_id=41, request=req, sent=True),
        _record(1000.5, "kill.pending", error="positions: no answer within 5s"),
        _record(1010.0, "kill.triggered", trigger="manual:SIGUSR1", action="close_all", reason="desk"),
        _record(1010.5, "kill.finished", outcome="flat", cancelled=0, close_orders=0),
    )
    assert report_command(tmp_path, None) == 0
    out = capsys.readouterr().out
    assert out.count("triggered: close_all") == 1 and "resumed (same kill): close_all" in out, out
    assert "in all (every part of this kill): 1 closing order(s) sent, 0 fill(s) recorded" in out, out


def test_a_cancel_only_lockout_is_a_story_with_its_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    message = "lockout: 1 new risk-increasing order(s), 0 new position(s)"
    write_audit(
        tmp_path,
        _record(1000.0, "lockout.detected", trigger="lockout", action="cancel_all", message=message),
        _record(1000.2, "lockout.done", cancelled=1, replaced_ours=0),
    )
    assert history_command(tmp_path, limit=10) == 0
    assert report_command(tmp_path, None) == 0
    out = capsys.readouterr().out
    assert "cancel_all by lockout → orders cancelled by the lockout" in out, out
    assert "LOCKOUT: 1 new risk-increasing order(s)" in out and "LOCKOUT: lockout:" not in out, out
    assert (
        "lockout done: 1 new order(s) cancelled (the next poll looks again)" in out and "None" not in out
    ), out


def test_kill_wait_follows_a_pending_kill_until_it_resumes_and_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A walkthrough saw `kill --wait` return "outcome: pending" (exit 1) 5 s into a gateway restart,
    though the README says it follows the kill to its end; the kill ran 10-20 s later."""
    trigger = {"trigger": "manual:SIGUSR1", "action": "close_all", "reason": "desk"}
    records = [
        _record(1000.0, "kill.triggered", **trigger),
        _record(1000.5, "kill.pending", error="gateway unavailable"),
    ]
    write_audit(tmp_path, *records)
    polls = []

    def sleep(_: float) -> None:  # the daemon's side: the kill resumes and ends while we wait
        polls.append(1)
        if len(polls) == 3:
            more = [
                _record(
                    1010.0, "kill.triggered", trigger="manual:SIGUSR1", action="close_all", reason="desk"
                ),
                _record(1010.5, "kill.finished", outcome="flat", cancelled=0, close_orders=1),
            ]
            write_audit(tmp_path, *records, *more)

    assert wait_for_outcome(tmp_path, since=999.0, timeout=30, sleep=sleep) == 0
    out = capsys.readouterr().out
    assert out.count("is PENDING: the gateway does not answer (gateway unavailable)") == 1, out
    assert "outcome: flat" in out, out


def test_no_config_here_and_no_default_state_dir_is_said_never_armed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walkthrough ran `status` from /tmp: "latch: ARMED" for a /var/lib/ibkr-watchdog that does not
    exist, with a warning calling the missing rules.yaml "invalid on disk"."""
    from watchdog.cli import main
    from watchdog.commands import locate

    monkeypatch.chdir(tmp_path)  # no rules.yaml here
    monkeypatch.setattr(locate, "INSTALLED_CONFIG", tmp_path / "etc" / "rules.yaml")
    monkeypatch.setattr(locate, "DEFAULT_STATE_DIR", tmp_path / "var-lib")
    for command in (["status"], ["history"], ["report"]):
        assert main(command) == 2, command
        captured = capsys.readouterr()
        assert "no rules.yaml here and no" in captured.err and "invalid on disk" not in captured.err, captured
        assert f"state dir {tmp_path / 'var-lib'} does not exist" in captured.err, captured
        assert "ARMED" not in captured.out
