"""`ibkr-watchdog plan` for a person: the readiness plan (the JSON of `readiness.json`) as a table.

Works on the plain JSON (version 1, written by `watchdog.kill.readiness.readiness_json`), so the
same text comes out of a daemon's state dir and of a one-off read-only look at a gateway.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from watchdog.outputs.messages import fmt_duration

HEADERS = ("POSITION", "QTY", "WOULD SEND", "MARKET", "PRICE (SOURCE, AGE)", "CLOSES?")


def _utc(epoch: float, now: float) -> str:
    fmt = "%H:%M UTC" if abs(epoch - now) < 20 * 3600 else "%a %d %b %H:%M UTC"
    return time.strftime(fmt, time.gmtime(epoch))


def _num(v: Any) -> str:
    if not isinstance(v, int | float) or math.isnan(v):
        return "-"
    return f"{v:,.10g}" if abs(v) >= 1000 else f"{v:g}"


def _orders(orders: Sequence[Mapping[str, Any]]) -> str:
    if not orders:
        return "nothing"
    parts = []
    for o in orders:
        price = f" {_num(o.get('limit_price'))}" if o.get("order_type") == "LMT" else ""
        rth = " outsideRth" if o.get("outside_rth") else ""
        size = f"{o.get('action')} {_num(o.get('quantity'))}"
        parts.append(f"{size} {o.get('order_type')}{price} on {o.get('exchange')}{rth}")
    return " + ".join(parts)


def _market(p: Mapping[str, Any], now: float) -> str:
    is_open = p.get("market_open")
    session = p.get("session") or ("?" if is_open is None else "open" if is_open else "closed")
    by = " (table)" if p.get("hours_from_table") else ""
    until = p.get("market_until")
    return f"{session}{by} until {_utc(until, now)}" if isinstance(until, int | float) else f"{session}{by}"


def _price(p: Mapping[str, Any], now: float) -> str:
    price = p.get("price")
    if not isinstance(price, int | float):
        return "none"
    source = p.get("price_source") or "?"
    as_of = p.get("price_as_of")
    age = f", {fmt_duration(now - as_of)}" if isinstance(as_of, int | float) else ", age unknown"
    return f"{_num(price)} ({source}{age})"


def _reasons(problems: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(dict.fromkeys(str(x.get("reason")) for x in problems))


def write_proven(plan: Mapping[str, Any]) -> bool:
    """Every account's write access proven: a plan that is otherwise ready is not ready without it."""
    return all(a.get("write_access") is True for a in plan.get("accounts", []))


def _access(a: Mapping[str, Any], now: float) -> str:
    at = a.get("write_access_as_of")
    ago = f" {fmt_duration(now - at)} ago" if isinstance(at, int | float) else ""
    allowed = a.get("write_access")
    if allowed is True:
        return f"proven{ago}"
    if allowed is False:
        return f"READ-ONLY (found{ago})" if ago else "READ-ONLY"
    return "not proven"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_plan(plan: Mapping[str, Any], *, now: float | None = None, stale: str | None = None) -> str:
    """The plan as text: one block per account, a table of positions, then every problem spelled out.

    `stale` (from `readiness_file.judge_currency`) says why the plan no longer describes the book: the
    verdict line then starts with STALE and no position count is called fresh.
    """
    now = time.time() if now is None else now
    at = plan.get("planned_at")
    when = (
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(at))} ({fmt_duration(now - at)} ago)"
        if isinstance(at, int | float)
        else "at an unknown time"
    )
    by = "a read-only look at the gateway" if plan.get("source") == "gateway" else "the daemon"
    verdict = "NOT READY"
    if plan.get("ready"):
        verdict = "READY" if write_proven(plan) else "READY IF WRITABLE"
    if isinstance(at, int | float) and at > now:
        when = when.replace(f"({fmt_duration(now - at)} ago)", f"({fmt_duration(at - now)} in the future)")
    if stale is not None:
        verdict = f"STALE — {stale}; the last plan said {verdict}"
    lines = [f"Kill readiness: {verdict} — a close_all planned {when} by {by}; nothing was sent."]
    if not plan.get("accounts"):
        lines.append("No account known yet: the gateway has not been reached since the daemon started.")
    for a in plan.get("accounts", []):
        lines.append("")
        access = _access(a, now)
        data_at = a.get("data_as_of")
        data = f"read {fmt_duration(now - data_at)} ago" if isinstance(data_at, int | float) else "never read"
        fresh = "fresh" if a.get("data_fresh") and stale is None else "STALE"
        state = f"{'ready' if a.get('ready') else 'NOT READY'} · write access {access}"
        if a.get("ready") and a.get("write_access") is not True:
            look = "in a read-only look" if plan.get("source") == "gateway" else "yet"
            state = f"ready if writable — write access not proven {look}"
        lines.append(f"{a.get('account')}: {state} · positions {data} ({fresh})")
        positions = a.get("positions", [])
        if positions:
            rows = [HEADERS]
            for p in positions:
                label = f"{p.get('symbol')} {p.get('sec_type')}"
                closes = "yes" if p.get("would_close") else "NO: " + _reasons(p.get("problems", []))
                rows.append(
                    (label, _num(p.get("quantity")), _orders(p.get("orders", [])), _market(p, now),
                     _price(p, now), closes)
                )  # fmt: skip
            lines.extend(_table(rows))
        else:
            lines.append("  no positions: a kill would only cancel working orders")
        if a.get("omitted"):
            lines.append(f"  … and {a['omitted']} more position(s) not listed (see --json counts)")
        details = [f"  ! {x.get('reason')}: {x.get('detail')}" for x in a.get("problems", [])]
        for p in positions:
            details += [
                f"  ! {p.get('symbol')}: {x.get('reason')}: {x.get('detail')}" for x in p.get("problems", [])
            ]
        lines.extend(details)
    return "\n".join(lines) + "\n"
