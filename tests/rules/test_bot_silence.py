"""`bot_silence`: seconds since the rule's bot last heartbeated; unknown (never a kill) until it has."""

from __future__ import annotations

from types import MappingProxyType

from tests.rules.helpers import T0, rule, snap
from watchdog.config.schema import Rule
from watchdog.model import Action, BotStatus, Breach, BreachKind, Snapshot
from watchdog.rules.evaluate import RuleMemory, evaluate

ACCOUNTS = ["DU111111"]


def silent_rule(**kw: object) -> Rule:
    return rule("bot_silence > 15s", name="alpha-silent", bot="alpha", action="cancel_all", **kw)


def with_bot(at: float, **status: object) -> Snapshot:
    bots = MappingProxyType({"alpha": BotStatus(name="alpha", **status)})  # type: ignore[arg-type]
    return snap(at, {"DU111111": {"daily_pnl": 0.0}}, bots=bots)


def run(r: Rule, snapshot: Snapshot, now: float, memory: RuleMemory) -> list[Breach]:
    return evaluate([r], snapshot, now, memory, accounts=ACCOUNTS)


def test_a_bot_silent_past_the_limit_breaches_once_with_the_rules_action() -> None:
    memory, r = RuleMemory(), silent_rule()
    assert run(r, with_bot(T0, last_seen=T0), T0 + 15.0, memory) == []  # exactly at the limit: not yet
    (breach,) = run(r, with_bot(T0, last_seen=T0), T0 + 15.01, memory)
    assert breach.kind is BreachKind.BREACH and breach.action is Action.CANCEL_ALL
    assert breach.value is not None and abs(breach.value - 15.01) < 1e-6
    assert breach.account is None  # judged once, not per account
    assert run(r, with_bot(T0, last_seen=T0), T0 + 20.0, memory) == []  # announced once


def test_a_heartbeat_postpones_the_breach() -> None:
    memory, r = RuleMemory(), silent_rule()
    assert run(r, with_bot(T0 + 10, last_seen=T0 + 10), T0 + 20.0, memory) == []
    status = memory.status()[0]
    assert status.state == "ok" and status.value == 10.0


def test_a_bot_never_heard_from_is_unknown_and_never_a_kill() -> None:
    memory, r = RuleMemory(), silent_rule(unknown_after="30s")
    assert run(r, with_bot(T0), T0, memory) == []
    (alert,) = run(r, with_bot(T0), T0 + 31, memory)
    assert alert.kind is BreachKind.UNKNOWN and alert.action is Action.ALERT
    assert "no heartbeat from bot alpha yet" in alert.message


def test_a_bot_missing_from_the_snapshot_is_unknown() -> None:
    memory, r = RuleMemory(), silent_rule()
    run(r, snap(T0, {"DU111111": {"daily_pnl": 0.0}}), T0 + 100, memory)
    status = memory.status()[0]
    assert status.state == "unknown" and "no heartbeat record" in status.why


def test_a_clean_stop_rests_the_rule_without_alerts_until_the_next_heartbeat() -> None:
    memory, r = RuleMemory(), silent_rule(unknown_after="30s")
    stopped = with_bot(T0, stopped_at=T0, status="stopped")
    assert run(r, stopped, T0 + 1, memory) == []
    assert run(r, stopped, T0 + 3600, memory) == []  # no kill, no "unknown" alert, ever
    assert memory.status()[0].state == "suspended" and "stopped cleanly" in memory.status()[0].why
    (breach,) = run(r, with_bot(T0, last_seen=T0 + 3600), T0 + 3616, memory)  # heartbeats again, then dies
    assert breach.kind is BreachKind.BREACH


def test_a_deaf_listener_reads_unknown_whatever_the_last_heartbeat() -> None:
    memory, r = RuleMemory(), silent_rule()
    deaf = with_bot(T0, last_seen=T0, unknown_reason="heartbeat listener not running")
    assert run(r, deaf, T0 + 100, memory) == []
    assert memory.status()[0].state == "unknown"


def test_for_delays_the_breach_like_any_other_rule() -> None:
    memory, r = RuleMemory(), silent_rule(**{"for": "5s"})
    assert run(r, with_bot(T0, last_seen=T0), T0 + 16, memory) == []
    assert run(r, with_bot(T0, last_seen=T0), T0 + 20, memory) == []
    (breach,) = run(r, with_bot(T0, last_seen=T0), T0 + 21.5, memory)
    assert breach.kind is BreachKind.BREACH
