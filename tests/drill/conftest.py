"""Helpers for the drill tests: `ibkr-watchdog drill` as a real process, its three report files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "rules.yaml"


@dataclass
class DrillRun:
    returncode: int
    stdout: str
    stderr: str
    report_dir: Path

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.report_dir / "drill.json").read_text(encoding="utf-8"))
        return data

    def scenario(self, sid: str) -> dict[str, Any]:
        return next(s for s in self.json()["scenarios"] if s["id"] == sid)


def run_drill(cwd: Path, *args: str, timeout: float = 150.0) -> DrillRun:
    """`python -m watchdog drill ARGS --report cwd/report` in `cwd` (so a relative state_dir is fresh)."""
    report = cwd / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", "drill", *args, "--report", str(report)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return DrillRun(proc.returncode, proc.stdout, proc.stderr, report)


def example_with(tmp_path: Path, old: str, new: str, name: str = "rules.yaml") -> Path:
    """The example config with one text replaced (the replacement must apply)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path
