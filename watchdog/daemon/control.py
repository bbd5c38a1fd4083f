"""The daemon's side of `ibkr-watchdog kill | reset` (the CLI side is `watchdog.commands`).

The CLI never edits state a running daemon owns. It drops a request file in `<state_dir>/requests/`
(atomic) and signals the daemon found through its lock on the state dir: SIGUSR1 = close all,
SIGUSR2 = cancel only, SIGHUP for a reset (the daemon's reload handler takes queued requests). The
signal alone fires a kill; the request only adds the reason and who asked. A kill request older than
`KILL_REQUEST_MAX_AGE` is a leftover (its signal never came, or came long ago) and is discarded,
audited, rather than lending its reason to a later kill. The daemon creates
`requests/` itself at start, so it is owned by the service user and not by whoever ran the CLI first.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.errors import ControlError, StateError
from watchdog.kill.switch import KillSwitch
from watchdog.model import Action, TradingState
from watchdog.state.audit import AuditLog
from watchdog.state.schemas import ResetRequestFile, StateDamage, validate
from watchdog.state.store import REQUESTS_DIR, Latch, StateStore

KILL_REQUEST_MAX_AGE = 60.0  # seconds: the CLI writes its request just before it signals


@dataclass(frozen=True, slots=True)
class ControlRequest:
    kind: str  # "kill" or "reset"
    action: Action | None
    reason: str
    who: str
    requested_at: float


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

    def __init__(
        self, store: StateStore, clock: Callable[[], float] = time.time, audit: AuditLog | None = None
    ) -> None:
        self.store = store
        self._clock = clock
        self._audit = audit

    def take_kill_request(self, action: Action | None = None) -> ControlRequest | None:
        """Every fresh queued kill request folded into one (signals can coalesce): strongest action; the
        reasons of the requests matching the signal's `action` first, the others' after, marked.

        Requests older than KILL_REQUEST_MAX_AGE seconds are discarded (audited `kill.request_discarded`)."""
        now = self._clock()
        reqs: list[ControlRequest] = []
        for r in (_request(d, "kill") for d in self.store.take_requests("kill")):
            age = now - r.requested_at
            if age > KILL_REQUEST_MAX_AGE:
                if self._audit is not None:
                    details = {
                        "who": r.who, "reason": r.reason, "action": r.action.value if r.action else None,
                        "age_seconds": round(age, 1),
                        "why": f"older than {KILL_REQUEST_MAX_AGE:g}s: a leftover, not this signal's request",
                    }  # fmt: skip
                    self._audit.record("kill.request_discarded", details)
                continue
            reqs.append(r)
        if not reqs:
            return None
        close = any(r.action is Action.CLOSE_ALL for r in reqs)

        def text(r: ControlRequest) -> str:
            return f"{r.reason} (by {r.who})" if r.who else r.reason

        matching = [text(r) for r in reqs if r.reason and (action is None or r.action is action)]
        others = [
            f"{text(r)} [queued as {r.action.value if r.action else '?'}]"
            for r in reqs
            if r.reason and action is not None and r.action is not action
        ]
        reason = "; ".join(matching + others)
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


def prepare_requests_dir(state_dir: Path) -> str:
    """Create `requests/` owned by this process (mode 0750); '' when usable, else what is wrong.

    A directory someone else made (root running the CLI before the daemon ever started) that this
    user cannot write would make every request unreadable or undeletable: said at start, in one line.
    """
    path = state_dir / REQUESTS_DIR
    try:
        path.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {path}: {exc.strerror or exc}"
    if os.access(path, os.R_OK | os.W_OK | os.X_OK):
        return ""
    try:
        owner = pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        owner = "another user"
    try:
        me = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        me = f"uid {os.geteuid()}"
    return (
        f"{path} belongs to {owner} and this daemon ({me}) cannot use it: kill requests lose their "
        f"reason and resets fail; fix it with `chown -R {me}: {path}`"
    )
