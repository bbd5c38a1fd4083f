"""A scenario's outcome as the report shows it: verdict, checks, timings, orders, messages, timeline."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from watchdog.drill.runner import Event


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"  # a check failed: the kill (or the alert) did not do what the config promises
    FINDING = "finding"  # the rule can never fire from this book and config (fails the drill)
    NOT_DRIVEN = "not driven"  # the simulator cannot produce this condition; listed, does not fail


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class ScenarioResult:
    sid: str
    title: str
    category: str  # "rule", "standard"
    rule: str | None = None
    action: str = ""
    verdict: Verdict = Verdict.PASS
    summary: str = ""
    checks: list[Check] = field(default_factory=list)
    trigger_at: float | None = None  # seconds since the scenario started (drill clock)
    first_cancel_at: float | None = None
    flat_at: float | None = None
    outcome: str = ""
    escalation: list[str] = field(default_factory=list)
    orders_sent: dict[str, int] = field(default_factory=dict)
    over_close: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    on_call: list[dict[str, Any]] = field(default_factory=list)  # --notify: each real target's outcome
    events: list[Event] = field(default_factory=list)
    warped: float = 0.0  # drill seconds the clock was advanced
    duration: float = 0.0  # real seconds the scenario took

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def settle(self) -> None:
        """Verdict from the checks (a finding or not-driven verdict set earlier stays)."""
        if self.verdict in (Verdict.FINDING, Verdict.NOT_DRIVEN):
            return
        failed = [c for c in self.checks if not c.ok]
        self.verdict = Verdict.FAIL if failed or not self.checks else Verdict.PASS
        if failed and not self.summary.startswith("failed"):
            self.summary = "failed: " + "; ".join(
                c.name + (f" ({c.detail})" if c.detail else "") for c in failed
            )

    @property
    def trigger_to_cancel_ms(self) -> float | None:
        if self.trigger_at is None or self.first_cancel_at is None:
            return None
        return max(0.0, (self.first_cancel_at - self.trigger_at) * 1000)

    @property
    def trigger_to_flat_s(self) -> float | None:
        if self.trigger_at is None or self.flat_at is None:
            return None
        return max(0.0, self.flat_at - self.trigger_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.sid,
            "title": self.title,
            "category": self.category,
            "rule": self.rule,
            "action": self.action,
            "verdict": self.verdict.value,
            "summary": self.summary,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "trigger_at": self.trigger_at,
            "first_cancel_at": self.first_cancel_at,
            "flat_at": self.flat_at,
            "trigger_to_first_cancel_ms": _round(self.trigger_to_cancel_ms, 1),
            "trigger_to_flat_s": _round(self.trigger_to_flat_s, 3),
            "outcome": self.outcome,
            "escalation": self.escalation,
            "orders_sent": self.orders_sent,
            "over_close": self.over_close,
            "messages": self.messages,
            "on_call_targets": self.on_call,
            "events": [e.as_dict() for e in sorted(self.events, key=lambda e: e.t)],
            "time_advanced_s": round(self.warped, 3),
            "duration_s": round(self.duration, 3),
        }


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)
