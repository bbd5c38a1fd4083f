"""The state directory: latch persistence and fail-safe reads, pid file, requests, audit log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.kill.fakes import FakeClock
from watchdog.errors import StateError
from watchdog.model import Action, TradingState
from watchdog.state.audit import AuditLog, read_audit
from watchdog.state.pidfile import find_daemon
from watchdog.state.store import PENDING_FILE, Latch, PendingKill, StateStore


def test_a_fresh_state_dir_is_armed_with_nothing_pending(tmp_path: Path, clock: FakeClock) -> None:
    store = StateStore(tmp_path / "s", clock)
    assert store.trading_state() is TradingState.ARMED
    assert store.pending_kill() is None and store.last_kill() is None and store.read_status() is None


def test_the_latch_survives_a_new_store_instance(tmp_path: Path, clock: FakeClock) -> None:
    latch = Latch(
        state=TradingState.TRIPPED,
        action=Action.CLOSE_ALL,
        trigger="rule:loss",
        reason="daily loss",
        kill_id="k1",
        tripped_at=123.0,
        accounts=("DU1",),
        baseline={"DU1|5": -3.0},
    )
    StateStore(tmp_path, clock).save_latch(latch)
    again = StateStore(tmp_path, clock).latch()
    assert again == latch
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_a_damaged_pending_kill_reads_as_a_pending_close_all(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / PENDING_FILE).write_bytes(b"\x00garbage")
    store = StateStore(tmp_path, clock)
    pending = store.pending_kill()
    assert pending is not None and pending.action is Action.CLOSE_ALL and store.problems


def test_a_pending_kill_survives_a_restart_and_clears(tmp_path: Path, clock: FakeClock) -> None:
    p = PendingKill(kill_id="k", action=Action.CLOSE_ALL, trigger="t", accounts=("DU1",), created_at=5.0)
    StateStore(tmp_path, clock).save_pending(p)
    store = StateStore(tmp_path, clock)
    assert store.pending_kill() == p
    store.clear_pending()
    assert StateStore(tmp_path, clock).pending_kill() is None


def test_a_failed_latch_write_keeps_the_trip_in_memory_but_not_a_reset(
    tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = StateStore(tmp_path / "file" / "state", clock)  # every write fails, even as root
    with pytest.raises(StateError):
        store.save_latch(Latch(state=TradingState.TRIPPED, trigger="t"))
    assert store.trading_state() is TradingState.TRIPPED
    with pytest.raises(StateError):
        store.save_latch(Latch())
    assert store.trading_state() is TradingState.TRIPPED


def test_the_pid_file_tells_a_live_daemon_from_a_stale_file(tmp_path: Path, clock: FakeClock) -> None:
    daemon = StateStore(tmp_path, clock)
    cli = StateStore(tmp_path, clock)
    assert cli.read_pid() is None
    daemon.write_pid(os.getpid())
    assert cli.read_pid() == os.getpid()
    with pytest.raises(StateError, match=f"pid {os.getpid()}\\) already runs"):
        StateStore(tmp_path, clock).write_pid(1)
    (tmp_path / "watchdog.pid").unlink()  # deleted while the daemon runs: the lock is on the directory
    # the lock holder is found, but this test process is no `ibkr-watchdog run`: never signalled blindly
    assert "is not an ibkr-watchdog daemon" in find_daemon(tmp_path).problem
    with pytest.raises(StateError, match="already runs"):
        StateStore(tmp_path, clock).write_pid(1)
    daemon.remove_pid()
    assert cli.read_pid() is None
    (tmp_path / "watchdog.pid").write_text("777\n")  # left by a daemon killed with -9: nobody holds the lock
    assert cli.read_pid() is None


def test_requests_are_taken_once_in_order(tmp_path: Path, clock: FakeClock) -> None:
    store = StateStore(tmp_path, clock)
    store.put_request("kill", {"reason": "a"})
    clock.now += 1
    store.put_request("kill", {"reason": "b"})
    store.put_request("reset", {"reason": "r"})
    assert [r["reason"] for r in store.take_requests("kill")] == ["a", "b"]
    assert store.take_requests("kill") == []
    assert [r["reason"] for r in store.take_requests("reset")] == ["r"]


def test_audit_records_are_fsynced_lines_in_order_and_garbage_is_skipped(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(
        b'{"ts": 1, "event": "old", "kill_id": null, "details": {}}\nGARBAGE\n{"ts": 2, "ev'
    )  # torn
    errors: list[str] = []
    audit = AuditLog(path, clock, on_error=errors.append)
    assert audit.record("a", {"n": 1}, kill_id="k")
    assert audit.record("b", {"n": float("nan")})
    assert [r.event for r in read_audit(path)] == ["old", "a", "b"]
    assert errors and "damaged" in errors[0]
    assert json.loads(path.read_text().splitlines()[-2])["kill_id"] == "k"  # the torn line stays alone


def test_an_unwritable_audit_is_reported_and_never_raises(tmp_path: Path, clock: FakeClock) -> None:
    errors: list[str] = []
    audit = AuditLog(tmp_path / "no-such-dir" / "audit.jsonl", clock, on_error=errors.append)
    assert audit.record("kill.triggered", {"x": 1}) is False
    assert audit.failures == 1 and "not written" in errors[0]
