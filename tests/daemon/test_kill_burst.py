"""A burst of manual triggers folds into the running kill: one kill, one notice, every trigger audited."""

from __future__ import annotations

import asyncio

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixtures)
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_a_hundred_sigusr1_in_a_burst_run_one_kill_with_one_notice(
    sim: Simulator,
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    sim.set_session("regular")
    d = await make_daemon(
        extra=f"notifications:\n  targets:\n    - url: json://127.0.0.1:{capture.port}/chat\n"
    )

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
    await until(lambda: any("[KILL]" in str(b.get("title", "")) for b in capture.snapshot()), 5, "the report")
    manual = [b for b in capture.snapshot() if "Manual kill" in str(b.get("title", ""))]
    assert len(manual) == 1
