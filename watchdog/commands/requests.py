"""What `kill` and `reset` share: who asks, the verified daemon pid, request files the daemon can read.

Run as root, the CLI hands every file it writes in the state dir to the directory's owner (the
service user), so root's `kill` never leaves a request or latch file the daemon cannot read. Run as
a user who can neither write there nor signal the daemon, it says so in one line and names the user
to run it as.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from watchdog.errors import StateError
from watchdog.state.pidfile import DaemonLookup, find_daemon, verify_pid
from watchdog.state.store import REQUESTS_DIR, StateStore


def who() -> str:
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {name})" if sudo and sudo != name else name


def owner_name(path: Path) -> str:
    try:
        uid = path.stat().st_uid
    except OSError:
        return "the daemon's user"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def target_pid(state_dir: Path | None, pid: int | None) -> DaemonLookup:
    """The daemon to signal: `--pid` verified against the state dir's lock, or the one found there."""
    if pid is not None:
        problem = verify_pid(pid, state_dir)
        return DaemonLookup(None if problem else pid, problem)
    if state_dir is None:
        return DaemonLookup(None, "no state dir known: pass --state-dir DIR or --pid PID")
    try:
        return find_daemon(state_dir)
    except StateError as exc:
        return DaemonLookup(None, str(exc))


def hand_over(state_dir: Path, *paths: Path) -> None:
    """As root: give what we wrote (and the requests dir) to the state dir's owner, so the daemon reads it."""
    if os.geteuid() != 0:
        return
    try:
        st = state_dir.stat()
    except OSError:
        return
    for p in (state_dir / REQUESTS_DIR, *paths):
        with contextlib.suppress(OSError):
            if p.exists() and (p.stat().st_uid, p.stat().st_gid) != (st.st_uid, st.st_gid):
                os.chown(p, st.st_uid, st.st_gid)


def queue_request(state_dir: Path, kind: str, payload: Mapping[str, Any]) -> tuple[Path | None, str]:
    """Write a request file for the daemon: (its path, '') or (None, why it could not be written)."""
    store = StateStore(state_dir, time.time)
    try:
        path = store.put_request(kind, payload)
    except StateError as exc:
        return None, str(exc)
    hand_over(state_dir, path)
    return path, ""


def send_signal(pid: int, sig: signal.Signals, state_dir: Path | None) -> str:
    """'' when sent, else why not (one line, with the user to run as)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return f"no process with pid {pid}"
    except PermissionError:
        user = owner_name(state_dir) if state_dir is not None else "the daemon's user"
        whom = "root (sudo)" if user == "root" else f"{user} (sudo -u {user}) or root (sudo)"
        return f"not allowed to signal pid {pid}: run it as {whom}"
    return ""


def wait_until(
    done: Callable[[], bool], timeout: float, sleep: Callable[[float], None] = time.sleep, step: float = 0.1
) -> bool:
    """Poll another process's files until `done()` or `timeout` seconds passed; whether it became true."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        sleep(step)
    return True
