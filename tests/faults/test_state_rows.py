"""Fault matrix, state and control rows (issue 12, issue 15 item 5 and 9): damaged state files at start,
a stop in the middle of a kill, a burst of manual triggers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.faults.conftest import DaemonFactory, Row, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixtures)
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.sim import Simulator
from watchdog.state.store import StateStore

pytestmark = [pytest.mark.fault, pytest.mark.integration]
GLOBAL_CANCEL, PLACE_ORDER = 58, 3


def chat(cap: Capture) -> tuple[str, ...]:
    return (f"json://127.0.0.1:{cap.port}/chat",)


def said(cap: Capture, fragment: str) -> list[str]:
    return [
        f"{b.get('title', '')} {b.get('message', '')}"
        for b in cap.snapshot()
        if fragment in f"{b.get('title', '')} {b.get('message', '')}"
    ]


async def test_a_null_latch_and_a_torn_baseline_start_tripped_audited_and_alerted(
    sim: Simulator,
    tmp_path: Path,
    make_daemon: DaemonFactory,
    row: Row,
    caplog: pytest.LogCaptureFixture,
    capture: Capture,  # noqa: F811
) -> None:
    state = tmp_path / "state-a"
    state.mkdir()
    (state / "latch.json").write_text("null")
    (state / "baseline.json").write_text('{"day_highs": [{"account": "DU1", "metric"')  # a torn write

    d = await make_daemon(notify_urls=chat(capture))  # starts: a damaged cache never blocks a start

    assert d.c.store.trading_state() is TradingState.TRIPPED
    corrupted = [r.details["file"] for r in d.c.audit.read() if r.event == "state.corrupted"]
    assert sorted(corrupted) == ["baseline.json", "latch.json"]
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    await until(lambda: len(said(capture, "State directory problem")) >= 2, 5, "a critical alert per file")
    row.no_over_close()
    Row.message(caplog, "latch file unusable", "TRIPPED")


async def test_a_pending_kill_whose_dry_run_flag_is_a_string_runs_for_real(
    sim: Simulator, tmp_path: Path, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state-a"
    state.mkdir()
    pending = {"kill_id": "k1", "action": "cancel_all", "trigger": "manual", "dry_run": "false"}
    (state / "pending-kill.json").write_text(json.dumps(pending))

    d = await make_daemon()  # the pending kill starts once connected
    await until(lambda: d.c.store.pending_kill() is None and not d.kill_in_progress, 30, "the pending kill")

    [report] = d.kill_reports
    assert not report.dry_run and report.action is Action.CLOSE_ALL  # fail-safe: a real close-all
    assert report.outcome is KillOutcome.FLAT, report.reason
    assert {GLOBAL_CANCEL, PLACE_ORDER} <= {f.msg_id for f in sim.received(99)}
    row.no_over_close()
    Row.audit(d, ["state.corrupted", "kill.triggered", "kill.finished"])
    Row.message(caplog, "pending kill file unusable", "close-all")


async def test_a_stop_during_a_kill_keeps_it_pending_and_it_resumes_at_the_next_start(
    sim: Simulator,
    tmp_path: Path,
    make_daemon: DaemonFactory,
    row: Row,
    caplog: pytest.LogCaptureFixture,
    capture: Capture,  # noqa: F811
) -> None:
    sim.faults.ignore_cancel(1000)  # the cancel phase keeps retrying: the stop lands mid-kill
    d = await make_daemon(notify_urls=chat(capture))
    d.shutdown_grace = 0.3
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="stop test")
    await until(lambda: any(r.event == "cancel.verify" for r in d.c.audit.read()), 10, "the kill to verify")

    await asyncio.wait_for(d.stop(), 15)

    pending = StateStore(tmp_path / "state-a", lambda: 0.0).pending_kill()
    assert pending is not None and pending.interrupted == "stop" and pending.action is Action.CLOSE_ALL
    assert [r.kill_id for r in d.c.audit.read() if r.event == "kill.interrupted"] == [pending.kill_id]
    await until(lambda: bool(said(capture, "interrupted by a stop")), 5, "the critical notice")
    Row.message(caplog, "interrupted by a stop", "resumes at start")

    sim.faults.clear()  # the next start: cancels work again
    d2 = await make_daemon(notify_urls=chat(capture))
    await until(lambda: d2.c.store.pending_kill() is None and not d2.kill_in_progress, 30, "the resumed kill")

    [report] = d2.kill_reports
    assert report.kill_id == pending.kill_id and report.outcome is KillOutcome.FLAT, report.reason
    resumed = [r for r in d2.c.audit.read() if r.event == "kill.triggered" and r.details.get("resumed")]
    assert [r.kill_id for r in resumed] == [pending.kill_id]
    await until(lambda: bool(said(capture, "[KILL RESUMING]")), 5, "the resuming notice")
    assert not said(capture, "gateway down")
    assert Row.metric(d2, "ibkr_watchdog_kill_pending") == 0.0
    row.no_over_close()


async def test_a_hundred_sigusr1_in_a_burst_run_one_kill_with_one_notice(
    sim: Simulator,
    make_daemon: DaemonFactory,
    row: Row,
    caplog: pytest.LogCaptureFixture,
    capture: Capture,  # noqa: F811
) -> None:
    d = await make_daemon(notify_urls=chat(capture))
    serving = asyncio.ensure_future(d.serve())  # the main loop that acts on signal requests
    d.request_kill(Action.CLOSE_ALL, "manual:SIGUSR1", "")  # what the SIGUSR1 handler does
    await until(lambda: d.kill_in_progress, 5, "the kill to start")
    for _ in range(99):  # the rest of the burst lands while the kill runs
        d.request_kill(Action.CLOSE_ALL, "manual:SIGUSR1", "")
    await until(lambda: not d.kill_in_progress and d.kill_reports != [], 30, "the kill to end")
    d.request_stop()
    await asyncio.wait_for(serving, 5)

    assert [r.outcome for r in d.kill_reports] == [KillOutcome.FLAT]
    folded = [r for r in d.c.audit.read() if r.event == "kill.folded"]
    assert len(folded) == 99
    # under the running kill's id: `kill --wait` of a folded trigger follows that kill
    assert {r.kill_id for r in folded} == {d.kill_reports[0].kill_id}
    await until(lambda: bool(said(capture, "[KILL DONE]")), 5, "the kill report")
    assert len(said(capture, "[KILL STARTED]")) == 1
    assert (
        Row.metric(d, "ibkr_watchdog_kills_total", {"action": "close_all", "trigger": "manual:SIGUSR1"})
        == 1.0
    )
    row.no_over_close()
    Row.message(caplog, "folded into the running manual kill")


async def test_a_dry_run_manual_kill_never_pages_that_the_watchdog_is_cancelling(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    """Issue 14: the DRY RUN "KILL STARTED" page said "The watchdog is cancelling now"."""
    d = await make_daemon(
        notify_urls=chat(capture), kill="verify_timeout: 2s\nmax_attempts: 3\ndry_run: true"
    )
    serving = asyncio.ensure_future(d.serve())
    d.request_kill(Action.CLOSE_ALL, "manual:SIGUSR1", "drill")  # what the SIGUSR1 handler does
    await until(lambda: bool(said(capture, "[KILL STARTED]")), 10, "the start page")
    await until(lambda: not d.kill_in_progress and d.kill_reports != [], 30, "the kill to end")
    d.request_stop()
    await asyncio.wait_for(serving, 5)

    [started] = said(capture, "[KILL STARTED]")
    assert "DRY RUN: nothing is cancelled or closed" in started and "cancelling now" not in started, started
