"""Summaries written to the state directory for people: the last kill and the daemon's status."""

from __future__ import annotations

from typing import Any

from watchdog.model import KillReport, OpenOrder, Snapshot


def report_summary(report: KillReport) -> dict[str, Any]:
    """The last-kill record: what `status` shows and the notifier can quote."""
    return {
        "kill_id": report.kill_id,
        "trigger": report.trigger,
        "action": report.action.value,
        "accounts": list(report.accounts),
        "started": report.started,
        "finished": report.finished,
        "outcome": report.outcome.value,
        "dry_run": report.dry_run,
        "attempts": report.attempts,
        "cancelled_orders": len(report.cancelled_orders),
        "close_orders": len(report.close_orders),
        "remaining_orders": [_order_text(o) for o in report.remaining_orders],
        "remaining_positions": [
            f"{p.account} {p.quantity:g} {p.contract.label}" for p in report.remaining_positions
        ],
        "reason": report.reason,
    }


def _order_text(o: OpenOrder) -> str:
    who = f"client {o.client_id}, order {o.order_id}" + (f", ref {o.order_ref}" if o.order_ref else "")
    return f"{o.account} {o.action} {o.remaining:g} {o.contract.label} [{o.state_label}] ({who})"


def status_from_snapshot(snapshot: Snapshot, now: float) -> dict[str, Any]:
    """A ready-made `status.json` body for the daemon (it may add keys; `status` prints known ones)."""
    gw = snapshot.gateway
    return {
        "updated": now,
        "snapshot_taken_at": snapshot.taken_at,  # stamped every cycle, read or not: says nothing of the data
        # the last successful read of each kind (None: none yet); `status` shows these ages
        "positions_as_of": snapshot.positions_as_of,
        "orders_as_of": snapshot.orders_as_of,
        "gateway": {
            "health": gw.health.value,
            "connected": gw.connected,
            "last_heartbeat": gw.last_heartbeat,
            "heartbeat_rtt": gw.heartbeat_rtt,
            "down_since": gw.down_since,
        },
        "accounts": sorted(snapshot.accounts),
        "positions": len(snapshot.positions),
        "open_orders": len(snapshot.open_orders),
    }
