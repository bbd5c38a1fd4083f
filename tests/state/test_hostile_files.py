"""Every state file goes through one hardened reader (issue 15, review): a FIFO never blocks, a link is
never followed, a hard-linked file is never appended to, a large file is refused before it is read,
and a damaged or unsafe cache never blocks a start (`watchdog.state.store.ON_UNUSABLE`)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kill.fakes import FakeClock
from watchdog.errors import StateError
from watchdog.model import TradingState
from watchdog.state.audit import AuditLog, read_audit
from watchdog.state.files import MAX_STATE_FILE, StateDirectory, UnsafeFile
from watchdog.state.store import (
    AUDIT_FILE,
    BASELINE_FILE,
    LATCH_FILE,
    PENDING_FILE,
    PID_FILE,
    REQUEST_LIMIT,
    REQUESTS_DIR,
    StateStore,
)


def _in_thread(fn: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Run `fn` in a thread and fail (instead of hanging the suite) if it blocks: a FIFO open would."""
    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the test
            error.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        # unblock the FIFO reader/writer so the thread ends, then fail
        raise AssertionError(f"{fn} blocked for {timeout:g}s")
    if error:
        raise error[0]
    return result[0] if result else None


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir(mode=0o750)
    return d


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps({"reason": "planted", "who": "mallory", "requested_at": 1.0}))
    return victim


# ---------------------------------------------------------------------- requests/
def _requests(state: Path) -> Path:
    reqdir = state / REQUESTS_DIR
    reqdir.mkdir(mode=0o750)
    return reqdir


def test_a_fifo_request_is_removed_unread_and_never_blocks(state: Path, clock: FakeClock) -> None:
    os.mkfifo(_requests(state) / "kill-0001.json")
    store = StateStore(state, clock)
    assert _in_thread(lambda: store.take_requests("kill")) == []
    assert not (state / REQUESTS_DIR / "kill-0001.json").exists()
    assert len(store.problems) == 1 and "not a regular file" in store.problems[0]


def test_a_symlinked_request_is_never_followed(state: Path, tmp_path: Path, clock: FakeClock) -> None:
    victim = _victim(tmp_path)
    (_requests(state) / "reset-0001.json").symlink_to(victim)
    store = StateStore(state, clock)
    assert store.take_requests("reset") == []  # the planted reset never reaches the kill switch
    assert not os.path.lexists(state / REQUESTS_DIR / "reset-0001.json")  # the link is removed ...
    assert victim.exists()  # ... never its target
    assert "symbolic link" in store.problems[0]


def test_a_hard_linked_request_and_a_large_one_are_refused(
    state: Path, tmp_path: Path, clock: FakeClock
) -> None:
    reqdir = _requests(state)
    victim = _victim(tmp_path)
    os.link(victim, reqdir / "reset-0001.json")
    with open(reqdir / "reset-0002.json", "wb") as f:
        f.truncate(300 * 1024 * 1024)  # sparse: refused from its size, never read
    (reqdir / "reset-0003.json").write_text(json.dumps({"reason": "honest", "who": "ops"}))
    store = StateStore(state, clock)
    assert store.take_requests("reset") == [{"reason": "honest", "who": "ops"}]
    assert "2 hard links" in store.problems[0]
    assert f"larger than {REQUEST_LIMIT} bytes" in store.problems[1]
    assert sorted(os.listdir(reqdir)) == []
    assert victim.exists()


@pytest.mark.parametrize("problem", ["symlink", "777"])
def test_a_requests_dir_that_is_a_link_or_others_can_write_is_not_read(
    state: Path, tmp_path: Path, clock: FakeClock, problem: str
) -> None:
    if problem == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o750)
        (state / REQUESTS_DIR).symlink_to(elsewhere)
        planted = elsewhere / "reset-0001.json"
    else:
        reqdir = _requests(state)
        reqdir.chmod(0o777)
        planted = reqdir / "reset-0001.json"
    planted.write_text(json.dumps({"reason": "planted"}))
    store = StateStore(state, clock)
    assert store.take_requests("reset") == []
    assert planted.exists()
    assert store.problems and store.problems[0].startswith("control requests not read")


def test_requests_written_by_the_cli_are_taken_through_the_same_reader(state: Path, clock: FakeClock) -> None:
    store = StateStore(state, clock)
    path = store.put_request("kill", {"action": "close_all", "reason": "r"})
    assert path.parent == state / REQUESTS_DIR
    assert store.take_requests("kill") == [{"action": "close_all", "reason": "r"}]
    assert store.problems == []


# ---------------------------------------------------------------------- audit.jsonl, watchdog.pid
def test_a_fifo_audit_file_is_set_aside_at_open_without_blocking(state: Path, clock: FakeClock) -> None:
    os.mkfifo(state / AUDIT_FILE)
    errors: list[str] = []
    audit = AuditLog(state / AUDIT_FILE, clock, on_error=errors.append)
    _in_thread(audit.open)
    assert audit.record("kill.triggered") is True
    assert (state / AUDIT_FILE).is_file()
    assert [r.event for r in read_audit(state / AUDIT_FILE)] == ["kill.triggered"]
    assert len(errors) == 1 and "not a regular file" in errors[0]


def test_a_hard_linked_audit_file_is_never_appended_to(state: Path, tmp_path: Path, clock: FakeClock) -> None:
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(b'{"event":"theirs"}\n')
    os.link(elsewhere, state / AUDIT_FILE)
    errors: list[str] = []
    audit = AuditLog(state / AUDIT_FILE, clock, on_error=errors.append)
    audit.open()
    assert audit.record("kill.triggered") is True
    assert elsewhere.read_bytes() == b'{"event":"theirs"}\n'
    assert [r.event for r in read_audit(state / AUDIT_FILE)] == ["kill.triggered"]
    assert "2 hard links" in errors[0]


def test_read_audit_refuses_a_fifo_and_reads_only_the_tail_of_a_huge_file(state: Path) -> None:
    os.mkfifo(state / AUDIT_FILE)
    with pytest.raises(StateError, match="not a regular file"):
        _in_thread(lambda: read_audit(state / AUDIT_FILE))
    (state / AUDIT_FILE).unlink()
    lines = b"".join(b'{"event":"e%d","ts":%d}\n' % (n, n) for n in range(1000))
    (state / AUDIT_FILE).write_bytes(lines)
    tail = read_audit(state / AUDIT_FILE, limit=200)
    assert 0 < len(tail) < 20 and tail[-1].event == "e999"


def test_a_fifo_pid_file_never_blocks_the_cli(state: Path, clock: FakeClock) -> None:
    os.mkfifo(state / PID_FILE)
    with pytest.raises(StateError, match="not a regular file"):
        _in_thread(lambda: StateStore(state, clock).read_pid())
    with pytest.raises(StateError, match="not a regular file"):  # the pid file is the lock: refused
        _in_thread(lambda: StateStore(state, clock).write_pid(1234))


# ---------------------------------------------------------------------- the policy for the rest
def _plant(state: Path, tmp_path: Path, name: str, how: str) -> None:
    path = state / name
    if how == "fifo":
        os.mkfifo(path)
    elif how == "symlink":
        path.symlink_to(_victim(tmp_path))
    elif how == "mode 666":
        path.write_text("{}")
        path.chmod(0o666)
    elif how == "too large":
        with open(path, "wb") as f:
            f.truncate(MAX_STATE_FILE + 1)
    else:
        path.write_text("{ not json")


@pytest.mark.parametrize("how", ["fifo", "symlink", "mode 666", "too large", "not json"])
def test_an_unusable_baseline_is_set_aside_and_read_as_none(
    state: Path, tmp_path: Path, clock: FakeClock, how: str
) -> None:
    _plant(state, tmp_path, BASELINE_FILE, how)
    store = StateStore(state, clock)
    assert _in_thread(store.baseline) == {}  # never raises: a cache never blocks a start
    assert not os.path.lexists(state / BASELINE_FILE)
    assert [p.name for p in state.iterdir() if p.name.startswith(f"{BASELINE_FILE}.damaged")]
    assert len(store.problems) == 1 and "moved aside to" in store.problems[0]
    store.save_baseline({"day_highs": []})
    assert StateStore(state, clock).baseline() == {"day_highs": []}


@pytest.mark.parametrize("how", ["fifo", "symlink", "mode 666", "too large"])
def test_an_unusable_latch_or_pending_kill_reads_fail_safe(
    state: Path, tmp_path: Path, clock: FakeClock, how: str
) -> None:
    _plant(state, tmp_path, LATCH_FILE, how)
    _plant(state, tmp_path, PENDING_FILE, how)
    store = StateStore(state, clock)
    assert _in_thread(store.latch).state is TradingState.TRIPPED
    assert _in_thread(store.pending_kill) is not None
    assert len(store.problems) == 2


def test_the_directory_reader_refuses_before_reading(state: Path) -> None:
    with open(state / "big.json", "wb") as f:
        f.truncate(1000)
    d = StateDirectory(state)
    with pytest.raises(UnsafeFile, match="larger than 100 bytes"):
        d.read("big.json", 100)
    assert d.read("big.json", 100, tail=True) == b"\0" * 100
    assert d.read("missing.json") is None
    d.close()
