"""Attack 3: `kill --wait` of a manual close-all signalled while a rule's cancel-only kill holds the
switch and the first manual close-all is queued behind it."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.daemon.conftest import DaemonFactory, until
from watchdog.commands.kill import wait_for_outcome
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator


async def test_kill_wait_of_a_second_close_all_follows_the_close_all_not_the_rule_cancel_only_kill(
    sim: Simulator, make_daemon: DaemonFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    d = await make_daemon()
    sim.faults.delay({53}, 1.0)  # openOrderEnd late: the rule kill's verify reads take a while
    rule_kill = d.start_kill(Action.CANCEL_ALL, "rule:margin", reason="cushion < 5%")
    await until(lambda: d.c.killswitch.running_kill_id is not None, 5, "the rule kill to hold the switch")
    rule_id = d.c.killswitch.running_kill_id
    # operator 1: SIGUSR1 (queued behind the rule kill); operator 2, a moment later: `kill --wait`
    d.request_kill(Action.CLOSE_ALL, "manual:SIGUSR1", "desk 1")
    d._handle_kill_requests()
    since = time.time()
    d.request_kill(Action.CLOSE_ALL, "manual:SIGUSR1", "desk 2")
    d._handle_kill_requests()
    sim.faults.clear_delays()
    await asyncio.wait_for(rule_kill, 30)
    await until(lambda: not d.kill_in_progress and len(d.kill_reports) == 2, 30, "both kills to end")
    rule, manual = d.kill_reports
    assert rule.kill_id == rule_id and rule.action is Action.CANCEL_ALL
    assert manual.action is Action.CLOSE_ALL and manual.outcome is KillOutcome.FLAT
    # the second close-all is recorded (folded) under the cancel-only rule kill that held the switch;
    # seen: `kill --wait` followed that kill and exited 0 on "positions not closed" before the
    # close-all ran. It now follows the close-all that runs after it (as the CLI calls it)
    capsys.readouterr()
    rc = await asyncio.to_thread(
        wait_for_outcome,
        d.c.store.dir,
        since=since,
        timeout=1,
        sleep=lambda _: None,
        action="close_all",
        reason="desk 2",
    )
    out = capsys.readouterr().out
    assert manual.kill_id in out and "positions not closed" not in out, out
    assert rc == 0
