"""The report is evidence: it never claims what the drill did not check (issue 18 review)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.drill.conftest import EXAMPLE, closed_port, example_with, run_drill

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_notify_records_each_real_targets_outcome_and_fails_naming_a_dead_one(
    tmp_path: Path, inbox: tuple[int, list[dict[str, object]]]
) -> None:
    port, bodies = inbox
    dead = closed_port()
    config = example_with(
        tmp_path,
        "  targets: []",
        f"  targets: [{{url: 'json://127.0.0.1:{port}/oncall'}}, {{url: 'json://127.0.0.1:{dead}/pager'}}]",
    )
    config.chmod(0o600)
    run = run_drill(tmp_path, "--config", str(config), "--notify", "--only", "manual-kill", timeout=90)
    assert run.returncode == 1, run.stdout + run.stderr
    assert any(str(b.get("title", "")).startswith("[KILL") for b in bodies)  # the live one heard it
    scenario = run.scenario("manual-kill")
    assert scenario["verdict"] == "fail"
    failed = [c for c in scenario["checks"] if not c["ok"]]
    assert [c["name"].split(" received")[0] for c in failed] == [
        f"on-call target notifications.targets[1] json://127.0.0.1:{dead}/…"
    ]
    outcome = {t["target"]: t["ok"] for t in run.json()["on_call_targets"]}
    assert outcome == {
        f"notifications.targets[0] json://127.0.0.1:{port}/…": True,
        f"notifications.targets[1] json://127.0.0.1:{dead}/…": False,
    }
    md = (run.report_dir / "drill.md").read_text(encoding="utf-8")
    assert f"notifications.targets[1] json://127.0.0.1:{dead}/… FAILED" in md
    assert "/pager" not in md and "/oncall" not in md  # shown redacted


def test_a_partial_drill_says_partial_everywhere_and_never_plain_pass(tmp_path: Path) -> None:
    run = run_drill(tmp_path, "--config", str(EXAMPLE), "--only", "manual-kill", timeout=90)
    assert run.returncode == 0, run.stdout + run.stderr
    data = run.json()
    assert data["result"] == "partial-pass" and data["partial"] is True
    assert "reject-retry" in data["scenarios_skipped"] and "manual-kill" not in data["scenarios_skipped"]
    summary = data["summary"]
    assert summary.endswith("RESULT: PARTIAL PASS") and summary in run.stdout
    assert "ran 1 of " in summary and "(manual-kill); skipped rule-daily-loss" in summary
    for name in ("drill.md", "drill.json", "drill.html"):
        text = (run.report_dir / name).read_text(encoding="utf-8")
        assert "PARTIAL" in text and "RESULT: PASS" not in text, name
    assert (run.report_dir / "drill.md").read_text(encoding="utf-8").startswith("# Fire drill — PARTIAL PASS")


def test_the_report_shows_the_book_the_simulator_held_not_the_files_rows(tmp_path: Path) -> None:
    book = tmp_path / "dup.yaml"
    book.write_text(
        "name: dup\naccounts: [DU111111, DU222222]\n"
        "positions:\n"
        "  - {account: DU111111, symbol: AAPL, quantity: 200}\n"
        "  - {account: DU111111, symbol: AAPL, quantity: 100}\n"
        "  - {account: DU222222, symbol: SPY, quantity: 50}\n"
        "orders:\n"  # the watchdog's own client id (rules.yaml: 99): its orders are left out
        "  - {client_id: 99, account: DU111111, symbol: AAPL, action: SELL, quantity: 5, order_type: LMT,"
        " lmt_price: 900.0}\n"
        "  - {client_id: 7, account: DU111111, symbol: AAPL, action: BUY, quantity: 10, order_type: LMT,"
        " lmt_price: 100.0}\n"
    )
    run = run_drill(
        tmp_path, "--config", str(EXAMPLE), "--book", "scenario", str(book), "--only", "manual-kill"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    used = run.json()["book"]
    assert sorted((p["account"], p["symbol"], p["quantity"]) for p in used["positions"]) == [
        ("DU111111", "AAPL", 100),  # the simulator kept the last row, not the sum
        ("DU222222", "SPY", 50),
    ]
    assert [(o["client_id"], o["action"], o["remaining"]) for o in used["orders"]] == [(7, "BUY", 10)]
    notes = " | ".join(used["notes"])
    assert "positions[1] repeats AAPL in DU111111" in notes
    assert "left out a working order of the watchdog's own client id" in notes
    placed = [e["text"] for e in run.scenario("manual-kill")["events"] if e["text"].startswith("placeOrder")]
    assert any(t.endswith("SELL 100 AAPL MKT") for t in placed), placed
    md = (run.report_dir / "drill.md").read_text(encoding="utf-8")
    assert "| DU111111 | AAPL | 100 |" in md and "| DU111111 | AAPL | 300 |" not in md


def test_close_all_scenarios_on_a_flat_book_are_not_driven_never_verified(tmp_path: Path) -> None:
    book = tmp_path / "flat.yaml"
    book.write_text("name: flat\naccounts: [DU111111, DU222222]\npositions: []\n")
    ids = ["rule-daily-loss", "manual-kill", "market-closed-part", "half-open-mid-close", "reject-retry"]
    run = run_drill(
        tmp_path,
        "--config",
        str(EXAMPLE),
        "--book",
        "scenario",
        str(book),
        *[a for i in ids for a in ("--only", i)],
    )
    for sid in ids:
        scenario = run.scenario(sid)
        assert scenario["verdict"] == "not driven", (sid, scenario["summary"])
        assert (
            scenario["summary"] == "not driven: the book has no positions (a close-all has nothing to close)"
        )
        assert scenario["checks"] == [] and scenario["outcome"] == ""
    summary = run.json()["summary"]
    assert "0/5 scenarios passed" in summary and "5 not driven" in summary
    assert "kill verified in 0/0 kill scenarios" in summary


def test_a_kill_that_escalated_as_expected_is_never_called_done_or_verified(tmp_path: Path) -> None:
    run = run_drill(tmp_path, "--config", str(EXAMPLE), "--only", "market-closed-part", timeout=90)
    scenario = run.scenario("market-closed-part")
    assert scenario["verdict"] == "pass" and scenario["outcome"] == "escalated", scenario["summary"]
    # the options stay (escalated by name): the book in scope is never done, whatever the open part did
    assert scenario["flat_at"] is None and scenario["trigger_to_flat_s"] is None
    assert not [e for e in scenario["events"] if e["kind"] == "flat"]
    assert "simulator: no working order left" in [c["name"] for c in scenario["checks"]]
    open_part = [
        e for e in scenario["events"] if e["text"].startswith("simulator: every position in an open")
    ]
    assert len(open_part) == 1
    working_orders_gone = max(  # the last cancel or fill the wire/book shows comes before "open part done"
        (e["t"] for e in scenario["events"] if e["kind"] == "fill"), default=0.0
    )
    assert open_part[0]["t"] >= working_orders_gone
    assert "kill verified in 0/1 kill scenarios" in run.json()["summary"]


def test_a_manual_kill_is_timed_from_the_operators_command_not_the_daemons_log_line(tmp_path: Path) -> None:
    run = run_drill(tmp_path, "--config", str(EXAMPLE), "--only", "manual-kill", timeout=90)
    scenario = run.scenario("manual-kill")
    events = scenario["events"]
    asked = next(e["t"] for e in events if e["text"].startswith("operator runs: ibkr-watchdog kill"))
    daemon = next(e["t"] for e in events if e["kind"] == "kill" and " from manual:" in e["text"])
    assert scenario["trigger_at"] == pytest.approx(asked, abs=0.002)
    assert daemon > scenario["trigger_at"] + 0.05  # the command's start-up and signal are counted
    assert scenario["trigger_to_first_cancel_ms"] >= (daemon - asked) * 1000


def test_a_rules_scenario_rehearses_its_own_kill_and_names_a_rule_that_breached_first(tmp_path: Path) -> None:
    config = example_with(
        tmp_path,
        "rules:\n  - name: daily-loss",
        'rules:\n  - name: tight-loss\n    when: "daily_pnl <= -2000"\n    action: close_all\n\n'
        "  - name: daily-loss",
    )
    run = run_drill(tmp_path, "--config", str(config), "--only", "rule-daily-loss", timeout=90)
    assert run.returncode == 0, run.stdout + run.stderr
    scenario = run.scenario("rule-daily-loss")
    checks = {c["name"]: c["ok"] for c in scenario["checks"]}
    assert checks["the kill was triggered by this rule (rule:daily-loss)"] is True
    assert "tight-loss breached first on the same values" in scenario["summary"]
    assert any(
        e["text"].startswith("on the driven values tight-loss breached first") for e in scenario["events"]
    )
    assert any("the other kill rules alert instead" in o for o in run.json()["overrides"])


@pytest.mark.timeout(90)
def test_a_rule_that_did_not_fire_in_time_says_so_and_why(tmp_path: Path) -> None:
    """A sign slip is a finding before any rehearsal; a rule that needs more evaluations than the
    drill gives reads 'did not fire within 20 s', never 'failed: the rule fired'."""
    sign = example_with(tmp_path, '"daily_pnl <= -2500"', '"drawdown <= -100"', name="sign.yaml")
    run = run_drill(tmp_path, "--config", str(sign), "--only", "rule-daily-loss", timeout=60)
    scenario = run.scenario("rule-daily-loss")
    assert scenario["verdict"] == "finding" and "a sign slip? drawdown >= 100" in scenario["summary"]
    slow = example_with(
        tmp_path, "    for: 2s                        # must", "    consecutive: 1000 #", "slow.yaml"
    )
    run = run_drill(tmp_path, "--config", str(slow), "--only", "rule-daily-loss", timeout=80)
    scenario = run.scenario("rule-daily-loss")
    assert scenario["verdict"] == "fail"
    assert scenario["summary"].startswith("failed: the rule did not fire within 20 s")
    assert "consecutive: 1000 asks for that many evaluations" in scenario["summary"]


def test_a_drill_without_notify_needs_no_notification_secret(tmp_path: Path) -> None:
    config = example_with(tmp_path, "  targets: []", "  targets: [{url: '${DRILL_TEST_UNSET_NOTIFY_URL}'}]")
    config.chmod(0o600)
    run = run_drill(tmp_path, "--config", str(config), "--only", "manual-kill", timeout=90)
    assert run.returncode == 0, run.stdout + run.stderr
    assert any("targets and urls_file were not read (no --notify)" in o for o in run.json()["overrides"])
    run = run_drill(tmp_path, "--config", str(config), "--notify", "--only", "manual-kill", timeout=60)
    assert run.returncode == 2 and "DRILL_TEST_UNSET_NOTIFY_URL" in run.stderr  # --notify needs it
