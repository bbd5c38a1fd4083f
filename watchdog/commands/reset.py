"""`ibkr-watchdog reset --reason TEXT [--discard-pending]`: re-arm a tripped watchdog (audited, notified).

With a daemon running, the reset goes through it (request file + SIGHUP): it alone writes the latch
while it runs, and it refuses while a kill runs or is pending. A request names the trip it was made
for and expires after `RESET_VALID` seconds, so it can never re-arm a later trip; one the daemon
does not take in time is withdrawn. The answer printed is the daemon's audited answer. With none
running, the latch file is re-armed directly; run as root, the files written are handed to the
state dir's owner so the daemon can read them at its next start.
"""

from __future__ import annotations

import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from watchdog.commands.requests import hand_over, queue_request, send_signal, target_pid, who
from watchdog.errors import ControlError, StateError
from watchdog.kill.latch import reset_latch
from watchdog.model import TradingState
from watchdog.state.audit import AuditLog, read_audit
from watchdog.state.store import LATCH_FILE, PENDING_FILE, StateStore

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
RESET_WAIT = 10.0  # seconds `reset` waits for the daemon to take its request, then for its answer
RESET_VALID = 30.0  # seconds a queued reset request stays valid: it can never re-arm a later trip


def send_reset(
    state_dir: Path | None,
    *,
    reason: str,
    pid: int | None,
    clock: Callable[[], float] = time.time,
    wait: float = RESET_WAIT,
    sleep: Callable[[float], None] = time.sleep,
    discard_pending: bool = False,
) -> int:
    if not reason.strip():
        print("ibkr-watchdog reset: --reason must say why it is safe to trade again", file=sys.stderr)
        return EXIT_USAGE
    if state_dir is None:
        print("ibkr-watchdog reset: needs the state dir: pass --state-dir DIR (or --config)", file=sys.stderr)
        return EXIT_USAGE
    store = StateStore(state_dir, clock)
    found = target_pid(state_dir, pid)
    if found.pid is None and found.problem:
        print(f"ibkr-watchdog reset: {found.problem}", file=sys.stderr)
        return EXIT_FAILURE
    if found.pid is None:
        audit = AuditLog(store.audit_path, clock)
        try:
            reset_latch(store, audit, reason=reason, who=who(), clock=clock, discard_pending=discard_pending)
        except ControlError as exc:
            print(f"ibkr-watchdog reset: refused: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        except StateError as exc:
            print(f"ibkr-watchdog reset: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        hand_over(state_dir, state_dir / LATCH_FILE, state_dir / PENDING_FILE, store.audit_path)
        print(f"re-armed (no daemon runs on {state_dir}, so the latch file was updated directly; audited)")
        return EXIT_OK
    return _through_the_daemon(
        store, found.pid, reason=reason, clock=clock, wait=wait, sleep=sleep, discard_pending=discard_pending
    )


def _through_the_daemon(
    store: StateStore,
    target: int,
    *,
    reason: str,
    clock: Callable[[], float],
    wait: float,
    sleep: Callable[[float], None],
    discard_pending: bool,
) -> int:
    latch = store.reload_latch()
    if latch.state is TradingState.ARMED:
        print("nothing to reset: the watchdog is ARMED")
        return EXIT_OK
    requested, request_id = clock(), uuid.uuid4().hex
    payload = {
        "request_id": request_id,
        "reason": reason,
        "who": who(),
        "requested_at": requested,
        "expires_at": requested + RESET_VALID,
        "kill_id": latch.kill_id,
        "tripped_at": latch.tripped_at,
        "discard_pending": discard_pending,
    }
    path, problem = queue_request(store.dir, "reset", payload)
    if path is None:
        # unlike a kill, a reset without its request means nothing to the daemon: refuse plainly
        print(f"ibkr-watchdog reset: {problem}; run it as root or the daemon's user", file=sys.stderr)
        return EXIT_FAILURE
    problem = send_signal(target, signal.SIGHUP, store.dir)
    if problem:
        path.unlink(missing_ok=True)
        print(f"ibkr-watchdog reset: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    waited = 0.0
    while path.exists() and waited < wait:  # the daemon removes the file when it takes the request
        sleep(0.1)
        waited += 0.1
    try:
        path.unlink()  # not taken in time: withdrawn, so it can never apply later
    except FileNotFoundError:
        pass  # taken: its answer is in the audit log
    else:
        print(
            f"ibkr-watchdog reset: pid {target} did not take the request in {wait:g}s; "
            "withdrawn (it will not apply later): nothing changed",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    waited = 0.0
    while (answer := _answer(store, request_id)) is None and waited < wait:
        sleep(0.1)
        waited += 0.1
    if answer is None:
        print("ibkr-watchdog reset: the daemon took the request but did not answer; see the audit log")
        return EXIT_FAILURE
    if answer[0] != "reset":
        print(f"ibkr-watchdog reset: refused: {answer[1]}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"re-armed: ibkr-watchdog pid {target} took the reset; rules can fire kills again")
    return EXIT_OK


def _answer(store: StateStore, request_id: str) -> tuple[str, str] | None:
    """The daemon's audited answer to one reset request: ("reset", "") or ("reset.refused", why)."""
    for r in read_audit(store.audit_path):
        if r.event in ("reset", "reset.refused") and r.details.get("request_id") == request_id:
            return r.event, str(r.details.get("why", ""))
    return None
