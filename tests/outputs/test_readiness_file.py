"""`readiness.json` read back by `plan`: a strict schema (any damage is one line), verdicts derived from
the problems listed, and whether the plan is current judged from its age and the daemon."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.outputs.test_readiness_outputs import NOW, readiness
from watchdog.commands.plan import overtaken
from watchdog.kill.readiness import readiness_json
from watchdog.outputs.readiness_file import judge_currency, parse_plan
from watchdog.outputs.readiness_table import render_plan
from watchdog.readiness_model import PlanReason


def good(*reasons: PlanReason) -> dict[str, Any]:
    return readiness_json(readiness(*reasons), interval=60.0)


def raw(data: Any) -> bytes:
    return json.dumps(data).encode()


def test_a_plan_the_daemon_wrote_reads_back_unchanged() -> None:
    data = good(PlanReason.NO_PRICE)
    assert parse_plan(raw(data)) == data


def damage(path: str, value: Any) -> bytes:
    data = good()
    *parents, last = path.split(".")
    node: Any = data
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[last] = value
    return raw(data)


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        (damage("accounts", {"DU1": {}}), "accounts: Input should be a valid list"),
        (damage("accounts", "DU1"), "accounts: Input should be a valid list"),
        (damage("accounts.0.positions", "x"), "accounts.0.positions: Input should be a valid list"),
        (damage("accounts.0.problems", [1]), "accounts.0.problems.0:"),
        (damage("ready", "false"), "ready: Input should be a valid boolean"),
        (damage("planned_at", "1700000000"), "planned_at: Input should be a valid number"),
        (damage("accounts.0.positions.0.quantity", True), "quantity: Input should be a valid number"),
        (damage("accounts.0.extra", 1), "accounts.0.extra: Extra inputs are not permitted"),
        (damage("accounts.0.problems", [{"reason": "bogus", "detail": ""}]), "reason: Input should be"),
        (raw(good()).replace(b'"planned_at": 1700000000.0', b'"planned_at": NaN'), "NaN is not a number"),
        (raw(good()).replace(b'"planned_at": 1700000000.0', b'"planned_at": 1e999'), "finite number"),
        (b'{"version": 1, "version": 1}', "the key 'version' appears twice"),
        (raw([good()]), "the top level is a JSON list, not an object"),
        (b'{"version": 1', "Expecting"),
    ],
)
def test_any_damage_is_one_line_naming_what(broken: bytes, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as caught:
        parse_plan(broken)
    assert "\n" not in str(caught.value)


def test_the_verdict_comes_from_the_problems_never_from_a_stored_flag() -> None:
    data = good(PlanReason.NO_PRICE)
    data["ready"] = True
    data["accounts"][0]["ready"] = True
    data["accounts"][0]["positions"][0]["would_close"] = True
    plan = parse_plan(raw(data))
    assert plan["ready"] is False and plan["accounts"][0]["ready"] is False
    assert plan["accounts"][0]["positions"][0]["would_close"] is False
    assert render_plan(plan, now=NOW).startswith("Kill readiness: NOT READY")
    # a problem counted for a position beyond the listed ones (omitted) still makes the account not ready
    data = good()
    data["accounts"][1]["problem_counts"] = {"no_price": 1}
    data["accounts"][1]["omitted"] = 1
    assert parse_plan(raw(data))["ready"] is False


def currency(age: float, *, daemon: bool = True, kill: bool = False, source: str = "daemon") -> str | None:
    plan = good() | {"source": source}
    return judge_currency(plan, now=NOW + age, daemon_running=daemon, kill_running=kill).stale


def test_a_plan_is_current_only_while_the_daemon_runs_no_kill_pauses_it_and_it_is_on_time() -> None:
    assert currency(44) is None
    assert currency(44, daemon=False) == "daemon not running"
    assert currency(5, kill=True) == "paused while a kill runs"
    assert currency(131) == "plan 2m11s old (interval 60s)"
    assert currency(-3600) == "planned 60m00s in the future (a clock was changed?)"
    assert currency(1, daemon=False, source="gateway") is None  # a one-off look is current when made


def test_the_table_says_stale_and_why_and_no_position_is_called_fresh() -> None:
    plan = parse_plan(raw(good()))
    text = render_plan(plan, now=NOW + 44, stale="daemon not running")
    assert text.startswith("Kill readiness: STALE — daemon not running; the last plan said READY")
    assert "(fresh)" not in text
    assert "DU2: ready if writable — write access not proven yet · positions read 45s ago (STALE)" in text
    text = render_plan(plan, now=NOW - 3600, stale="planned 60m00s in the future (a clock was changed?)")
    assert "(60m00s in the future)" in text and "(0s ago)" not in text


def test_a_read_only_look_never_calls_an_account_ready_and_a_proof_shows_its_age() -> None:
    plan = parse_plan(raw(good() | {"source": "gateway"}))
    text = render_plan(plan, now=NOW + 1)
    assert text.startswith("Kill readiness: READY IF WRITABLE")
    assert "DU2: ready if writable — write access not proven in a read-only look · positions" in text
    data = good()
    for a in data["accounts"]:
        a["write_access"], a["write_access_as_of"] = True, NOW - 30
    data["accounts"][0]["write_access"] = False
    text = render_plan(parse_plan(raw(data)), now=NOW + 1)
    assert "DU1: NOT READY · write access READ-ONLY (found 31s ago) · " in text
    assert "DU2: ready · write access proven 31s ago · " in text


def test_a_plan_overtaken_by_a_pending_kill_an_outage_or_a_later_kill_is_stale() -> None:
    """A walkthrough saw `plan` say READY (exit 0) with the gateway refusing connections and a kill
    pending, and after a kill had closed everything, still listing the closed positions as fresh."""
    plan = good()
    running = {"pending_kill": None, "gateway_down_seconds": None, "silent": False, "last_kill": None}
    assert overtaken(plan, running) is None
    pending = overtaken(plan, running | {"pending_kill": {"kill_id": "k1"}})
    assert pending == "a kill is pending (the gateway does not answer): planned before it"
    assert (
        overtaken(plan, running | {"gateway_down_seconds": 20.0}) == "the gateway is down now: planned before"
    )
    after = {"kill_id": "k1", "finished": NOW + 5}
    assert (
        overtaken(plan, running | {"last_kill": after})
        == "planned before the last kill ended: the book has changed since"
    )
    before = {"kill_id": "k0", "finished": NOW - 5}
    assert overtaken(plan, running | {"last_kill": before}) is None
    stale = judge_currency(plan, now=NOW + 1, daemon_running=True, kill_running=False, overtaken=pending)
    assert stale.stale == pending
