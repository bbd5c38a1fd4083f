"""`ibkr-watchdog kill [--cancel-only] [--reason TEXT] [--wait]`: signal the running daemon.

The signal is what fires the kill (SIGUSR1 = close all, SIGUSR2 = cancel only); the request file
in `<state_dir>/requests/` only carries the reason and who asked. So a request file that cannot be
written (a full disk, a directory another user made) never stops the signal: the kill goes out and
the operator is told the reason was not recorded. `--wait` then follows the audit log until that
kill ends and prints its outcome; the exit code says whether it verified flat.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.commands.history import KillStory, kills
from watchdog.commands.kill_report import report_lines
from watchdog.commands.requests import queue_request, send_signal, target_pid, wait_until, who
from watchdog.model import Action
from watchdog.state.audit import read_audit
from watchdog.state.store import AUDIT_FILE

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
WAIT_TIMEOUT = 300.0  # seconds `kill --wait` follows a kill (verify rounds and retries take minutes at most)
SILENT_DAEMON = (
    15.0  # seconds without any record of the kill before `kill --wait` says the daemon may be hung
)


def send_kill(
    state_dir: Path | None,
    *,
    cancel_only: bool,
    reason: str,
    pid: int | None,
    wait: float | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Signal the daemon (verified) after queueing the reason; 0 when sent (and, with `wait`, flat)."""
    found = target_pid(state_dir, pid)
    if found.pid is None:
        why = found.problem or f"no running daemon holds {state_dir} (pass --pid if it uses another)"
        print(f"ibkr-watchdog kill: {why}", file=sys.stderr)
        return EXIT_FAILURE
    target = found.pid
    action = Action.CANCEL_ALL if cancel_only else Action.CLOSE_ALL
    requested = clock()
    path: Path | None = None
    if state_dir is not None:
        payload = {"action": action.value, "reason": reason, "who": who(), "requested_at": requested}
        path, problem = queue_request(state_dir, "kill", payload)
        if path is None:
            print(
                f"ibkr-watchdog kill: warning: {problem}; sending the signal anyway "
                "(the kill is recorded as a manual trigger without your reason)",
                file=sys.stderr,
            )
    sig = signal.SIGUSR2 if cancel_only else signal.SIGUSR1
    problem = send_signal(target, sig, state_dir)
    if problem:
        if path is not None:
            path.unlink(missing_ok=True)
        print(f"ibkr-watchdog kill: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"sent {sig.name} ({action.value}) to ibkr-watchdog pid {target}")
    if wait is None or state_dir is None:
        if wait is not None:
            print("ibkr-watchdog kill: --wait needs the state dir (--state-dir or --config)", file=sys.stderr)
            return EXIT_FAILURE
        print("follow it with `ibkr-watchdog status` or `ibkr-watchdog report`")
        return EXIT_OK
    return wait_for_outcome(state_dir, since=requested, timeout=wait, action=action.value, reason=reason)


def _our_kill(
    state_dir: Path, since: float, action: str | None = None, reason: str = ""
) -> tuple[KillStory, str] | None:
    """The kill our signal started, or was merged or folded into (then also that record's event): the
    first manual trigger at or after `since` with our reason (another operator's kill sent a moment
    before is not ours). Folded into a cancel-only kill while we asked for close_all: the close_all
    that runs after it (queued by the daemon) is the one that answers us."""
    records = read_audit(state_dir / AUDIT_FILE)
    stories = {k.kill_id: k for k in kills(records)}
    after_fold = False
    for r in records:
        if r.ts < since - 0.5 or r.kill_id is None:
            continue
        d = r.details
        manual = str(d.get("trigger", "")).startswith("manual:")
        if r.event not in ("kill.triggered", "kill.merged", "kill.folded") or not manual:
            continue
        if not after_fold and reason and reason not in str(d.get("reason") or ""):
            continue  # someone else's kill
        story = stories.get(r.kill_id, KillStory(r.kill_id))
        if action == "close_all" and story.action == "cancel_all":
            after_fold = True  # it closes nothing: ours is the close_all that follows
            continue
        return story, r.event
    return None


def wait_for_outcome(
    state_dir: Path,
    *,
    since: float,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    action: str | None = None,
    reason: str = "",
) -> int:
    """Follow the audit log until our kill ends — through a pending spell, until it resumes and ends;
    print its timeline. 0 = close_all verified flat, a cancel-only kill with every order verified
    cancelled (positions stay open), or a dry run; else 1."""
    story: list[KillStory] = []
    told: set[str] = set()
    begun = time.monotonic()

    def say(key: str, text: str) -> None:
        if key not in told:
            told.add(key)
            print(text, flush=True)

    def ended() -> bool:
        found = _our_kill(state_dir, since, action, reason)
        if found is None:
            if time.monotonic() - begun > SILENT_DAEMON:
                hint = "is the daemon alive? see `ibkr-watchdog status`"
                say("silent", f"no kill recorded after {SILENT_DAEMON:g}s: {hint}")
            return False
        k, how = found
        story[:] = [k]
        if how != "kill.triggered":
            say("folded", f"folded into kill {k.kill_id} already running; following it")
        end = k.end
        if end is not None and end.event == "kill.pending":
            say(
                f"pending {end.ts}",
                f"kill {k.kill_id} is PENDING: the gateway does not answer ({end.details.get('error', '')}); "
                "following it until it resumes and ends (Ctrl-C stops waiting, not the kill)",
            )
            return False
        return end is not None

    if not wait_until(ended, timeout, sleep):
        pending = story and story[0].outcome == "pending"
        what = (
            f"kill {story[0].kill_id} is still pending (the gateway does not answer)"
            if pending
            else f"kill {story[0].kill_id} has not ended"
            if story
            else "no kill was recorded"
        )
        print(
            f"ibkr-watchdog kill: {what} within {timeout:g}s; see `ibkr-watchdog status` and the audit log",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    k = story[0]
    print("\n".join(report_lines(k)))
    done = k.outcome in ("flat", "dry_run") or k.outcome.startswith("orders cancelled")
    return EXIT_OK if done else EXIT_FAILURE
