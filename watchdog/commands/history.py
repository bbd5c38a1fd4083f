"""`ibkr-watchdog history` (one line per kill) and `report [KILL_ID]` (one kill's timeline) from the audit.

Both only read `audit.jsonl`, so they work with the daemon stopped, with a broken config
(`--state-dir`), and as any user who can read the state dir. Times are printed in UTC with the
date: an incident review compares them with broker statements and other hosts' logs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from watchdog.state.audit import AuditRecord, read_audit
from watchdog.state.store import AUDIT_FILE

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
ENDINGS = ("kill.finished", "kill.escalated", "kill.pending")


@dataclass(slots=True)
class KillStory:
    """Every audit record of one kill, in order, and what they add up to."""

    kill_id: str
    records: list[AuditRecord] = field(default_factory=list)

    @property
    def started(self) -> float:
        return self.records[0].ts

    def first(self, event: str) -> AuditRecord | None:
        return next((r for r in self.records if r.event == event), None)

    def last_of(self, *events: str) -> AuditRecord | None:
        return next((r for r in reversed(self.records) if r.event in events), None)

    @property
    def trigger(self) -> str:
        t = self.first("kill.triggered")
        return str(t.details.get("trigger", "?")) if t else "?"

    @property
    def action(self) -> str:
        t = self.first("kill.triggered")
        return str(t.details.get("action", "?")) if t else "?"

    @property
    def reason(self) -> str:
        t = self.first("kill.triggered")
        return str(t.details.get("reason", "")) if t else ""

    @property
    def later_reasons(self) -> list[str]:
        """Reasons of manual triggers merged or folded into this kill while it ran."""
        return [
            str(r.details.get("reason"))
            for r in self.records
            if r.event in ("kill.merged", "kill.folded") and r.details.get("reason")
        ]

    @property
    def dry_run(self) -> bool:
        t = self.first("kill.triggered")
        return bool(t and t.details.get("dry_run"))

    @property
    def outcome(self) -> str:
        end = self.last_of(*ENDINGS)
        if end is None:
            return "running (or interrupted)"
        if end.event == "kill.pending":
            return "pending"
        outcome = str(end.details.get("outcome", end.event.removeprefix("kill.")))
        if outcome == "flat" and self.action == "cancel_all":
            # verified: every order cancelled; the positions were never meant to close
            return f"orders cancelled (positions not closed: {end.details.get('positions_open', '?')})"
        return outcome


def damaged(r: AuditRecord) -> bool:
    """A record no kill story can use: no time (it would read as 1970), or a trigger without its fields."""
    if r.ts <= 0:
        return True
    return r.event == "kill.triggered" and not (r.details.get("trigger") and r.details.get("action"))


def kills(records: Sequence[AuditRecord]) -> list[KillStory]:
    """Kills in the order they were triggered (records of one kill may interleave with others); damaged
    records (see `damaged`) are left out: `skipped_note` counts them for the operator."""
    stories: dict[str, KillStory] = {}
    for r in records:
        if r.kill_id is None or damaged(r):
            continue
        if r.event == "kill.triggered" or r.kill_id in stories:
            stories.setdefault(r.kill_id, KillStory(r.kill_id)).records.append(r)
    return list(stories.values())


def skipped_note(records: Sequence[AuditRecord]) -> str:
    n = sum(1 for r in records if r.kill_id is not None and damaged(r))
    return f"({n} damaged audit record{'s' if n != 1 else ''} skipped)" if n else ""


def fmt_ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d} UTC"


def history_line(k: KillStory) -> str:
    end = k.last_of(*ENDINGS)
    took = f" in {end.ts - k.started:.1f}s" if end is not None else ""
    dry = " (dry run)" if k.dry_run else ""
    reasons = [k.reason] if k.reason else []
    reasons += [f"also: {r}" for r in k.later_reasons]
    reason = f" — {'; '.join(reasons)}" if reasons else ""
    return f"{fmt_ts(k.started)}  {k.kill_id}  {k.action} by {k.trigger} → {k.outcome}{dry}{took}{reason}"


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _step_text(r: AuditRecord) -> str:
    """One audit record in words; unknown events print their details as JSON."""
    d = r.details
    event = r.event
    if event == "kill.triggered":
        accounts = ", ".join(_list(d.get("accounts"))) or "all accounts"
        dry = " (DRY RUN: nothing is sent)" if d.get("dry_run") else ""
        why = d.get("reason") or "no reason given"
        return f"triggered: {d.get('action')} by {d.get('trigger')} on {accounts}{dry} — {why}"
    if event == "kill.merged":
        return f"merged: {d.get('trigger')} ({d.get('reason') or 'no reason'}) folded into this kill"
    if event == "kill.folded":
        return f"folded: {d.get('trigger')} ({d.get('reason') or 'no reason'}) sent while this kill ran"
    if event == "cancel.global":
        sent = "sent" if d.get("sent", True) else "planned (dry run)"
        return f"global cancel {sent} ({d.get('why', '')})"
    if event == "cancel.verify":
        left = _list(d.get("still_working"))
        return f"verify cancels (attempt {d.get('attempt')}): " + (
            "; ".join(left) + " still working" if left else "no working order left"
        )
    if event == "close.verify":
        left = _list(d.get("open"))
        return f"verify positions (attempt {d.get('attempt')}): " + (
            "; ".join(left) + " still open" if left else "all closed"
        )
    if event == "close.plan":
        needs = _list(d.get("needs"))
        return f"close plan (attempt {d.get('attempt')}): " + ("; ".join(needs) or "nothing to close")
    if event == "close.order":
        return f"closing order {d.get('order_id') or '(not sent)'}: {_request_text(d.get('request'))}"
    if event == "cancel.order":
        return f"cancel order {d.get('order_id')}: {d.get('order')} ({d.get('why')})"
    if event in ENDINGS:
        problems = _list(d.get("problems"))
        text = f"outcome: {d.get('outcome', event.removeprefix('kill.'))}"
        if "positions_open" in d:
            text += f" (cancel only: {d.get('positions_open')} position(s) left open, not closed)"
        if "cancelled" in d:
            text += f"; {d.get('cancelled')} order(s) cancelled, {d.get('close_orders')} closing order(s)"
        if d.get("error"):
            text += f"; {d.get('error')}"
        return text + "".join(f"\n      still open: {p}" for p in problems)
    if event in _WORDED:
        return f"{_WORDED[event]}: {_one_line(d.get('message') or _compact(d))}"
    if d.get("message"):
        return f"{event}: {_one_line(d['message'])}"
    return f"{event}: {_compact(d)}"


# events whose recorded sentence (the one the operator was told) is their line, under a plain label
_WORDED = {
    "close.note": "note",
    "close.rejected": "closing order REJECTED",
    "close.refused": "close not sent",
    "close.manual": "MANUAL close needed",
    "close.standby_wait": "waiting",
    "close.reopened": "position reopened",
    "kill.handoff": "hand-off",
    "kill.interrupted": "INTERRUPTED",
    "lockout.detected": "LOCKOUT",
    "lockout.failed": "lockout re-entry failed",
    "lockout.recancel": "lockout: cancelled again",
    "kill.request_discarded": "leftover request discarded",
}


def _one_line(text: Any) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= 300 else flat[:297] + "..."


def _request_text(req: Any) -> str:
    if not isinstance(req, dict):
        return _compact(req)
    c = req.get("contract")
    contract: dict[str, Any] = c if isinstance(c, dict) else {}
    label = contract.get("local_symbol") or contract.get("symbol") or f"conId {contract.get('con_id', '?')}"
    price = f" {req.get('limit_price')}" if req.get("limit_price") is not None else ""
    what = f"{req.get('account')} {req.get('action')} {req.get('quantity')} {label}"
    return f"{what} {req.get('order_type')}{price}"


def _compact(d: Any) -> str:
    text = json.dumps(d, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def report_lines(k: KillStory) -> list[str]:
    lines = [
        f"kill {k.kill_id}: {k.action} by {k.trigger}{' (dry run)' if k.dry_run else ''} → {k.outcome}",
        f"reason: {k.reason or 'none given'}",
    ]
    lines += [f"later trigger's reason: {r}" for r in k.later_reasons]
    for r in k.records:
        lines.append(f"  {fmt_ts(r.ts)}  +{r.ts - k.started:7.3f}s  {_step_text(r)}")
    end = k.last_of(*ENDINGS)
    if end is None:
        lines.append("  (no final record: the kill is still running, or the daemon stopped during it)")
    return lines


def history_command(state_dir: Path, *, limit: int, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    records = read_audit(state_dir / AUDIT_FILE)
    stories = kills(records)
    if note := skipped_note(records):
        out.write(note + "\n")
    if not stories:
        out.write(f"no kill recorded in {state_dir / AUDIT_FILE}\n")
        return EXIT_OK
    for k in stories[-limit:] if limit > 0 else stories:
        out.write(history_line(k) + "\n")
    return EXIT_OK


def report_command(state_dir: Path, kill_id: str | None, *, out: TextIO | None = None) -> int:
    """The timeline of one kill (default: the latest); a prefix of its id is enough."""
    out = out or sys.stdout
    records = read_audit(state_dir / AUDIT_FILE)
    stories = kills(records)
    if note := skipped_note(records):
        out.write(note + "\n")
    if kill_id is not None and not kill_id.strip():
        print(
            "ibkr-watchdog report: an empty kill id matches nothing; see `ibkr-watchdog history`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if kill_id:
        stories = [k for k in stories if k.kill_id.startswith(kill_id)]
        if len(stories) != 1:
            why = "no kill" if not stories else f"{len(stories)} kills"
            print(
                f"ibkr-watchdog report: {why} with id {kill_id!r} in {state_dir / AUDIT_FILE}; "
                "see `ibkr-watchdog history`",
                file=sys.stderr,
            )
            return EXIT_FAILURE
    if not stories:
        print(f"ibkr-watchdog report: no kill recorded in {state_dir / AUDIT_FILE}", file=sys.stderr)
        return EXIT_FAILURE
    out.write("\n".join(report_lines(stories[-1])) + "\n")
    return EXIT_OK
