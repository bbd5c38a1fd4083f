"""`ibkr-watchdog history` (one line per kill) and the kill stories `report [KILL_ID]` prints (`kill_report`).

Both only read `audit.jsonl`, so they work with the daemon stopped, with a broken config
(`--state-dir`), and as any user who can read the state dir. Times are printed in UTC with the
date: an incident review compares them with broker statements and other hosts' logs.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from watchdog.state.audit import AuditRecord, read_audit
from watchdog.state.store import AUDIT_FILE

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# a story starts at a kill's trigger, or at a lockout run (new risk while tripped: it cancels, and
# with kill.lockout_flatten closes, under a kill id of its own)
STARTS = ("kill.triggered", "lockout.detected")
ENDINGS = ("kill.finished", "kill.escalated", "kill.pending", "lockout.done", "lockout.failed")
LATEST = 4_102_444_800.0  # 2100-01-01 UTC: a later time (or NaN) is a damaged record, not a date


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
    def end(self) -> AuditRecord | None:
        """The last outcome record, unless the kill was taken up again after it (a pending kill that
        resumed and still runs has no outcome yet)."""
        end = self.last_of(*ENDINGS)
        resumed = self.last_of("kill.triggered")
        if end is not None and resumed is not None and resumed.ts > end.ts:
            return None
        return end

    @property
    def start(self) -> AuditRecord | None:
        return next((r for r in self.records if r.event in STARTS), None)

    @property
    def lockout(self) -> bool:
        s = self.start
        return s is not None and s.event == "lockout.detected"

    @property
    def trigger(self) -> str:
        s = self.start
        if s is None:
            return "?"
        return str(s.details.get("trigger") or ("lockout" if self.lockout else "?"))

    @property
    def action(self) -> str:
        s = self.start
        if s is None:
            return "?"
        if self.lockout and not s.details.get("action"):  # written before lockouts named their action
            return "close_all" if s.details.get("positions") else "cancel_all"
        return str(s.details.get("action", "?"))

    @property
    def reason(self) -> str:
        s = self.start
        if s is None:
            return ""
        if self.lockout:
            return str(s.details.get("message") or "new risk while tripped")
        return str(s.details.get("reason", ""))

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
        end = self.end
        if end is None:
            return "running (or interrupted)"
        if end.event == "kill.pending":
            return "pending"
        if end.event == "lockout.failed":
            return f"lockout could not act: {end.details.get('error', '?')}"
        if end.event == "lockout.done":
            return "orders cancelled by the lockout (no verification round: the next poll looks again)"
        outcome = str(end.details.get("outcome", end.event.removeprefix("kill.")))
        if outcome == "flat" and self.action == "cancel_all":
            # verified: every order cancelled; the positions were never meant to close
            left = end.details.get("positions_open", "?")
            return (
                "orders cancelled (no position was open)"
                if left == 0
                else (f"orders cancelled (positions not closed: {left})")
            )
        return outcome


def damaged(r: AuditRecord) -> bool:
    """A record no kill story can use: no time (it would read as 1970) or one no clock gives (NaN, past
    2100), or a trigger without its fields."""
    if not math.isfinite(r.ts) or not 0 < r.ts < LATEST:
        return True
    return r.event == "kill.triggered" and not (r.details.get("trigger") and r.details.get("action"))


def kills(records: Sequence[AuditRecord]) -> list[KillStory]:
    """Kills in the order they were triggered (records of one kill may interleave with others); damaged
    records (see `damaged`) are left out: `skipped_note` counts them for the operator."""
    stories: dict[str, KillStory] = {}
    for r in records:
        if r.kill_id is None or damaged(r):
            continue
        if r.event in STARTS or r.kill_id in stories:
            stories.setdefault(r.kill_id, KillStory(r.kill_id)).records.append(r)
    return list(stories.values())


def skipped_note(records: Sequence[AuditRecord]) -> str:
    n = sum(1 for r in records if r.kill_id is not None and damaged(r))
    return f"({n} damaged audit record{'s' if n != 1 else ''} skipped)" if n else ""


def fmt_ts(epoch: float) -> str:
    """UTC with milliseconds; a time no clock gives (NaN, negative, past 2100: a damaged record) is "?"."""
    if not math.isfinite(epoch) or not 0 <= epoch < LATEST:
        return "(no valid time)"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d} UTC"


def history_line(k: KillStory) -> str:
    end = k.end
    took = f" in {end.ts - k.started:.1f}s" if end is not None else ""
    dry = " (dry run)" if k.dry_run else ""
    reasons = [k.reason] if k.reason else []
    reasons += [f"also: {r}" for r in k.later_reasons]
    reason = f" — {'; '.join(reasons)}" if reasons else ""
    return f"{fmt_ts(k.started)}  {k.kill_id}  {k.action} by {k.trigger} → {k.outcome}{dry}{took}{reason}"


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
