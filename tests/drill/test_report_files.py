"""The report directory: checked before the drill runs, written atomically, links never followed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.drill.conftest import EXAMPLE
from watchdog.drill.command import report_target_problem, write_reports
from watchdog.drill.report import REPORT_NAMES, DrillReport


def _drill(cwd: Path, report: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "drill", "--config", str(EXAMPLE), "--report", str(report), *more],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_report_target_that_cannot_hold_the_report_is_refused_before_any_scenario(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    full = tmp_path / "earlier"
    full.mkdir()
    (full / "drill.md").write_text("last year's evidence")
    for target, why in (
        (afile, "exists and is not a directory"),
        (afile / "sub", "cannot be created"),
        (full, "is not empty (an earlier report?)"),
    ):
        started = time.monotonic()
        proc = _drill(tmp_path, target, "--only", "manual-kill")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert why in proc.stderr and "RESULT" not in proc.stdout
        assert time.monotonic() - started < 10  # refused at once, not after the drill
    assert (full / "drill.md").read_text() == "last year's evidence"


def test_the_checks_of_the_target(tmp_path: Path) -> None:
    assert report_target_problem(tmp_path / "new" / "deeper", force=False) == ""
    assert report_target_problem(tmp_path, force=False) == ""  # empty
    (tmp_path / "x").write_text("")
    assert "not empty" in report_target_problem(tmp_path, force=False)
    assert report_target_problem(tmp_path, force=True) == ""


def _report() -> DrillReport:
    return DrillReport(
        config_path="rules.yaml",
        digest="0" * 64,
        started=0.0,
        finished=1.0,
        versions={"ibkr-watchdog": "x"},
        book={
            "source": "demo",
            "origin": "built-in demo book",
            "accounts": [],
            "positions": [],
            "orders": [],
            "notes": [],
        },
        kill_settings={},
        overrides=[],
        results=[],
    )


def test_a_link_planted_under_a_reports_name_is_replaced_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "drill.json").symlink_to(victim)
    paths = write_reports(_report(), out)
    assert victim.read_text() == "precious"
    assert not (out / "drill.json").is_symlink()
    assert json.loads((out / "drill.json").read_text())["config"]["path"] == "rules.yaml"
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_NAMES)  # no temporary file left
    assert [p.name for p in paths] == list(REPORT_NAMES)
