"""What `status` says about a kill in progress: running, really pending, or handed over.

The pending-kill file exists during *every* kill (crash insurance: a kill that dies with the process
resumes at start), so its presence alone does not mean "waiting for the gateway". The running daemon
writes the kill it is running into status.json (`KillSwitch.progress`, key "kill"); `status` believes
that only while the daemon runs and the file is fresh.
"""

from __future__ import annotations

import time
from typing import Any

FRESH = 10.0  # seconds: an older status.json no longer tells whether a kill is running


def kill_lines(data: dict[str, Any]) -> list[str]:
    """Lines for `status` from `control.status_data`: KILL RUNNING (since, attempt, live orders by id
    with their state) or PENDING with the reason it waits; nothing when neither."""
    pending, status = data.get("pending_kill"), data.get("status")
    running = running_kill(data)
    lines: list[str] = []
    if running is not None:
        lines.append(
            f"KILL RUNNING: {running.get('action')} from {running.get('trigger')} "
            f"(kill {running.get('kill_id')}, since {_ts(running.get('since'))}, "
            f"attempt {running.get('attempt')})" + (" [dry run]" if running.get("dry_run") else "")
        )
        live = running.get("live_orders") or []
        lines += [f"  live order: {label}" for label in live] or ["  live orders: none in scope"]
    elif isinstance(pending, dict):
        if not data.get("daemon_pid"):
            why = "interrupted by a stop" if pending.get("interrupted") == "stop" else "not run yet"
            where = f"{why}; the daemon is not running: it runs at the next start"
        elif isinstance(status, dict) and isinstance(status.get("gateway"), dict):
            health = status["gateway"].get("health", "?")
            where = (  # healthy: the kill starts now (status.json is at most a second old)
                "gateway healthy: starting"
                if health == "healthy"
                else f"gateway unusable ({health}): it runs once the gateway is usable again"
            )
        else:
            where = "waiting for the daemon to run it"
        lines.append(
            f"PENDING ({where}): {pending.get('action')} from {pending.get('trigger')} "
            f"since {_ts(pending.get('created_at'))}"
        )
    return lines


def running_kill(data: dict[str, Any]) -> dict[str, Any] | None:
    """The kill the running daemon reports in a fresh status.json (`status_data`), else None."""
    status = data.get("status")
    if not data.get("daemon_pid") or not isinstance(status, dict):
        return None
    age = data.get("status_age_seconds")
    kill = status.get("kill")
    if not isinstance(kill, dict) or not isinstance(age, int | float) or age > FRESH:
        return None
    last = data.get("last_kill")
    if isinstance(last, dict) and last.get("finished") and last.get("kill_id") == kill.get("kill_id"):
        return None  # it ended after status.json was written (rewritten at most once a second)
    return kill


def _ts(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
