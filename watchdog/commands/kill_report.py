"""`ibkr-watchdog report [KILL_ID]`: one kill's timeline from the audit log, closing orders with fills.

Fills (`close.fill` records) are printed under the closing order they filled, not in the timeline:
one line per execution (shares @ price, IB's execution time, exec id, commission when reported)
and a total per order. An execution is recorded more than once when its commission arrives later
or a restart re-reads today's executions: one line per exec id. IB corrects an execution by
re-sending its id with a higher revision after the last period: the correction replaces it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from watchdog.commands.history import (
    ENDINGS,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    KillStory,
    fmt_ts,
    kills,
    skipped_note,
)
from watchdog.model import exec_stem
from watchdog.state.audit import AuditRecord, read_audit
from watchdog.state.store import AUDIT_FILE

FILL_EVENT = "close.fill"


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
    if event == "lockout.failed":
        return f"LOCKOUT FAILED: {_one_line(d.get('message') or d.get('error') or _compact(d))}"
    if event == "lockout.done":
        again = d.get("replaced_ours") or 0
        mine = f"; {again} closing order(s) of ours placed again" if again else ""
        done = f"lockout done: {d.get('cancelled', '?')} new order(s) cancelled{mine}"
        return done + " (the next poll looks again)"
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
        said = _one_line(d.get("message") or _compact(d))
        return f"{_WORDED[event]}: {said.removeprefix(_WORDED[event].lower() + ': ')}"
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


def closing_fills(records: Sequence[AuditRecord]) -> dict[int, list[Mapping[str, Any]]]:
    """The kill's executions by closing order id, in execution time order: one per exec id (the latest
    record, keeping a commission an earlier one knew), a correction in place of what it corrects.
    Each also carries `recorded` (the audit time of its first record)."""
    by_exec: dict[str, dict[str, Any]] = {}
    for r in records:
        exec_id = r.details.get("exec_id")
        if r.event != FILL_EVENT or not isinstance(exec_id, str) or not exec_id:
            continue
        old = by_exec.get(exec_id)
        fill = {**r.details, "recorded": r.ts if old is None else old["recorded"]}
        if fill.get("commission") is None and old is not None:
            fill["commission"] = old.get("commission")
        by_exec[exec_id] = fill
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for exec_id, fill in by_exec.items():
        stem, revision = exec_stem(exec_id)
        if stem not in latest or revision >= latest[stem][0]:
            latest[stem] = (revision, fill)
    out: dict[int, list[Mapping[str, Any]]] = {}
    for _, fill in sorted(latest.values(), key=lambda rf: (_num(rf[1].get("time")), rf[1]["exec_id"])):
        oid = fill.get("order_id")
        out.setdefault(oid if isinstance(oid, int) else 0, []).append(fill)
    return out


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _price(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def fill_lines(fills: Sequence[Mapping[str, Any]], quantity: Any, ended: float | None) -> list[str]:
    """One line per execution and the order's total; `quantity` is the closing order's size, `ended` the
    time of the kill's outcome record (a fill recorded after it is marked)."""
    if not fills:
        return ["no fill recorded yet"]
    lines = []
    for f in fills:
        shares, price = _num(f.get("shares")), _num(f.get("price"))
        commission = f.get("commission")
        fee = (
            f", commission {_price(_num(commission))} {f.get('currency') or ''}".rstrip()
            if isinstance(commission, int | float)
            else ", commission not reported"
        )
        late = " (heard after the outcome)" if ended is not None and _num(f.get("recorded")) > ended else ""
        lines.append(
            f"fill {f.get('side', '?')} {shares:g} @ {_price(price)}  {fmt_ts(_num(f.get('time')))}  "
            f"exec {f.get('exec_id')}{fee}{late}"
        )
    total = sum(_num(f.get("shares")) for f in fills)
    avg = sum(_num(f.get("shares")) * _num(f.get("price")) for f in fills) / total if total else 0.0
    of = f" of {_num(quantity):g}" if isinstance(quantity, int | float) else ""
    lines.append(
        f"filled {total:g}{of}, avg {_price(avg)} ({len(fills)} fill{'s' if len(fills) != 1 else ''})"
    )
    return lines


def report_lines(k: KillStory) -> list[str]:
    lines = [
        f"kill {k.kill_id}: {k.action} by {k.trigger}{' (dry run)' if k.dry_run else ''} → {k.outcome}",
        f"reason: {k.reason or 'none given'}",
    ]
    lines += [f"later trigger's reason: {r}" for r in k.later_reasons]
    end = k.end
    fills = closing_fills(k.records)
    listed: set[int] = set()
    pad = " " * 42  # under the step text, past the time and offset columns
    first = k.start
    for r in k.records:
        if r.event == FILL_EVENT:
            continue  # printed under their closing order
        text = _step_text(r)
        if r.event == "kill.triggered" and r is not first:  # a pending kill taken up again, same kill
            text = "resumed (same kill): " + text.removeprefix("triggered: ")
        lines.append(f"  {fmt_ts(r.ts)}  +{r.ts - k.started:7.3f}s  {text}")
        oid = r.details.get("order_id")
        if r.event == "close.order" and r.details.get("sent", True) and isinstance(oid, int):
            listed.add(oid)
            request = r.details.get("request")
            quantity = request.get("quantity") if isinstance(request, dict) else None
            ended = end.ts if end is not None else None
            lines += [f"{pad}{line}" for line in fill_lines(fills.get(oid, []), quantity, ended)]
    for oid in sorted(fills.keys() - listed):  # e.g. an order whose close.order record was lost
        lines.append(f"  fills of order {oid or '(unknown id)'}, not placed in the records above:")
        lines += [f"{pad}{line}" for line in fill_lines(fills[oid], None, None)]
    if sum(1 for r in k.records if r.event == "kill.triggered") > 1:
        # each part's outcome line counts its own part: the whole kill, once
        n_fills = sum(len(v) for v in fills.values())
        lines.append(
            f"  in all (every part of this kill): {len(listed)} closing order(s) sent, "
            f"{n_fills} fill(s) recorded"
        )
    if end is None:
        lines.append("  (no final record: the kill is still running, or the daemon stopped during it)")
    return lines


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
