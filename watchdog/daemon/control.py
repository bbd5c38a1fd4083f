"""`ibkr-watchdog kill | reset | status`, and the daemon's side of those requests.

The CLI never edits state a running daemon owns. It drops a request file in `<state_dir>/requests/`
(atomic) and signals the daemon found through the locked pid file: SIGUSR1 = close all, SIGUSR2 =
cancel only, SIGHUP for a reset (the daemon's reload handler takes queued requests). With no daemon
running, `reset` re-arms the latch file directly (audited) since nobody else can write it.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from watchdog.errors import ConfigError, ControlError, StateError
from watchdog.kill.switch import KillSwitch, reset_latch
from watchdog.model import Action, TradingState
from watchdog.state.audit import AuditLog, read_audit, to_jsonable
from watchdog.state.schemas import ResetRequestFile, StateDamage, validate
from watchdog.state.store import Latch, StateStore

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
RESET_WAIT = 10.0  # seconds `reset` waits for the daemon to take its request, then for its answer
RESET_VALID = 30.0  # seconds a queued reset request stays valid: it can never re-arm a later trip


@dataclass(frozen=True, slots=True)
class ControlRequest:
    kind: str  # "kill" or "reset"
    action: Action | None
    reason: str
    who: str
    requested_at: float


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}"


def _request(data: dict[str, Any], kind: str) -> ControlRequest:
    action = data.get("action")
    at = data.get("requested_at")
    return ControlRequest(
        kind=kind,
        action=Action(action) if action in {a.value for a in Action} else None,
        reason=str(data.get("reason", "")),
        who=str(data.get("who", "")),
        requested_at=float(at) if isinstance(at, int | float) else 0.0,
    )


class ControlChannel:
    """The daemon's side: take the requests the CLI queued in the state directory."""

    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    def take_kill_request(self) -> ControlRequest | None:
        """Every queued kill request folded into one (signals can coalesce): strongest action, all reasons."""
        reqs = [_request(d, "kill") for d in self.store.take_requests("kill")]
        if not reqs:
            return None
        close = any(r.action is Action.CLOSE_ALL for r in reqs)
        reason = "; ".join(f"{r.reason} (by {r.who})" if r.who else r.reason for r in reqs if r.reason)
        who = ", ".join(sorted({r.who for r in reqs if r.who}))
        return ControlRequest(
            "kill", Action.CLOSE_ALL if close else Action.CANCEL_ALL, reason, who, reqs[-1].requested_at
        )

    def process_requests(self, killswitch: KillSwitch) -> int:
        """Apply queued resets (call on SIGHUP and at start). Returns how many re-armed the watchdog.

        A request applies only to the trip it was made for and only until it expires; it is refused
        (audited with its request id, which the CLI reads back) while a kill runs or is pending."""
        done = 0
        for data in self.store.take_requests("reset"):
            try:
                req = validate(ResetRequestFile, data, "reset request")
            except StateDamage as exc:
                killswitch.audit.record("reset.refused", {"why": str(exc), "request_id": ""})
                continue
            why = _refusal(req, killswitch.store.latch(), self._clock())
            if why is None:
                try:
                    killswitch.reset(
                        req.reason, who=req.who or "cli",
                        discard_pending=req.discard_pending, request_id=req.request_id,
                    )  # fmt: skip
                    done += 1
                    continue
                except (ControlError, StateError) as exc:
                    why = str(exc)
            details = {"who": req.who, "reason": req.reason, "why": why, "request_id": req.request_id}
            killswitch.audit.record("reset.refused", details)
        return done


def _refusal(req: ResetRequestFile, latch: Latch, now: float) -> str | None:
    """Why a queued reset must not apply now, or None."""
    if now > req.expires_at:
        valid = req.expires_at - req.requested_at
        return f"expired: made {now - req.requested_at:.0f}s ago, valid for {valid:g}s"
    if latch.state is TradingState.ARMED:
        return "nothing to reset: the watchdog is ARMED"
    if (latch.kill_id, latch.tripped_at) != (req.kill_id, req.tripped_at):
        return (
            f"made for another trip (kill {req.kill_id or '?'}); the watchdog has tripped again since "
            f"(kill {latch.kill_id or '?'}): check the account and reset again"
        )
    return None


# ---------------------------------------------------------------------- CLI
def _state_dir(config_path: str) -> Path:
    from watchdog.config.load import load_config  # written by another module; imported when used

    return Path(load_config(config_path).state_dir)


def _with_state_dir(config_path: str, fn: Callable[[Path], int]) -> int:
    try:
        state_dir = _state_dir(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{config_path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return fn(state_dir)
    except StateError as exc:
        print(f"ibkr-watchdog: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def kill_command(config_path: str, *, cancel_only: bool, reason: str, pid: int | None) -> int:
    return _with_state_dir(
        config_path, lambda d: send_kill(d, cancel_only=cancel_only, reason=reason, pid=pid)
    )


def reset_command(config_path: str, *, reason: str, pid: int | None, discard_pending: bool = False) -> int:
    return _with_state_dir(
        config_path, lambda d: send_reset(d, reason=reason, pid=pid, discard_pending=discard_pending)
    )


def status_command(config_path: str, *, as_json: bool) -> int:
    return _with_state_dir(config_path, lambda d: show_status(d, as_json=as_json))


def _signal(pid: int, sig: signal.Signals) -> str | None:
    """None when sent, else why not."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return f"no process with pid {pid}"
    except PermissionError:
        return f"not allowed to signal pid {pid}: run as the daemon's user or root"
    return None


def send_kill(
    state_dir: Path,
    *,
    cancel_only: bool,
    reason: str,
    pid: int | None,
    clock: Callable[[], float] = time.time,
) -> int:
    store = StateStore(state_dir, clock)
    target = pid if pid is not None else store.read_pid()
    if target is None:
        print(
            f"ibkr-watchdog kill: no running daemon holds {state_dir} (pass --pid if it uses another)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    action = Action.CANCEL_ALL if cancel_only else Action.CLOSE_ALL
    payload = {
        "action": action.value,
        "reason": reason,
        "who": _who(),
        "requested_at": clock(),
        "pid": os.getpid(),
    }
    path = store.put_request("kill", payload)
    sig = signal.SIGUSR2 if cancel_only else signal.SIGUSR1
    problem = _signal(target, sig)
    if problem is not None:
        path.unlink(missing_ok=True)
        print(f"ibkr-watchdog kill: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"sent {sig.name} ({action.value}) to ibkr-watchdog pid {target}; see `ibkr-watchdog status`")
    return EXIT_OK


def send_reset(
    state_dir: Path,
    *,
    reason: str,
    pid: int | None,
    clock: Callable[[], float] = time.time,
    wait: float = RESET_WAIT,
    sleep: Callable[[float], None] = time.sleep,
    discard_pending: bool = False,
) -> int:
    """Re-arm. The answer printed is the truth: success only once the daemon audited the reset; a
    request the daemon did not take in time is withdrawn, so it can never apply later."""
    if not reason.strip():
        print("ibkr-watchdog reset: --reason must say why it is safe to trade again", file=sys.stderr)
        return EXIT_USAGE
    store = StateStore(state_dir, clock)
    target = pid if pid is not None else store.read_pid()
    if target is None:
        audit = AuditLog(store.audit_path, clock)
        try:
            reset_latch(store, audit, reason=reason, who=_who(), clock=clock, discard_pending=discard_pending)
        except ControlError as exc:
            print(f"ibkr-watchdog reset: refused: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        print("re-armed: no daemon is running, so the latch file was updated directly (audited)")
        return EXIT_OK
    latch = store.reload_latch()
    if latch.state is TradingState.ARMED:
        print("nothing to reset: the watchdog is ARMED")
        return EXIT_OK
    requested, request_id = clock(), uuid.uuid4().hex
    payload = {
        "request_id": request_id,
        "reason": reason,
        "who": _who(),
        "requested_at": requested,
        "expires_at": requested + RESET_VALID,
        "kill_id": latch.kill_id,
        "tripped_at": latch.tripped_at,
        "discard_pending": discard_pending,
    }
    path = store.put_request("reset", payload)
    problem = _signal(target, signal.SIGHUP)
    if problem is not None:
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
    print(f"re-armed by ibkr-watchdog pid {target}")
    return EXIT_OK


def _answer(store: StateStore, request_id: str) -> tuple[str, str] | None:
    """The daemon's audited answer to one reset request: ("reset", "") or ("reset.refused", why)."""
    for r in read_audit(store.audit_path):
        if r.event in ("reset", "reset.refused") and r.details.get("request_id") == request_id:
            return r.event, str(r.details.get("why", ""))
    return None


def status_data(state_dir: Path, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Everything `status` shows, as plain JSON values; unreadable parts say why instead."""
    store = StateStore(state_dir, clock)
    now = clock()
    data: dict[str, Any] = {"state_dir": str(state_dir), "now": now}
    try:
        data["daemon_pid"] = store.read_pid()
    except StateError as exc:
        data["daemon_pid"], data["daemon_error"] = None, str(exc)
    data["latch"] = to_jsonable(store.latch())
    data["pending_kill"] = to_jsonable(store.pending_kill())
    for key, read in (("last_kill", store.last_kill), ("status", store.read_status)):
        try:
            data[key] = read()
        except StateError as exc:
            data[key] = {"error": str(exc)}
    updated = (data["status"] or {}).get("updated")
    data["status_age_seconds"] = now - updated if isinstance(updated, int | float) else None
    data["problems"] = list(store.problems)
    return data


def show_status(
    state_dir: Path, *, as_json: bool, out: TextIO | None = None, clock: Callable[[], float] = time.time
) -> int:
    out = out or sys.stdout
    data = status_data(state_dir, clock)
    if as_json:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
        return EXIT_OK
    latch, pending, last, status = data["latch"], data["pending_kill"], data["last_kill"], data["status"]
    pid = data["daemon_pid"]
    lines = [f"daemon:   {'running, pid ' + str(pid) if pid else 'not running'} ({state_dir})"]
    state = str(latch["state"]).upper()
    if latch["state"] == TradingState.TRIPPED.value:
        state += f" by {latch['trigger']} ({latch['action']}) at {_ts(latch['tripped_at'])}"
        state += f": {latch['reason']}" if latch["reason"] else ""
        state += "  [latch file damaged: reset after checking the account]" if latch["corrupted"] else ""
    lines.append(f"latch:    {state}")
    if pending:
        lines.append(
            f"PENDING:  {pending['action']} from {pending['trigger']} since {_ts(pending['created_at'])}"
        )
    if isinstance(status, dict) and "error" not in status:
        gw = status.get("gateway") or {}
        age = data["status_age_seconds"]
        lines.append(f"gateway:  {gw.get('health', '?')} (connected: {gw.get('connected', '?')})")
        book = f"{status.get('positions', '?')} positions, {status.get('open_orders', '?')} working orders"
        lines.append(
            f"snapshot: {book}; status written {age:.0f}s ago"
            if age is not None
            else "snapshot: no time recorded"
        )
    elif status:
        lines.append(f"status:   {status['error']}")
    if isinstance(last, dict) and "error" not in last:
        lines.append(
            f"last kill: {last.get('action')} from {last.get('trigger')} → {last.get('outcome')}"
            f"{' (dry run)' if last.get('dry_run') else ''} at {_ts(last.get('finished'))}"
        )
        lines += [
            f"  still open: {x}"
            for x in [*last.get("remaining_orders", []), *last.get("remaining_positions", [])]
        ]
    for p in data["problems"]:
        lines.append(f"PROBLEM:  {p}")
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _ts(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))
