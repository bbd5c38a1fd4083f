"""The drill report as one self-contained HTML page: inline CSS, an inline SVG timeline per scenario,
no script and no external asset (it opens the same from a compliance archive in ten years)."""

from __future__ import annotations

from html import escape

from watchdog.drill.report import DrillReport
from watchdog.drill.result import ScenarioResult, Verdict

WIDTH, LEFT, RIGHT, LANE = 900, 110, 20, 22
LANES = (
    ("drive", ("drive", "fault"), "#6b7280"),
    ("rule", ("breach", "warning"), "#d97706"),
    ("daemon", ("kill", "note", "error"), "#7c3aed"),
    ("wire", ("wire",), "#dc2626"),
    ("fills", ("fill",), "#2563eb"),
    ("messages", ("message",), "#059669"),
    ("book", ("flat",), "#111827"),
)
_VERDICT_COLOR = {
    Verdict.PASS: "#15803d",
    Verdict.FAIL: "#b91c1c",
    Verdict.FINDING: "#b45309",
    Verdict.NOT_DRIVEN: "#4b5563",
}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;
color:#111827}
h1{font-size:24px;margin:0 0 8px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
h3{font-size:15px;margin:22px 0 6px}
.summary{background:#f3f4f6;border-left:4px solid #374151;padding:8px 12px;font-family:ui-monospace,monospace;
font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{border:1px solid #e5e7eb;padding:3px 6px;text-align:left;vertical-align:top} th{background:#f9fafb}
td.n{text-align:right;white-space:nowrap}
.v{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.ok{color:#15803d} .bad{color:#b91c1c} code{font-size:12px}
details{margin:4px 0 12px} summary{cursor:pointer;color:#374151}
svg text{font:11px system-ui,sans-serif;fill:#374151}
"""


def _badge(v: Verdict) -> str:
    return f'<span class="v" style="background:{_VERDICT_COLOR[v]}">{escape(v.value.upper())}</span>'


def timelines(r: ScenarioResult) -> str:
    """The whole scenario, and a zoom on trigger → done when the kill is a small part of it."""
    if not r.events:
        return ""
    end = max(e.t for e in r.events)
    out = timeline_svg(r, 0.0, end)
    if r.trigger_at is not None and r.flat_at is not None and r.flat_at - r.trigger_at < 0.25 * end:
        start, stop = max(0.0, r.trigger_at - 0.02), r.flat_at + 0.05
        out += f"<p>Zoom: trigger → done ({stop - start:.2f} s)</p>" + timeline_svg(r, start, stop)
    return out


def timeline_svg(r: ScenarioResult, start: float, end: float) -> str:
    """Events from `start` to `end` on one lane per kind; x is seconds since the scenario started."""
    events = [e for e in r.events if start <= e.t <= end]
    span = max(end - start, 0.001) * 1.05
    height = LANE * len(LANES) + 34
    usable = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + max(0.0, t - start) / span * usable

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="timeline of {escape(r.title)}">'
    ]
    for i, (name, _, _color) in enumerate(LANES):
        y = 12 + i * LANE
        parts.append(f'<text x="4" y="{y + 4}">{name}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#e5e7eb"/>')
    for marker, colour in ((r.trigger_at, "#d97706"), (r.flat_at, "#111827")):
        if marker is not None and start <= marker <= end:
            parts.append(
                f'<line x1="{x(marker):.1f}" y1="4" x2="{x(marker):.1f}" y2="{height - 26}" '
                f'stroke="{colour}" stroke-dasharray="3,3"/>'
            )
    for e in events:
        lane = next((i for i, (_, kinds, _) in enumerate(LANES) if e.kind in kinds), 2)
        color = LANES[lane][2] if e.kind != "error" else "#b91c1c"
        y = 12 + lane * LANE
        parts.append(
            f'<circle cx="{x(e.t):.1f}" cy="{y}" r="4" fill="{color}" fill-opacity="0.8">'
            f"<title>{e.t:.3f}s {escape(e.kind)}: {escape(e.text)}</title></circle>"
        )
    axis = height - 18
    parts.append(f'<line x1="{LEFT}" y1="{axis}" x2="{WIDTH - RIGHT}" y2="{axis}" stroke="#9ca3af"/>')
    for k in range(6):
        t = start + span * k / 5
        parts.append(f'<text x="{x(t):.1f}" y="{axis + 13}" text-anchor="middle">{t:.2f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _row(r: ScenarioResult) -> str:
    sent = r.orders_sent
    counts = (
        f"{sent.get('placeOrder', 0)} / {sent.get('cancelOrder', 0)} / {sent.get('reqGlobalCancel', 0)}"
        if sent
        else "—"
    )
    cancel = "—" if r.trigger_to_cancel_ms is None else f"{r.trigger_to_cancel_ms:.0f} ms"
    done = "—" if r.trigger_to_flat_s is None else f"{r.trigger_to_flat_s:.2f} s"
    return (
        f'<tr><td><a href="#{escape(r.sid)}">{escape(r.title)}</a></td><td>{_badge(r.verdict)}</td>'
        f'<td class="n">{cancel}</td><td class="n">{done}</td><td>{escape(r.outcome or "—")}</td>'
        f'<td class="n">{counts}</td><td>{"YES" if r.over_close else "none"}</td>'
        f'<td class="n">{len(r.messages)}</td></tr>'
    )


def _scenario(r: ScenarioResult) -> str:
    checks = "".join(
        f'<li class="{"ok" if c.ok else "bad"}">{"✔" if c.ok else "✘"} {escape(c.name)}'
        + (f" — {escape(c.detail)}" if c.detail else "")
        + "</li>"
        for c in r.checks
    )
    esc = "".join(f"<li>{escape(e)}</li>" for e in r.escalation)
    rows = "".join(
        f'<tr><td class="n">{e.t:.3f}</td><td>{escape(e.kind)}</td><td>{escape(e.text)}</td></tr>'
        for e in r.events
    )
    warp = f"<p>Time advanced by {r.warped:.1f} s of drill clock.</p>" if r.warped else ""
    return (
        f'<h3 id="{escape(r.sid)}">{escape(r.title)} {_badge(r.verdict)}</h3>'
        f"<p>{escape(r.summary)}</p>{timelines(r)}<ul>{checks}</ul>"
        + (f"<p>Escalated:</p><ul>{esc}</ul>" if esc else "")
        + warp
        + (
            f"<details><summary>{len(r.events)} events</summary><table><tr><th>t (s)</th><th>kind</th>"
            f"<th>event</th></tr>{rows}</table></details>"
            if rows
            else ""
        )
    )


def html_page(report: DrillReport) -> str:
    d = report
    verdict = Verdict.PASS if d.passed else Verdict.FAIL
    partial = '<span class="v" style="background:#1d4ed8">PARTIAL</span> ' if d.partial else ""
    positions = "".join(
        f"<tr><td>{escape(str(p['account']))}</td><td>{escape(str(p['symbol']))}</td>"
        f'<td class="n">{p["quantity"]:g}</td></tr>'
        for p in d.book["positions"]
    )
    lists = {
        "findings": d.findings or ["None."],
        "never": [f"{n['rule']}: {n['why']}" for n in d.never_fired] or ["Every enabled rule fired."],
        "overrides": d.overrides,
        "notes": d.book["notes"],
    }
    ul = {k: "".join(f"<li>{escape(x)}</li>" for x in v) for k, v in lists.items()}
    vers = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in d.versions.items())
    kill = ", ".join(f"{k} {v}" for k, v in d.kill_settings.items())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Fire drill — {escape(d.verdict_word)}</title><style>{CSS}</style></head><body>"
        f'<h1>Fire drill {partial}{_badge(verdict)}</h1><p class="summary">{escape(d.summary_line)}</p>'
        f"<p><strong>Scope:</strong> {escape(d.scope_text)}</p>"
        f"<h2>Configuration</h2><ul><li>file: <code>{escape(d.config_path)}</code></li>"
        f"<li>sha256: <code>{escape(d.digest)}</code></li><li>kill: {escape(kill)}</li>"
        f"<li>notifications sent for real: {escape(d.notify_text)}</li>"
        f"<li>the drill took {d.finished - d.started:.0f} s ({len(d.results)} scenarios)</li></ul>"
        f"<h2>Versions</h2><ul>{vers}</ul>"
        f"<h2>Book used</h2><p>{escape(d.book['origin'])} ({escape(d.book['source'])}); accounts "
        f"{escape(', '.join(d.book['accounts']))}; "
        f"{len(d.book['orders'])} resting orders of other clients</p>"
        f"<table><tr><th>account</th><th>contract</th><th>quantity</th></tr>{positions}</table>"
        f"<ul>{ul['notes']}</ul>"
        f"<h2>What the drill changed in the config</h2><ul>{ul['overrides']}</ul>"
        "<h2>Results</h2><table><tr><th>scenario</th><th>verdict</th><th>trigger → first cancel</th>"
        "<th>trigger → done</th><th>outcome</th><th>orders sent (place / cancel / global)</th>"
        f"<th>over-close</th><th>messages</th></tr>{''.join(_row(r) for r in d.results)}</table>"
        f"<h2>Findings</h2><ul>{ul['findings']}</ul>"
        f"<h2>Rules that never fired</h2><ul>{ul['never']}</ul>"
        f"<h2>Scenarios</h2>{''.join(_scenario(r) for r in d.results)}"
        "</body></html>\n"
    )
