"""`ibkr-watchdog drill` as an operator runs it: a real process, the example config, three report files."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.drill.conftest import EXAMPLE, DrillRun, example_with, run_drill

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def example_drill(tmp_path_factory: pytest.TempPathFactory) -> DrillRun:
    """The whole standard drill on the repository's rules.yaml (about 40 s on 2 cores)."""
    return run_drill(tmp_path_factory.mktemp("drill"), "--config", str(EXAMPLE))


@pytest.mark.timeout(170)
def test_the_example_config_passes_every_scenario_and_writes_three_reports(example_drill: DrillRun) -> None:
    run = example_drill
    assert run.returncode == 0, run.stdout + run.stderr
    assert {p.name for p in run.report_dir.iterdir()} >= {"drill.md", "drill.json", "drill.html"}
    data = run.json()
    assert data["result"] == "pass"
    verdicts = {s["id"]: s["verdict"] for s in data["scenarios"]}
    assert set(verdicts.values()) == {"pass"}, verdicts
    # every enabled rule of the example, and the standard scenarios, each judged
    assert {
        "rule-daily-loss",
        "rule-drawdown",
        "rule-margin-squeeze",
        "rule-runaway-orders",
        "rule-fill-storm",
        "rule-gateway-down",
        "rule-stale-data",
        "rule-slow-heartbeat",
        "manual-kill",
        "reject-retry",
        "market-closed-part",
        "half-open-mid-close",
        "kill-9-restart",
    } <= set(verdicts)
    assert data["config"]["sha256"] == __import__("hashlib").sha256(EXAMPLE.read_bytes()).hexdigest()
    assert set(data["versions"]) >= {"ibkr-watchdog", "ib_async", "python"}
    assert data["rules_never_fired"] == [
        {"rule": "flatten-before-close", "why": "disabled in the config (not rehearsed)"}
    ]
    assert data["summary"].endswith("RESULT: PASS")
    assert data["summary"] in run.stdout


@pytest.mark.timeout(170)
def test_each_kill_is_timed_from_trigger_to_wire_and_flat_without_over_close(example_drill: DrillRun) -> None:
    kills = [s for s in example_drill.json()["scenarios"] if s["action"] in ("close_all", "cancel_all")]
    assert len(kills) >= 8
    for s in kills:
        assert s["trigger_to_first_cancel_ms"] is not None, s["id"]
        assert s["first_cancel_at"] >= s["trigger_at"], s["id"]
        assert s["orders_sent"]["reqGlobalCancel"] >= 1, s["id"]
        assert s["over_close"] == [], s["id"]
        assert any("KILL" in m["title"] for m in s["messages"]), s["id"]
    manual = example_drill.scenario("manual-kill")
    assert (
        manual["outcome"] == "flat" and manual["orders_sent"]["placeOrder"] == 5
    )  # the demo book's 5 positions
    assert example_drill.scenario("market-closed-part")["outcome"] == "escalated"  # the option cannot trade
    half_open = example_drill.scenario("half-open-mid-close")
    assert any(c["name"].startswith("the kill was kept pending") and c["ok"] for c in half_open["checks"])


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(f"{tag} {name}={value}")


@pytest.mark.timeout(170)
def test_the_html_page_is_self_contained_with_a_timeline_chart_per_scenario(example_drill: DrillRun) -> None:
    html = (example_drill.report_dir / "drill.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    assert page.external == []  # no external asset: it opens the same from an archive
    assert "script" not in page.tags and "link" not in page.tags
    ran = [s for s in example_drill.json()["scenarios"] if s["events"]]
    assert page.tags.count("svg") >= len(ran)  # one chart per scenario (and a zoom on a short kill)
    for s in ran:
        chart = html.index(f'id="{s["id"]}"')
        assert "<svg" in html[chart : html.index("</h3>", chart) + 400], s["id"]
    assert "RESULT: PASS" in html and "<style>" in html


@pytest.mark.timeout(170)
def test_the_markdown_report_has_the_summary_digest_book_and_timelines(example_drill: DrillRun) -> None:
    md = (example_drill.report_dir / "drill.md").read_text(encoding="utf-8")
    data = example_drill.json()
    assert data["summary"] in md
    assert data["config"]["sha256"] in md
    for heading in ("## Book used", "## Results", "## Findings", "## Rules that never fired", "## Scenarios"):
        assert heading in md
    assert md.count("| t (s) | kind | event |") == len([s for s in data["scenarios"] if s["events"]])
    assert re.search(r"kill.verify_timeout 10 s → 2 s", md)  # the drill says what it changed


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.timeout(170)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium) is not installed")
def test_headless_chromium_renders_the_page_to_a_screenshot(example_drill: DrillRun, tmp_path: Path) -> None:
    shot = tmp_path / "drill.png"
    page = (example_drill.report_dir / "drill.html").resolve()
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1100,2400",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == 1100  # IHDR width: the window we asked for
    assert len(png) > 50_000  # tables, badges and charts drawn: a blank page compresses to a few kB


def test_one_attempt_against_a_rejecting_venue_fails_the_drill(tmp_path: Path) -> None:
    config = example_with(tmp_path, "max_attempts: 3", "max_attempts: 1")
    run = run_drill(tmp_path, "--config", str(config), "--only", "reject-retry", timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    scenario = run.scenario("reject-retry")
    assert scenario["verdict"] == "fail"
    assert scenario["outcome"] == "escalated"
    failed = [c["name"] for c in scenario["checks"] if not c["ok"]]
    assert "the kill verified flat" in failed
    assert run.json()["summary"].endswith("RESULT: PARTIAL FAIL")


def test_a_loss_limit_larger_than_the_account_is_a_finding(tmp_path: Path) -> None:
    config = example_with(tmp_path, '"daily_pnl <= -2500"', '"daily_pnl <= -5000000"')
    run = run_drill(tmp_path, "--config", str(config), "--only", "rule-daily-loss", timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    data = run.json()
    assert run.scenario("rule-daily-loss")["verdict"] == "finding"
    [finding] = data["findings"]
    assert finding.startswith("rule daily-loss: cannot fire") and "larger than the whole account" in finding
    assert any(n["rule"] == "daily-loss" for n in data["rules_never_fired"])


def test_a_damaged_book_snapshot_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "book.json").write_text("{torn")
    run = run_drill(tmp_path, "--config", str(EXAMPLE), "--book", "state", timeout=60)
    assert run.returncode == 2
    assert "book.json is damaged" in run.stderr
    assert not run.report_dir.exists()


def test_an_unknown_scenario_id_is_a_usage_error(tmp_path: Path) -> None:
    run = run_drill(tmp_path, "--config", str(EXAMPLE), "--only", "no-such-thing", timeout=60)
    assert run.returncode == 2 and "manual-kill" in run.stderr


def test_without_notify_the_operators_targets_hear_nothing(
    tmp_path: Path, inbox: tuple[int, list[dict[str, object]]]
) -> None:
    port, bodies = inbox
    config = example_with(
        tmp_path, "  targets: []", f"  targets: [{{url: 'json://127.0.0.1:{port}/oncall'}}]"
    )
    config.chmod(0o600)
    run = run_drill(tmp_path, "--config", str(config), "--only", "manual-kill")
    assert run.returncode == 0, run.stdout + run.stderr
    assert bodies == []
    assert any("KILL" in m["title"] for m in run.scenario("manual-kill")["messages"])  # the drill's own copy


def test_notify_reaches_the_operators_targets_in_one_scenario_only(
    tmp_path: Path, inbox: tuple[int, list[dict[str, object]]]
) -> None:
    port, bodies = inbox
    config = example_with(
        tmp_path, "  targets: []", f"  targets: [{{url: 'json://127.0.0.1:{port}/oncall'}}]"
    )
    config.chmod(0o600)
    run = run_drill(
        tmp_path, "--config", str(config), "--notify", "--only", "rule-daily-loss", "--only", "manual-kill"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    kills = [str(b["title"]) for b in bodies if "[KILL DONE]" in str(b.get("title", ""))]
    assert len(kills) == 1, kills  # not the rule's kill too
    assert kills[0].endswith("[KILL DONE] close_all by manual:SIGUSR1 on DU111111, DU222222"), kills
    assert any("KILL" in m["title"] for m in run.scenario("rule-daily-loss")["messages"])  # captured anyway


BOT_TOKEN = "0123456789abcdef0123"


def test_a_silent_bot_is_rehearsed_through_its_heartbeat_and_the_token_stays_out_of_the_report(
    tmp_path: Path,
) -> None:
    config = example_with(
        tmp_path,
        "# and among the rules below:",
        f"bots:\n  listen: 127.0.0.1:9110\n  heartbeats:\n    - name: alpha\n      token: {BOT_TOKEN}\n"
        "      accounts: [DU111111]\n# and among the rules below:",
    )
    text = config.read_text().replace(
        "rules:\n  - name: daily-loss",
        'rules:\n  - name: alpha-silent\n    when: "bot_silence > 15s"\n    bot: alpha\n'
        "    action: cancel_all\n\n  - name: daily-loss",
    )
    config.write_text(text)
    config.chmod(0o600)
    run = run_drill(
        tmp_path, "--config", str(config), "--only", "rule-alpha-silent", "--only", "kill-9-restart"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    silent = run.scenario("rule-alpha-silent")
    assert any(e["text"].startswith("bot alpha heartbeats once (HTTP 204)") for e in silent["events"])
    assert silent["outcome"] == "flat" and silent["orders_sent"]["placeOrder"] == 0
    kill = "[KILL DONE] cancel_all by rule:alpha-silent on DU111111"
    assert any(kill in m["title"] for m in silent["messages"])
    assert run.scenario("kill-9-restart")["verdict"] == "pass"  # the real processes load the bots' tokens
    restart = {c["name"]: c["ok"] for c in run.scenario("kill-9-restart")["checks"]}
    assert restart["global cancel on the wire after the trigger"] is True
    for name in ("drill.md", "drill.json", "drill.html"):
        assert BOT_TOKEN not in (run.report_dir / name).read_text(encoding="utf-8")


def test_a_scenario_file_is_the_book_rehearsed(tmp_path: Path) -> None:
    book = tmp_path / "my-book.yaml"
    book.write_text(
        "name: my-book\naccounts: [DU111111, DU222222]\nprices: {MSFT: 410.0, ES: 5100.0}\n"
        "positions:\n"
        "  - {account: DU111111, symbol: MSFT, quantity: 300, avg_cost: 400.0}\n"
        "  - {account: DU222222, symbol: ES, quantity: -4, avg_cost: 256000}\n"
        "orders:\n"
        "  - {client_id: 7, account: DU111111, symbol: MSFT, action: BUY, quantity: 10, order_type: LMT,"
        " lmt_price: 300.0}\n"
        "timeline:\n  - {at: 1s, set_price: {symbol: MSFT, price: 1.0}}\n"
    )
    run = run_drill(
        tmp_path, "--config", str(EXAMPLE), "--book", "scenario", str(book), "--only", "manual-kill"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = run.json()
    assert data["book"]["source"] == "scenario" and data["book"]["origin"] == str(book)
    assert [(p["symbol"], p["quantity"]) for p in data["book"]["positions"]] == [("MSFT", 300), ("ESZ6", -4)]
    assert any("timeline is not played" in n for n in data["book"]["notes"])
    placed = [
        e["text"].split(": ", 1)[1]  # without the order id
        for e in run.scenario("manual-kill")["events"]
        if e["text"].startswith("placeOrder")
    ]
    assert sorted(placed) == ["BUY 4 ESZ6 MKT", "SELL 300 MSFT MKT"]  # exactly the file's book, closed
