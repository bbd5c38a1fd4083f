"""State files: never opened through a link, refused in a directory others can write, written without
free descriptors (issue 15, items 1 and 2)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.kill.fakes import FakeClock
from watchdog.errors import StateError
from watchdog.model import Action, TradingState
from watchdog.state.audit import AuditLog, read_audit
from watchdog.state.files import unsafe_reason
from watchdog.state.store import AUDIT_FILE, LATCH_FILE, PID_FILE, Latch, StateStore

REPO = Path(__file__).resolve().parents[2]
TRIPPED = Latch(state=TradingState.TRIPPED, action=Action.CANCEL_ALL, trigger="manual:test", kill_id="K1")


def _victim(tmp_path: Path) -> tuple[Path, bytes]:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    return victim, b"precious\n"


def test_a_symlinked_pid_file_is_refused_and_its_target_untouched(tmp_path: Path, clock: FakeClock) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    victim, content = _victim(tmp_path)
    (state / PID_FILE).symlink_to(victim)
    store = StateStore(state, clock)
    with pytest.raises(StateError, match=r"watchdog.pid: it is a symbolic link; refused"):
        store.write_pid(1234)
    assert victim.read_bytes() == content
    with pytest.raises(StateError, match="symbolic link"):  # reading never goes through the link either
        store.read_pid()


def test_a_symlinked_audit_file_is_set_aside_and_its_target_untouched(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    victim, content = _victim(tmp_path)
    (state / AUDIT_FILE).symlink_to(victim)
    errors: list[str] = []
    audit = AuditLog(state / AUDIT_FILE, clock, on_error=errors.append)
    audit.open()  # never blocks a start: the link is moved out of the way, a fresh log begins
    assert audit.record("kill.triggered", {"x": 1}) is True
    assert victim.read_bytes() == content
    assert not (state / AUDIT_FILE).is_symlink()
    assert [r.event for r in read_audit(state / AUDIT_FILE)] == ["kill.triggered"]
    (aside,) = [p for p in state.iterdir() if p.name.startswith("audit.jsonl.damaged")]
    assert aside.is_symlink()
    assert len(errors) == 1 and "symbolic link" in errors[0] and "a fresh log is started" in errors[0]


def test_a_symlinked_latch_is_replaced_not_followed_and_reads_as_tripped(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    victim, content = _victim(tmp_path)
    (state / LATCH_FILE).symlink_to(victim)
    assert StateStore(state, clock).latch().state is TradingState.TRIPPED  # fail-safe, never ARMED
    StateStore(state, clock).save_latch(TRIPPED)
    assert victim.read_bytes() == content
    assert not (state / LATCH_FILE).is_symlink()
    assert StateStore(state, clock).latch().kill_id == "K1"


@pytest.mark.parametrize("mode", [0o770, 0o757, 0o777])
def test_a_state_directory_others_can_write_is_refused_in_one_line(
    tmp_path: Path, clock: FakeClock, mode: int
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    with pytest.raises(StateError) as info:
        StateStore(state, clock).write_pid(1234)
    assert str(info.value) == (
        f"refusing state directory {state}: state directory is writable by group or others "
        f"(mode {mode:o}); chmod go-w it (0750 is right)"
    )
    assert not (state / PID_FILE).exists()


def test_a_state_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    theirs = os.stat_result((stat.S_IFDIR | 0o750, 0, 0, 2, 4242, 4242, 0, 0, 0, 0))
    assert unsafe_reason(theirs, "state directory", uid=1000) == (
        "state directory is owned by uid 4242, not by this process (uid 1000); "
        "chown it to the user the watchdog runs as"
    )
    # root's own and root running the CLI against the service user's directory are fine
    assert unsafe_reason(os.stat_result((stat.S_IFDIR | 0o750, 0, 0, 2, 0, 0, 0, 0, 0, 0)), "d", 1000) == ""
    assert unsafe_reason(theirs, "state directory", uid=0) == ""
    assert unsafe_reason(st, "d") == ""


# A real process: the descriptor limit lowered to 64, every free descriptor taken, then the writes a
# kill makes (latch, pending kill, audit records, a cleared pending, a re-armed latch) — twice over.
_EXHAUSTED = textwrap.dedent(
    """
    import json, os, resource, sys, time
    from pathlib import Path
    from watchdog.model import Action, TradingState
    from watchdog.state.audit import AuditLog
    from watchdog.state.store import Latch, PendingKill, StateStore

    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    state = Path(sys.argv[1])
    store = StateStore(state, time.time)
    store.write_pid()
    audit = AuditLog(store.audit_path, time.time)
    audit.open()
    hogs = []
    try:
        while True:
            hogs.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        exhausted = exc.strerror
    ok = []
    for n in range(2):
        pending = PendingKill(kill_id=f"K{n}", action=Action.CANCEL_ALL, trigger="manual:SIGUSR2")
        store.save_pending(pending)
        store.save_latch(Latch(state=TradingState.TRIPPED, action=Action.CANCEL_ALL, kill_id=f"K{n}"))
        ok.append(audit.record("kill.triggered", {"n": n}, kill_id=f"K{n}"))
        ok.append(audit.record("kill.pending", {"n": n}, kill_id=f"K{n}"))
        store.sync()
    try:
        os.open(os.devnull, os.O_RDONLY)
        still = "a descriptor was free"
    except OSError as exc:
        still = exc.strerror
    print(json.dumps({"exhausted": exhausted, "still": still, "ok": ok, "problems": store.problems}))
    """
)


def test_a_kills_durable_writes_need_no_free_descriptor(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-c", _EXHAUSTED, str(state)],
        capture_output=True, text=True, timeout=30, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["exhausted"] == "Too many open files"
    assert result["still"] == "Too many open files"  # the writes ran with no descriptor free
    assert result["ok"] == [True, True, True, True]
    assert result["problems"] == []
    latch = json.loads((state / LATCH_FILE).read_text())
    assert latch["state"] == "tripped" and latch["kill_id"] == "K1"
    assert json.loads((state / "pending-kill.json").read_text())["kill_id"] == "K1"
    assert [r.event for r in read_audit(state / AUDIT_FILE)] == ["kill.triggered", "kill.pending"] * 2
    assert not [p for p in state.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
