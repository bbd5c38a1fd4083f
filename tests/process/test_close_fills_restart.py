"""Attack review of issue 14: closing fills across `kill -9` and the resumed kill (real processes)."""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.process.conftest import (
    Launcher,
    NotifySocket,
    cli,
    start_ready,
    status_json,
    until,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_fills_before_and_after_a_kill_9_are_all_under_the_resumed_kill_once_each(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    sim.fill.fill_delay = 1.0
    sim.fill.partial_fills = 3
    config = write_config(tmp_path, sim.port)
    first = await start_ready(launch, config, notify)
    first.send(signal.SIGUSR1)
    await until(lambda: len(first.events("close.order")) == 5, 15, "the closing orders")
    placed = lambda: [f for f in sim.received(99) if f.msg_id == 3]  # noqa: E731
    await until(lambda: len(placed()) >= 5, 10, "the closing orders at the simulator")
    sim.fill.fill_delay = 600.0
    await until(lambda: len(sim.executions()) == 5, 10, "the first piece of each closing order")
    # the dead process heard (and audited) some of them, or none: either way the next must find them
    first.send(signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL
    kill_id = (await status_json(config))["pending_kill"]["kill_id"]
    sim.fill.fill_delay = 0.2

    second = await start_ready(launch, config, notify)
    await until(lambda: bool(second.events("kill.finished")), 30, "the resumed kill to finish")
    truth = {e.exec_id: e for e in sim.executions() if e.client_id == 99}
    assert len(truth) > 5
    await until(
        lambda: {r.details["exec_id"] for r in second.events("close.fill")} >= set(truth),
        10,
        "every closing execution in the audit",
    )
    assert {r.kill_id for r in second.events("close.fill")} == {kill_id}

    rc, out, err = await cli("report", kill_id, "--config", str(config))
    assert rc == 0, err
    listed = Counter(re.findall(r"exec (\S+?),", out))
    assert listed == Counter(set(truth)), out  # each execution once, none missing
    for oid in {e.order_id for e in truth.values()}:
        shares = sum(e.shares for e in truth.values() if e.order_id == oid)
        at = out.index(f"closing order {oid}:")
        total = re.search(r"filled (\S+)", out[at:])
        assert total is not None and float(total.group(1)) == shares, (oid, out)
    assert await second.stop() == 0
