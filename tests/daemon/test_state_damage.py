"""Damaged state files at start: never ARMED by accident, never a dry run by accident, start anyway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixtures)
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
GLOBAL_CANCEL, PLACE_ORDER = 58, 3


def notify_to(port: int) -> str:
    return f"""
notifications:
  targets:
    - url: json://127.0.0.1:{port}/chat
"""


async def test_a_null_latch_and_a_torn_baseline_start_tripped_audited_and_alerted(
    sim: Simulator,
    tmp_path: Path,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "latch.json").write_text("null")
    (state / "baseline.json").write_text('{"day_highs": [{"account": "DU1", "metric"')  # a torn write

    d = await make_daemon(extra=notify_to(capture.port))  # starts: a damaged cache never blocks it

    assert d.c.store.trading_state() is TradingState.TRIPPED
    corrupted = [r.details["file"] for r in d.c.audit.read() if r.event == "state.corrupted"]
    assert sorted(corrupted) == ["baseline.json", "latch.json"]
    await until(
        lambda: sum("State directory problem" in str(b.get("title", "")) for b in capture.snapshot()) >= 2,
        5,
        "a critical alert per damaged file",
    )


async def test_a_pending_kill_whose_dry_run_flag_is_a_string_runs_for_real(
    sim: Simulator, tmp_path: Path, make_daemon: DaemonFactory
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    pending = {"kill_id": "k1", "action": "cancel_all", "trigger": "manual", "dry_run": "false"}
    (state / "pending-kill.json").write_text(json.dumps(pending))
    sim.set_session("regular")

    d = await make_daemon()  # the pending kill starts once connected
    [report] = await d.wait_for_kills(timeout=30)

    assert not report.dry_run and report.action is Action.CLOSE_ALL  # fail-safe: a real close-all
    assert report.outcome is KillOutcome.FLAT, report.reason
    sent = {f.msg_id for f in sim.received(99)}
    assert GLOBAL_CANCEL in sent and PLACE_ORDER in sent
    assert not [p for p in sim.positions() if p.quantity]
    assert d.c.store.pending_kill() is None
    await asyncio.sleep(0)
