"""The daemon's claim on its state dir, and how the CLI finds and verifies it without touching the lock."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from tests.kill.fakes import FakeClock
from watchdog.errors import StateError
from watchdog.state.pidfile import find_daemon, process_start_ticks, read_record, verify_pid
from watchdog.state.store import StateStore


def test_a_cli_reading_the_pid_never_makes_a_starting_daemon_refuse(tmp_path: Path, clock: FakeClock) -> None:
    """Issue 14 #4: `status` took a shared lock on the pid file; a daemon starting then exited 2."""
    stop = threading.Event()
    reads = 0

    def cli() -> None:
        nonlocal reads
        while not stop.is_set():
            StateStore(tmp_path, clock).read_pid()
            reads += 1

    reader = threading.Thread(target=cli)
    reader.start()
    refused = 0
    try:
        for _ in range(300):
            daemon = StateStore(tmp_path, clock)
            try:
                daemon.write_pid(os.getpid())
            except StateError:
                refused += 1
                continue
            daemon.remove_pid()
    finally:
        stop.set()
        reader.join(10)
    assert reads > 0 and refused == 0


def test_the_pid_file_records_the_start_time_the_cli_checks(tmp_path: Path, clock: FakeClock) -> None:
    daemon = StateStore(tmp_path, clock)
    daemon.write_pid(os.getpid())
    try:
        assert read_record(tmp_path) == (os.getpid(), process_start_ticks(os.getpid()))
        assert find_daemon(tmp_path).pid == os.getpid()
        assert verify_pid(os.getpid(), tmp_path) == ""
        # a recycled pid: same number, another start time
        (tmp_path / "watchdog.pid").write_text(f"{os.getpid()}\nstart=1\n")
        assert find_daemon(tmp_path).pid is None
        assert "not an ibkr-watchdog daemon" in verify_pid(os.getpid(), tmp_path)
    finally:
        daemon.remove_pid()
    assert find_daemon(tmp_path).pid is None


def test_an_explicit_pid_must_be_the_daemon_of_the_state_dir(tmp_path: Path, clock: FakeClock) -> None:
    assert verify_pid(2**22 + 12345, None) == f"no process with pid {2**22 + 12345}"
    daemon = StateStore(tmp_path, clock)
    daemon.write_pid(os.getpid())
    try:
        assert f"(pid {os.getpid()} is)" in verify_pid(1, tmp_path)
    finally:
        daemon.remove_pid()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it is about files root writes for another user")
def test_root_hands_what_it_writes_to_the_state_dirs_owner(tmp_path: Path) -> None:
    """Issue 14 #2: root's `kill` left requests/ and its files root:root 0640, unreadable to the daemon."""
    from watchdog.commands.requests import queue_request
    from watchdog.commands.reset import send_reset

    nobody = 65534
    os.chown(tmp_path, nobody, nobody)
    path, problem = queue_request(tmp_path, "kill", {"reason": "x"})
    assert path is not None and problem == ""
    assert (path.stat().st_uid, (tmp_path / "requests").stat().st_uid) == (nobody, nobody)
    assert send_reset(tmp_path, reason="flat, checked", pid=None) == 0
    for name in ("latch.json", "audit.jsonl"):
        assert (tmp_path / name).stat().st_uid == nobody, name


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: it runs the CLI as another user")
def test_the_cli_as_another_user_refuses_in_one_line_naming_whom_to_run_as(tmp_path: Path) -> None:
    """Issue 14 #2: another user's `kill` failed with "Permission denied" and no word of what to do."""
    import tempfile

    from watchdog.commands.kill import send_kill

    state = Path(tempfile.mkdtemp(prefix="wd-other-user-"))  # pytest's tmp_path is root-only
    os.chmod(state, 0o755)
    daemon = StateStore(state, FakeClock())
    daemon.write_pid(os.getpid())  # this root process plays the daemon
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code and the pipe
        try:
            sys.stderr = os.fdopen(write_end, "w")  # pytest replaced sys.stderr: write to the pipe
            os.setgid(65534)
            os.setuid(65534)  # nobody: may neither write the state dir nor signal root
            code = send_kill(state, cancel_only=True, reason="x", pid=None)
            sys.stderr.flush()
            os._exit(code)
        except BaseException as exc:
            os.write(2, repr(exc).encode())
            os._exit(99)
    os.close(write_end)
    try:
        _, status = os.waitpid(child, 0)
        err = os.read(read_end, 65536).decode()
    finally:
        os.close(read_end)
        daemon.remove_pid()
        import shutil

        shutil.rmtree(state, ignore_errors=True)
    assert os.waitstatus_to_exitcode(status) == 1, (os.waitstatus_to_exitcode(status), err)
    lines = err.strip().splitlines()
    assert lines[-1] == f"ibkr-watchdog kill: not allowed to signal pid {os.getpid()}: run it as root (sudo)"
    assert "sending the signal anyway" in lines[0]  # requests/ is root's: the reason could not be queued
