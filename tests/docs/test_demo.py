"""`ibkr-watchdog demo` as a user runs it: a subprocess, its exit status and its printed timeline.

The four scenarios run at the same time (each has its own simulator on an ephemeral port and its
own temporary state directory), so the module costs about as long as the slowest one (~7 s).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 55.0  # the demo promises to finish in under a minute
SCENARIOS = ("loss", "manual", "runaway", "dead-bot")


@dataclass(frozen=True, slots=True)
class DemoResult:
    returncode: int
    stdout: str
    stderr: str

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def index_of(self, pattern: str, after: int = -1) -> int:
        """Index of the first timeline line after `after` matching the regex; fails with the output."""
        rx = re.compile(pattern)
        for i, line in enumerate(self.lines()):
            if i > after and rx.search(line):
                return i
        raise AssertionError(
            f"no line matching {pattern!r} after line {after} in:\n{self.stdout}\n{self.stderr}"
        )

    def in_order(self, *patterns: str) -> list[int]:
        at = -1
        found = []
        for p in patterns:
            at = self.index_of(p, at)
            found.append(at)
        return found


def _demo_args(scenario: str | None) -> list[str]:
    args = [sys.executable, "-m", "watchdog", "demo"]
    return args if scenario is None else [*args, "--scenario", scenario]


@pytest.fixture(scope="module")
def demos() -> Iterator[dict[str, DemoResult]]:
    """Start every scenario at once, then collect each under the demo's own one-minute promise."""
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name in SCENARIOS:
            # `loss` is the default: run it exactly as `make demo` does, with no --scenario
            procs[name] = subprocess.Popen(
                _demo_args(None if name == "loss" else name),
                cwd=REPO,  # the demo reads ./rules.yaml, the repository's example config
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        results = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=DEMO_TIMEOUT)
            results[name] = DemoResult(proc.returncode, out, err)
        yield results
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)


def test_the_default_demo_breaches_the_loss_limit_closes_everything_and_verifies_flat(
    demos: dict[str, DemoResult],
) -> None:
    r = demos["loss"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.lines()[0] == "ibkr-watchdog demo — daily loss limit → close all"
    r.in_order(
        r"simulator listening on 127\.0\.0\.1:\d+ \(paper accounts DU111111, DU222222\)",
        r"connected to the gateway; watching DU111111, DU222222",
        r"rule daily-loss warning: .*80% of the way",
        r"! rule daily-loss breach: .*daily_pnl of DU111111",
        r"‼ kill close_all from rule:daily-loss",
        r"global cancel sent",
        r"close attempt 1: 3 closing order\(s\)",
        r"SELL 200 AAPL DU111111 MKT on SMART sent as order \d+",
        r"SELL 2 ESZ6 DU111111 MKT on CME sent as order \d+",
        r"0 position\(s\) still open",
        r"kill [0-9a-f]+: flat after [\d.]+s, \d+ orders cancelled, 3 closing orders",
        r"simulator truth for DU111111: 0 open positions, 0 working orders",
        r"latch: TRIPPED",
    )
    assert re.fullmatch(r"PASS: daily loss limit → close all \([\d.]+s\)", r.lines()[-1])


def test_the_manual_demo_closes_both_accounts_on_sigusr1(demos: dict[str, DemoResult]) -> None:
    r = demos["manual"]
    assert r.returncode == 0, r.stdout + r.stderr
    r.in_order(
        r"operator sends SIGUSR1",
        r"kill close_all from manual:SIGUSR1",
        r"global cancel sent",
        r"close attempt 1: 5 closing order\(s\)",
        r"SELL 50 SPY DU222222 MKT on SMART",
        r"BUY 3 MESZ6 DU222222 MKT on CME",
        r"simulator truth for DU111111, DU222222: 0 open positions, 0 working orders",
        r"latch: TRIPPED",
    )
    assert r.lines()[-1].startswith("PASS: manual SIGUSR1 → close all")


def test_the_runaway_demo_cancels_all_and_the_lockout_cancels_the_next_order(
    demos: dict[str, DemoResult],
) -> None:
    r = demos["runaway"]
    assert r.returncode == 0, r.stdout + r.stderr
    r.in_order(
        r"a runaway bot \(client 7\) starts firing orders",
        r"rule runaway-orders breach: .*orders_per_minute of DU111111",
        r"kill cancel_all from rule:runaway-orders",
        r"global cancel sent",
        r"the bot tries once more while the watchdog is tripped",
        r"lockout: 1 new risk-increasing order",
        r"lockout cancelled the new order",
    )
    assert "close attempt" not in r.stdout  # cancel_all never sends a closing order
    assert "sent as order" not in r.stdout
    assert r.lines()[-1].startswith("PASS: runaway order loop → cancel all + lockout")


def test_the_dead_bot_demo_leaves_a_clean_stop_alone_and_cancels_after_a_kill_9(
    demos: dict[str, DemoResult],
) -> None:
    r = demos["dead-bot"]
    assert r.returncode == 0, r.stdout + r.stderr
    r.in_order(
        r"bot alpha \(pid \d+, client 7\) trades DU111111",
        r"bot beta \(pid \d+, client 8\) trades DU222222",
        r"beta shuts down cleanly",
        r"bot beta stopped cleanly: dead-man disarmed",
        r"4\.5s later: no kill, (\d+) working orders",
        r"alpha crashes: kill -9 \d+",
        r"rule alpha-silent breach: alpha-silent: bot_silence = [34]\.",
        r"kill cancel_all from rule:alpha-silent",
        r"global cancel sent",
        r"started [34]\.\d+s after alpha's last heartbeat: flat, 0 working orders left in DU111111",
    )
    assert "beta-silent breach" not in r.stdout
    assert r.lines()[-1].startswith("PASS: a bot killed with -9")


def test_an_unknown_demo_scenario_is_refused_with_exit_2() -> None:
    proc = subprocess.run(
        _demo_args("no-such-scenario"), cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 2
    assert "unknown scenario 'no-such-scenario'" in proc.stderr
    assert "loss, manual, half-open, margin, runaway, dead-bot" in proc.stderr


def test_demo_outside_a_checkout_says_what_to_do_in_two_lines_and_exits_2(tmp_path: Path) -> None:
    """Run from a folder without rules.yaml (an installed copy): no traceback, exit 2, the fix named."""
    done = subprocess.run(
        _demo_args(None), cwd=tmp_path, capture_output=True, text=True, timeout=DEMO_TIMEOUT, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "rules.yaml" in done.stderr
    assert "--config FILE" in done.stderr
