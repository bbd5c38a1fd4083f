"""`ibkr-watchdog status`: what the watchdog knows now, each value with its age, and an exit code for scripts.

`status.json` is the daemon's last word, not the present: with the daemon dead it says
"NOT RUNNING — last seen at …"; the position and order counts are each shown with the age of their
last *successful* read ("no data yet" when there was none): the daemon rewrites the file and stamps
its snapshot every cycle, with the gateway down too, so neither time says anything about the data.

Exit codes (documented in README "In an incident"):
  0 running and ARMED; 1 running but TRIPPED or a kill pending (a person must look);
  2 bad arguments; 3 not running, or running but silent for more than `SILENT_AFTER` seconds.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from watchdog.daemon.kill_status import kill_lines
from watchdog.errors import StateError
from watchdog.model import TradingState
from watchdog.state.audit import to_jsonable
from watchdog.state.pidfile import find_daemon
from watchdog.state.store import StateStore

EXIT_ARMED, EXIT_TRIPPED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3
SILENT_AFTER = 30.0  # seconds without a status.json rewrite before a live daemon counts as silent


def _age(now: float, then: Any) -> float | None:
    return now - then if isinstance(then, int | float) else None


def status_data(state_dir: Path, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Everything `status` shows, as plain JSON values (ages in seconds); unreadable parts say why."""
    store = StateStore(state_dir, clock)
    now = clock()
    data: dict[str, Any] = {"state_dir": str(state_dir), "now": now}
    try:
        found = find_daemon(state_dir)
        data["daemon_pid"] = found.pid
        if found.problem:
            data["daemon_error"] = found.problem
    except StateError as exc:
        data["daemon_pid"], data["daemon_error"] = None, str(exc)
    data["latch"] = to_jsonable(store.latch())
    data["pending_kill"] = to_jsonable(store.pending_kill())
    for key, read in (("last_kill", store.last_kill), ("status", store.read_status)):
        try:
            data[key] = read()
        except StateError as exc:
            data[key] = {"error": str(exc)}
    status: dict[str, Any] = data["status"] if isinstance(data["status"], dict) else {}
    gw = status.get("gateway")
    gateway: dict[str, Any] = gw if isinstance(gw, dict) else {}
    data["status_age_seconds"] = _age(now, status.get("updated"))
    data["snapshot_age_seconds"] = _age(now, status.get("snapshot_taken_at"))
    for kind in ("positions", "orders"):
        # a status.json from before these keys: the snapshot's time is all there is
        read_at = status.get(f"{kind}_as_of", status.get("snapshot_taken_at"))
        data[f"{kind}_age_seconds"] = _age(now, read_at)
    data["heartbeat_age_seconds"] = _age(now, gateway.get("last_heartbeat"))
    data["gateway_down_seconds"] = _age(now, gateway.get("down_since"))
    data["problems"] = list(store.problems)
    data["running"] = data["daemon_pid"] is not None
    age = data["status_age_seconds"]
    data["silent"] = data["running"] and (age is None or age > SILENT_AFTER)
    tripped = data["latch"]["state"] == TradingState.TRIPPED.value or data["pending_kill"] is not None
    if not data["running"] or data["silent"]:
        data["exit_code"] = EXIT_NOT_RUNNING
    else:
        data["exit_code"] = EXIT_TRIPPED if tripped else EXIT_ARMED
    return data


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f}s"
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def _count(n: Any, what: str, age: float | None) -> str:
    """'3 positions read 2m ago', or 'positions: no data yet' when never read successfully."""
    return (
        f"{what}: no data yet"
        if age is None
        else f"{n if n is not None else '?'} {what} read {fmt_age(age)} ago"
    )


def fmt_time(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def status_lines(data: dict[str, Any]) -> list[str]:
    latch, last = data["latch"], data["last_kill"]
    status = data["status"] if isinstance(data["status"], dict) else {}
    pid, age = data["daemon_pid"], data["status_age_seconds"]
    if pid is not None and not data["silent"]:
        lines = [f"daemon:    running, pid {pid} ({data['state_dir']}); status written {fmt_age(age)} ago"]
        seen = ""
    elif pid is not None:
        lines = [
            f"daemon:    RUNNING BUT SILENT, pid {pid}: status not written for {fmt_age(age)} "
            f"(last at {fmt_time(status.get('updated'))}); check `journalctl -u ibkr-watchdog`"
        ]
        seen = " (as last seen)"
    else:
        when = f"last seen at {fmt_time(status.get('updated'))} ({fmt_age(age)} ago)" if age else "no record"
        lines = [f"daemon:    NOT RUNNING — {when} ({data['state_dir']}); nothing is watched"]
        seen = " (as last seen)"
    if data.get("daemon_error"):
        lines.append(f"PROBLEM:   {data['daemon_error']}")
    state = str(latch["state"]).upper()
    if latch["state"] == TradingState.TRIPPED.value:
        state += f" by {latch['trigger']} ({latch['action']}) at {fmt_time(latch['tripped_at'])}"
        state += f": {latch['reason']}" if latch["reason"] else ""
        state += "  [latch file damaged: reset after checking the account]" if latch["corrupted"] else ""
    lines.append(f"latch:     {state}")
    lines += kill_lines(data)  # KILL RUNNING (the pending file is crash insurance) or really PENDING
    if status and "error" not in status:
        gw = status.get("gateway") or {}
        health = gw.get("health", "?")
        down = data["gateway_down_seconds"]
        hb = data["heartbeat_age_seconds"]
        text = f"gateway:   {health}{seen}, {'connected' if gw.get('connected') else 'NOT connected'}"
        text += f"; last heartbeat answer {fmt_age(hb)} ago" if hb is not None else ""
        text += f"; down since {fmt_time(gw.get('down_since'))} ({fmt_age(down)})" if down is not None else ""
        lines.append(text)
        lines.append(
            f"book:      {_count(status.get('positions'), 'positions', data['positions_age_seconds'])}, "
            f"{_count(status.get('open_orders'), 'working orders', data['orders_age_seconds'])}{seen}"
        )
    elif data["status"]:
        lines.append(f"status:    {data['status']['error']}")
    if isinstance(last, dict) and "error" not in last:
        lines.append(
            f"last kill: {last.get('kill_id', '?')} {last.get('action')} by {last.get('trigger')} → "
            f"{last.get('outcome')}{' (dry run)' if last.get('dry_run') else ''} at "
            f"{fmt_time(last.get('finished'))} (details: `ibkr-watchdog report`)"
        )
        lines += [
            f"  still open: {x}"
            for x in [*last.get("remaining_orders", []), *last.get("remaining_positions", [])]
        ]
    lines += [f"PROBLEM:   {p}" for p in data["problems"]]
    return lines


def show_status(
    state_dir: Path, *, as_json: bool, out: TextIO | None = None, clock: Callable[[], float] = time.time
) -> int:
    out = out or sys.stdout
    data = status_data(state_dir, clock)
    if as_json:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        out.write("\n".join(status_lines(data)) + "\n")
    return int(data["exit_code"])
