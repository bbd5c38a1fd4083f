"""The bench code itself works: a one-trial-each run produces every table (speed is not asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import run

pytestmark = pytest.mark.integration


def test_the_bench_smoke_run_writes_every_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "BENCHMARKS.md"
    assert run.main(["--tiny", "--output", str(out)]) == 0
    text = out.read_text()
    for title in ("Half-open detection", "Trigger to wire", "Flatten throughput", "Idle cost", "Scale",
                  "Alert latency", "Bot silent", "Pending kill"):  # fmt: skip
        assert f"{title}" in text
    assert "| CPU |" in text and "ib_async" in text
    # every table has its header separator and at least one data row
    assert text.count("|---|") >= 9
    assert "ib_async `Watchdog`" in text
    assert "n/a" not in text.split("## 1.")[1].split("## 2.")[0]  # every half-open trial produced a figure
    assert "verified flat" in text and "| yes |" in text  # the flatten run ended flat
    assert capsys.readouterr().out.startswith("# Benchmarks")
