"""Attack review of issue 14: `report` and the fill bookkeeping against damaged or hostile input."""

from __future__ import annotations

import json
import math
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands.test_kill_story import KILL, _record, write_audit
from watchdog.kill.fills import CloseFills
from watchdog.model import ContractRef, Fill
from watchdog.state.audit import AuditLog, read_audit

REPO = Path(__file__).resolve().parents[2]
REQUEST = {"account": "DU1", "action": "SELL", "quantity": 100.0, "order_type": "MKT",
           "contract": {"symbol": "AAPL", "con_id": 265598}}  # fmt: skip
AAPL = ContractRef(con_id=265598, symbol="AAPL", sec_type="STK")


def _fill_record(ts: float, **over: object) -> dict[str, object]:
    details: dict[str, object] = {"order_id": 7, "exec_id": "e1.01", "side": "SLD", "shares": 100.0,
               "price": 190.0, "time": 1000.2, "currency": "USD", "commission": 1.0}  # fmt: skip
    return _record(ts, "close.fill", **(details | over))


def _report(state_dir: Path) -> subprocess.CompletedProcess[str]:
    """The real CLI, as the operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "report", "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize("bad_time", [math.nan, 1e300, -1e300], ids=["NaN", "huge", "hugely negative"])
def test_report_survives_a_close_fill_record_with_a_damaged_execution_time(
    tmp_path: Path, bad_time: float
) -> None:
    """A torn or hand-edited audit line (the writer itself writes NaN tokens): `report` skips or marks
    the damaged record, as it does for other damaged records; it never ends in a traceback, and the
    rest of the kill is still printed."""
    write_audit(
        tmp_path,
        _record(1000.0, "kill.triggered", trigger="rule:loss", action="close_all", reason="loss"),
        _record(1000.1, "close.order", order_id=7, request=REQUEST, sent=True),
        _fill_record(1000.2, time=bad_time),
        _fill_record(1000.25, exec_id="e2.01", shares=0.0),
        _record(1000.3, "kill.finished", outcome="flat"),
    )
    assert json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[2].replace("NaN", "null"))
    done = _report(tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert "outcome: flat" in done.stdout, done.stdout


def test_a_fill_whose_audit_write_failed_is_recorded_when_it_is_heard_again(tmp_path: Path) -> None:
    """`CloseFills.note` marks an execution recorded whether or not the audit write succeeded (and
    returns True, "recorded"): after a transient write failure (a full disk, here a file size limit)
    the executions poll hears it again every few seconds, yet it never reaches the audit."""
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    audit = AuditLog(state / "audit.jsonl", lambda: 1000.0)
    assert audit.record("pad", {"x": "a" * 200_000})  # a file bigger than pytest's capture files
    fills = CloseFills(audit, lambda: "ibkr-watchdog", 99)
    fill = Fill(exec_id="e1.01", time=1000.2, account="DU1", contract=AAPL, side="SLD", shares=100.0,
                price=190.0, order_id=7, client_id=99, order_ref=f"ibkr-watchdog:{KILL}")  # fmt: skip
    size = (state / "audit.jsonl").stat().st_size
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, old_limit[1]))  # the disk is full
        first = fills.note(fill)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert audit.failures == 1  # the write did fail

    fills.note(fill)  # the disk has room again; the executions poll hears it again

    assert [r.details["exec_id"] for r in read_audit(audit.path) if r.event == "close.fill"] == ["e1.01"]
    assert not first, "note said the fill was recorded though its audit write failed"
