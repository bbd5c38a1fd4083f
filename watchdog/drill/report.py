"""The drill's evidence: one JSON document, a Markdown report and a self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import platform
import statistics
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from watchdog import __version__
from watchdog.config.schema import Config
from watchdog.drill.result import ScenarioResult, Verdict

REPORT_NAMES = ("drill.md", "drill.json", "drill.html")
MAX_TIMELINE_ROWS = 80  # per scenario in the Markdown; the JSON keeps every event


def versions() -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "ibkr-watchdog": __version__,
        "ib_async": version("ib_async"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class DrillReport:
    config_path: str
    digest: str
    started: float
    finished: float
    versions: dict[str, str]
    book: dict[str, Any]
    kill_settings: dict[str, Any]
    overrides: list[str]
    results: list[ScenarioResult]
    findings: list[str] = field(default_factory=list)
    never_fired: list[dict[str, str]] = field(default_factory=list)
    notify: bool = False
    skipped: list[str] = field(default_factory=list)  # scenario ids of the standard drill not run (--only)

    @classmethod
    def build(
        cls,
        *,
        config: Config,
        config_path: str,
        digest: str,
        book: dict[str, Any],
        overrides: list[str],
        results: list[ScenarioResult],
        findings: list[str],
        started: float,
        finished: float,
        notify: bool,
        skipped: list[str] | None = None,
    ) -> DrillReport:
        found = list(findings) + [
            f"rule {r.rule}: {r.summary}" for r in results if r.verdict is Verdict.FINDING
        ]
        if notify and not any(r.on_call for r in results):
            found.append(
                "--notify was asked but no scenario that can prove delivery ran (the restart scenario's "
                "daemons are other processes): the on-call route was NOT tested"
            )
        by_rule = {r.rule: r for r in results if r.rule}
        never = []
        for rule in config.rules:
            res = by_rule.get(rule.name)
            if not rule.enabled:
                never.append({"rule": rule.name, "why": "disabled in the config (not rehearsed)"})
            elif res is None:
                never.append({"rule": rule.name, "why": "no scenario ran"})
            elif res.verdict is not Verdict.PASS and not any(e.kind == "breach" for e in res.events):
                never.append({"rule": rule.name, "why": res.summary or res.verdict.value})
        k = config.kill
        kill_settings = {
            "max_attempts": k.max_attempts,
            "verify_timeout_s": k.verify_timeout,
            "pacing_per_s": k.pacing,
            "collar": k.collar,
            "order_ref": k.order_ref,
            "lockout": k.lockout,
            "lockout_flatten": k.lockout_flatten,
            "standby": k.standby,
            "dry_run": k.dry_run,
        }
        return cls(
            config_path=config_path,
            digest=digest,
            started=started,
            finished=finished,
            versions=versions(),
            book=book,
            kill_settings=kill_settings,
            overrides=overrides,
            results=results,
            findings=found,
            never_fired=never,
            notify=notify,
            skipped=list(skipped or ()),
        )

    @property
    def partial(self) -> bool:
        """Some scenarios of the standard drill were left out (--only): never the annual evidence."""
        return bool(self.skipped)

    @property
    def verdict_word(self) -> str:
        """PASS, FAIL, or PARTIAL PASS / PARTIAL FAIL: a partial drill never reads as a plain PASS."""
        word = "PASS" if self.passed else "FAIL"
        return f"PARTIAL {word}" if self.partial else word

    @property
    def scope_text(self) -> str:
        if not self.partial:
            return f"the full standard drill ({len(self.results)} scenarios)"
        ran = ", ".join(r.sid for r in self.results)
        return (
            f"PARTIAL drill (--only): ran {len(self.results)} of {len(self.results) + len(self.skipped)} "
            f"scenarios ({ran}); skipped {', '.join(self.skipped)}"
        )

    @property
    def passed(self) -> bool:
        return not self.findings and all(
            r.verdict in (Verdict.PASS, Verdict.NOT_DRIVEN) for r in self.results
        )

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.results if r.verdict is verdict)

    @property
    def on_call(self) -> list[dict[str, Any]]:
        """--notify: each of the config's targets with apprise's outcome, from the scenario that sent."""
        return [{**t, "scenario": r.sid} for r in self.results for t in r.on_call]

    @property
    def notify_text(self) -> str:
        if not self.notify:
            return "no (--notify not given): every message went only to the drill's loopback capture"
        if not self.on_call:
            return "asked (--notify) but NOT tested: no scenario that proves delivery ran"
        parts = [
            f"{t['target']} {'delivered' if t['ok'] else 'FAILED: ' + str(t['why'])} ({t['scenario']})"
            for t in self.on_call
        ]
        return "yes (--notify), apprise's outcome per target: " + "; ".join(parts)

    @property
    def latencies_ms(self) -> list[float]:
        return [r.trigger_to_cancel_ms for r in self.results if r.trigger_to_cancel_ms is not None]

    @property
    def summary_line(self) -> str:
        kills = [
            r
            for r in self.results
            if r.action in ("cancel_all", "close_all") and r.verdict is not Verdict.NOT_DRIVEN
        ]
        # verified: the scenario passed AND the kill ended FLAT (an escalated kill that was expected
        # to escalate passes its scenario, but is not a verified kill)
        flat = sum(1 for r in kills if r.verdict is Verdict.PASS and r.outcome == "flat")
        lat = self.latencies_ms
        timing = (
            f"; trigger → first cancel median {statistics.median(lat):.0f} ms, max {max(lat):.0f} ms"
            if lat
            else ""
        )
        return (
            f"{_iso(self.started)} ibkr-watchdog {self.versions['ibkr-watchdog']} fire drill of "
            f"{self.config_path} (sha256 {self.digest[:16]}) on the {self.book['origin']}: "
            f"{self.count(Verdict.PASS)}/{len(self.results)} scenarios passed, "
            f"{self.count(Verdict.FAIL)} failed, {self.count(Verdict.NOT_DRIVEN)} not driven, "
            f"{len(self.findings)} finding(s); kill verified in {flat}/{len(kills)} kill scenarios{timing}. "
            + (f"{self.scope_text}. " if self.partial else "")
            + f"RESULT: {self.verdict_word}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.verdict_word.lower().replace(" ", "-"),
            "partial": self.partial,
            "scenarios_skipped": self.skipped,
            "summary": self.summary_line,
            "started": _iso(self.started),
            "duration_s": round(self.finished - self.started, 2),
            "config": {"path": self.config_path, "sha256": self.digest, "kill": self.kill_settings},
            "versions": self.versions,
            "book": self.book,
            "overrides": self.overrides,
            "notifications_sent_for_real": self.notify,
            "on_call_targets": self.on_call,
            "findings": self.findings,
            "rules_never_fired": self.never_fired,
            "scenarios": [r.as_dict() for r in self.results],
        }


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f} ms"


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: DrillReport) -> str:
    d = report
    lines = [
        f"# Fire drill — {d.verdict_word}",
        "",
        f"> {d.summary_line}",
        "",
        f"Scope: {d.scope_text}" + (": not the full drill, not the annual evidence" if d.partial else ""),
        "",
        "## Configuration",
        "",
        f"- file: `{d.config_path}`",
        f"- sha256: `{d.digest}`",
        "- kill: " + ", ".join(f"{k} {v}" for k, v in d.kill_settings.items()),
        f"- notifications sent for real: {d.notify_text}",
        f"- the drill took {d.finished - d.started:.0f} s ({len(d.results)} scenarios, a fresh simulator and "
        "daemon each)",
        "",
        "## Versions",
        "",
        *[f"- {k}: {v}" for k, v in d.versions.items()],
        "",
        "## Book used",
        "",
        f"{d.book['origin']} ({d.book['source']}); accounts {', '.join(d.book['accounts'])}",
        "",
        "| account | contract | quantity |",
        "|---|---|---:|",
        *[f"| {p['account']} | {p['symbol']} | {p['quantity']:g} |" for p in d.book["positions"]],
        "",
        f"Resting orders of other clients: {len(d.book['orders'])}",
        "",
        *[
            f"- {o['account']} {o['action']} {o['remaining']:g} {o['symbol']} {o['order_type']}"
            + (f" {o['lmt_price']:g}" if o.get("lmt_price") is not None else "")
            + f" (client {o['client_id']})"
            for o in d.book["orders"]
        ],
        "",
        *[f"- note: {n}" for n in d.book["notes"]],
        "",
        "## What the drill changed in the config (and why)",
        "",
        *[f"- {o}" for o in d.overrides],
        "",
        "## Results",
        "",
        "| scenario | verdict | trigger → first cancel | trigger → done | outcome "
        "| orders sent (place / cancel / global) | over-close | messages |",
        "|---|---|---:|---:|---|---|---|---:|",
    ]
    for r in d.results:
        sent = r.orders_sent
        counts = (
            f"{sent.get('placeOrder', 0)} / {sent.get('cancelOrder', 0)} / {sent.get('reqGlobalCancel', 0)}"
        )
        lines.append(
            f"| {_cell(r.title)} | **{r.verdict.value.upper()}** | {_ms(r.trigger_to_cancel_ms)} | "
            f"{_s(r.trigger_to_flat_s)} | {r.outcome or '—'} | {counts if sent else '—'} | "
            f"{'YES' if r.over_close else 'none'} | {len(r.messages)} |"
        )
    lines += ["", "## Findings", ""]
    lines += [f"- {f}" for f in d.findings] or ["None."]
    lines += ["", "## Rules that never fired", ""]
    lines += [f"- `{n['rule']}`: {n['why']}" for n in d.never_fired] or ["Every enabled rule fired."]
    lines += ["", "## Scenarios", ""]
    for r in d.results:
        lines += _scenario_md(r)
    return "\n".join(lines) + "\n"


def _scenario_md(r: ScenarioResult) -> list[str]:
    out = [f"### {r.title} — {r.verdict.value.upper()}", ""]
    if r.summary:
        out += [r.summary, ""]
    out += [f"- {'✔' if c.ok else '✘'} {c.name}" + (f" — {c.detail}" if c.detail else "") for c in r.checks]
    if r.escalation:
        out += ["", "Escalated (still open after the kill):", *[f"- {e}" for e in r.escalation]]
    if r.warped:
        out += ["", f"Time advanced by {r.warped:.1f} s of drill clock (for `for:` / staleness limits)."]
    if r.events:
        out += ["", "| t (s) | kind | event |", "|---:|---|---|"]
        shown = r.events[:MAX_TIMELINE_ROWS]
        out += [f"| {e.t:.3f} | {e.kind} | {_cell(e.text)} |" for e in shown]
        if len(r.events) > len(shown):
            out.append(f"| … | | {len(r.events) - len(shown)} more events in drill.json |")
    return [*out, ""]
