"""A stop in the middle of a kill: kept pending on disk, audited, alerted; resumed (and said so) at start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixtures)
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator
from watchdog.state.store import StateStore

pytestmark = pytest.mark.integration


def notify_to(port: int) -> str:
    return f"""
notifications:
  targets:
    - url: json://127.0.0.1:{port}/chat
"""


def titles(capture: Capture) -> list[str]:  # noqa: F811
    return [str(b.get("title", "")) for b in capture.snapshot()]


async def test_a_stop_during_a_kill_keeps_it_pending_and_it_resumes_at_the_next_start(
    sim: Simulator,
    tmp_path: Path,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    sim.set_session("regular")
    sim.faults.ignore_cancel(1000)  # the cancel phase keeps retrying: the stop lands mid-kill
    d = await make_daemon(extra=notify_to(capture.port))
    d.shutdown_grace = 0.3
    d.start_kill(Action.CLOSE_ALL, "manual:test", reason="stop test")
    await until(lambda: any(r.event == "cancel.verify" for r in d.c.audit.read()), 10, "the kill to verify")

    await asyncio.wait_for(d.stop(), 15)

    pending = StateStore(tmp_path / "state", lambda: 0.0).pending_kill()
    assert pending is not None and pending.interrupted == "stop" and pending.action is Action.CLOSE_ALL
    interrupted = [r for r in d.c.audit.read() if r.event == "kill.interrupted"]
    assert [r.kill_id for r in interrupted] == [pending.kill_id]
    assert any("interrupted" in str(b.get("message", "")) for b in capture.snapshot())

    sim.faults.clear()  # the next start: cancels work again
    d2 = await make_daemon(extra=notify_to(capture.port))
    [report] = await d2.wait_for_kills(timeout=30)

    assert report.kill_id == pending.kill_id and report.outcome is KillOutcome.FLAT, report.reason
    resumed = [r for r in d2.c.audit.read() if r.event == "kill.triggered" and r.details.get("resumed")]
    assert [r.kill_id for r in resumed] == [pending.kill_id]
    await until(lambda: any("[KILL RESUMING]" in t for t in titles(capture)), 5, "the resuming notice")
    assert not any("gateway down" in t for t in titles(capture)), titles(capture)
    assert not [p for p in sim.positions() if p.quantity]
