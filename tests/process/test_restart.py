"""State across real process restarts: the latch and its lockout survive, reset re-arms, and a close-all
interrupted by `kill -9` is finished by the next process without ever over-closing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.process.conftest import (
    Launcher,
    NotifySocket,
    assert_flat_without_crossing_zero,
    cli,
    start_ready,
    status_json,
    until,
    watched_orders,
    watched_positions,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


def _bot_order(sim: Simulator, price: float) -> int:
    return sim.place_order_as(7, "DU111111", "AAPL", "BUY", 10, "LMT", lmt_price=price)


def _working(sim: Simulator, order_id: int) -> bool:
    return any(o.client_id == 7 and o.order_id == order_id for o in sim.open_orders())


async def test_the_latch_survives_a_restart_locks_out_new_orders_and_reset_rearms(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    config = write_config(tmp_path, sim.port)
    first = await start_ready(launch, config, notify)
    first.send(signal.SIGUSR2)
    await until(lambda: bool(first.events("kill.finished")), 15, "the kill to finish")
    assert await first.stop() == 0

    second = await start_ready(launch, config, notify)
    status = await status_json(config)
    assert status["latch"]["state"] == "tripped"
    assert status["latch"]["trigger"] == "manual:SIGUSR2"
    assert status["daemon_pid"] == second.pid

    # lockout: a bot's new order is cancelled again by the new process
    locked = _bot_order(sim, 100.0)
    await until(lambda: not _working(sim, locked), 10, "the lockout to cancel the new order")
    assert second.events("lockout.detected"), second.stderr

    rc, out, err = await cli("reset", "--reason", "bot fixed, checked the book", "--config", str(config))
    assert rc == 0, err + second.stderr
    assert f"pid {second.pid}" in out
    status = await status_json(config)
    assert status["latch"]["state"] == "armed"
    [reset] = second.events("reset")
    assert reset.details["reason"] == "bot fixed, checked the book"

    # armed again: a new order is left alone. Sync on the daemon's own cycle: wait until its
    # status shows the order (the orders poll saw it), then two more evaluations.
    before = len(second.events("lockout.detected"))
    free = _bot_order(sim, 101.0)
    expected = len(sim.open_orders())
    await until(lambda: second.status_file().get("open_orders") == expected, 10, "the order in the status")
    await second.next_status(cycles=2)
    assert _working(sim, free)
    assert len(second.events("lockout.detected")) == before
    assert await second.stop() == 0


async def test_kill_9_during_a_close_all_is_finished_after_restart_without_over_closing(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    start = watched_positions(sim)
    sim.fill.fill_delay = 1.0
    sim.fill.partial_fills = 3  # closing orders fill in pieces, the first one second after placing
    config = write_config(tmp_path, sim.port)
    first = await start_ready(launch, config, notify)
    first.send(signal.SIGUSR1)
    await until(lambda: len(first.events("close.order")) == 5, 15, "the closing orders")
    # an audited close.order may still wait in ib_async's pacing window (readiness look-ups share
    # it): the first pieces are timed only once the simulator holds all five orders
    placed = lambda: [f for f in sim.received(99) if f.msg_id == 3]  # noqa: E731 (placeOrder frames)
    await until(lambda: len(placed()) >= 5, 10, "the closing orders at the simulator")
    # each order's first piece is already timed; every later piece is timed with this delay:
    # the book stays part-closed, with the dead process's part-filled orders still working
    sim.fill.fill_delay = 600.0
    await until(lambda: len(sim.executions()) == 5, 10, "the first piece of each closing order")

    first.send(signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL
    assert first.events("kill.finished") == []
    pending = (await status_json(config))["pending_kill"]
    assert pending is not None and pending["action"] == "close_all"
    left = watched_positions(sim)
    assert left, "the book must still be open when the process dies"
    assert any(o.client_id == 99 and o.filled for o in sim.open_orders()), (
        "part-filled closing orders work on"
    )
    sim.fill.fill_delay = 0.2

    second = await start_ready(launch, config, notify)
    await until(lambda: bool(second.events("kill.finished")), 30, "the resumed kill to finish")

    [finished] = second.events("kill.finished")
    assert finished.details["outcome"] == "flat", second.stderr
    assert finished.kill_id == pending["kill_id"]  # the same kill, resumed
    # it closed exactly what was left, nothing more
    audit = second.audit()
    restart = max(i for i, r in enumerate(audit) if r.event == "kill.triggered")
    resumed = {
        (req["account"], req["contract"]["con_id"]): req["quantity"]
        for req in (r.details["request"] for r in audit[restart:] if r.event == "close.order")
    }
    assert resumed == {k: abs(q) for k, q in left.items()}
    await until(lambda: not watched_orders(sim), 5, "no working order left")
    assert_flat_without_crossing_zero(sim, start)
    status = await status_json(config)
    assert status["pending_kill"] is None
    assert status["latch"]["state"] == "tripped"
    assert await second.stop() == 0
