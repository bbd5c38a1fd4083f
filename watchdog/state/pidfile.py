"""Who runs on a state directory: the daemon's lock, its pid file, and how the CLI finds and verifies it.

The daemon holds an exclusive `flock` on the state directory itself for as long as it runs. The
directory is never deleted while a daemon uses it, so deleting `watchdog.pid` cannot let a second
daemon start on the same state (the old lock on the pid file could be lost that way). The CLI never
takes that lock, not even briefly: a shared lock taken by `status` made a daemon starting in that
instant exit 2. Instead it reads the lock's holder from `/proc/locks` and the pid file's record
(pid and the process's start time from `/proc/PID/stat`, field 22), and signals a pid only when the
two agree. Only when the pid file is missing (deleted while the daemon runs) does the lock holder
count as the daemon if its command line is `ibkr-watchdog run …`. A pid is never signalled on its
command line alone: `ibkr-watchdog sim` or `journalctl -u ibkr-watchdog -f` hold no state dir's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from watchdog.errors import StateError
from watchdog.state.files import check_file, why

PID_FILE = "watchdog.pid"


@dataclass(frozen=True, slots=True)
class DaemonLookup:
    """`pid` of the daemon running on a state dir (None: none runs); `problem` says why not trusted."""

    pid: int | None
    problem: str = ""


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (`/proc/PID/stat` field 22); None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces or ')': split after the last one
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] is field 3
    except (IndexError, ValueError):
        return None


def process_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def daemon_arguments(pid: int) -> list[str] | None:
    """The arguments after `run` when the process is `ibkr-watchdog run …` / `python -m watchdog run …`.

    None for any other process (`ibkr-watchdog sim`, `journalctl -u ibkr-watchdog -f`, …).
    """
    argv = process_argv(pid)
    for i, (prev, a) in enumerate(itertools.pairwise(argv)):
        program = os.path.basename(prev) == "ibkr-watchdog" or (
            prev == "watchdog" and i > 0 and argv[i - 1] == "-m"
        )
        if program and a == "run":
            return argv[i + 2 :]
    return None


def looks_like_daemon(pid: int) -> bool:
    """Whether the process's command line is `ibkr-watchdog run …` (only ever a second witness)."""
    return daemon_arguments(pid) is not None


def lock_holder(state_dir: Path) -> int | None:
    """The pid holding the daemon's lock on `state_dir` per `/proc/locks`; None when nobody holds it.

    Raises OSError when `/proc/locks` cannot be read (then the pid file's record alone decides).
    """
    st = os.stat(state_dir)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:5349397 0 EOF"; waiters carry a "->" field
        if len(parts) >= 6 and parts[1] == "FLOCK" and "->" not in parts and parts[5] == dev:
            with contextlib.suppress(ValueError):
                return int(parts[4])
    return None


def claim(state_dir: Path, pid: int) -> int:
    """Lock `state_dir` for this daemon and write the pid file; returns the lock's descriptor.

    Raises StateError when another daemon holds the directory or it cannot be written.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StateError(f"cannot write {state_dir / PID_FILE}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        other = None
        with contextlib.suppress(OSError):
            other = lock_holder(state_dir)
        who = f" (pid {other})" if other is not None else ""
        raise StateError(f"another ibkr-watchdog{who} already runs on state dir {state_dir}") from None
    try:
        write_record(state_dir, pid)
    except OSError as exc:
        os.close(fd)
        raise StateError(f"cannot write {state_dir / PID_FILE}: {exc.strerror or exc}") from exc
    return fd


def write_record(state_dir: Path, pid: int) -> None:
    """`PID` on the first line (what systemd and people read), then `start=TICKS` to verify it by."""
    ticks = process_start_ticks(pid)
    text = f"{pid}\n" + (f"start={ticks}\n" if ticks is not None else "")
    tmp = state_dir / f".{PID_FILE}.{os.getpid()}.tmp"
    try:
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, state_dir / PID_FILE)  # whole or not at all: a reader never sees half a pid
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_record(state_dir: Path) -> tuple[int, int | None] | None:
    """(pid, start ticks or None) from the pid file; None when missing or unreadable as a pid."""
    path = state_dir / PID_FILE
    try:
        # never through a link; a FIFO planted there must not block the CLI
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {why(exc)}") from exc
    try:
        check_file(fd, PID_FILE, limit=4096)
        lines = os.read(fd, 256).decode(errors="replace").splitlines()
    except OSError as exc:
        raise StateError(f"cannot read {path}: {why(exc)}") from exc
    finally:
        os.close(fd)
    if not lines or not lines[0].strip().isdigit():
        return None
    ticks = None
    for line in lines[1:]:
        key, _, value = line.partition("=")
        if key == "start" and value.strip().isdigit():
            ticks = int(value)
    return int(lines[0]), ticks


def _record_matches(record: tuple[int, int | None] | None, pid: int) -> bool:
    if record is None or record[0] != pid:
        return False
    # without a recorded start time (a file not written by this daemon) the pid alone proves nothing
    return record[1] is not None and record[1] == process_start_ticks(pid)


def find_daemon(state_dir: Path) -> DaemonLookup:
    """The daemon that runs on `state_dir`, verified; never takes the daemon's lock."""
    record = read_record(state_dir)
    try:
        holder = lock_holder(state_dir)
    except FileNotFoundError:
        return DaemonLookup(None)  # no state dir: nothing ever ran here
    except OSError:
        # no /proc/locks (unusual kernels): the pid file's record (pid + start time) must hold
        if record is not None and _record_matches(record, record[0]):
            return DaemonLookup(record[0])
        return DaemonLookup(None)
    if holder is None:
        return DaemonLookup(None)  # a pid file nobody's lock backs is stale (daemon killed with -9)
    if _record_matches(record, holder) or (record is None and looks_like_daemon(holder)):
        return DaemonLookup(holder)
    return DaemonLookup(
        None,
        f"pid {holder} holds the lock on {state_dir} but is not an ibkr-watchdog daemon "
        f"({' '.join(process_argv(holder))[:80] or 'command line unreadable'}); refusing to signal it",
    )


def state_dir_of(pid: int) -> Path | None:
    """The state dir daemon `pid` holds its lock on, from its open descriptors (same user or root)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:
            target = Path(os.readlink(fd))
            if target.is_dir() and lock_holder(target) == pid:
                return target
        except OSError:
            continue
    return None


def verify_pid(pid: int, state_dir: Path | None) -> str:
    """'' when `pid` (given with --pid) is verified as the daemon of `state_dir`; else why not (one line).

    Verified means: it holds the lock on `state_dir` and `watchdog.pid` there names it with its start
    time (or, the pid file deleted, it is `ibkr-watchdog run`). Without a state dir nothing is verified.
    """
    if process_start_ticks(pid) is None:
        return f"no process with pid {pid}"
    argv = " ".join(process_argv(pid))[:80] or "command line unreadable"
    if state_dir is None:
        return f"cannot verify that pid {pid} is an ibkr-watchdog daemon ({argv}); pass --state-dir"
    try:
        holder = lock_holder(state_dir)
        record = read_record(state_dir)
    except (OSError, StateError) as exc:
        return f"cannot verify pid {pid} against {state_dir} ({exc}); pass --state-dir"
    if holder is not None and holder != pid:
        return f"pid {pid} is not the daemon of {state_dir} (pid {holder} is); refusing to signal it"
    if holder == pid and (_record_matches(record, pid) or (record is None and looks_like_daemon(pid))):
        return ""
    return f"pid {pid} is not an ibkr-watchdog daemon of {state_dir} ({argv}); refusing to signal it"
