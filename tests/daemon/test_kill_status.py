"""`status` while a kill runs: KILL RUNNING with its live orders, never the crash-insurance PENDING."""

from __future__ import annotations

import asyncio
import io

import pytest

from tests.daemon.conftest import DaemonFactory, until
from watchdog.commands.status import EXIT_TRIPPED, show_status
from watchdog.daemon.kill_status import FRESH, kill_lines, running_kill
from watchdog.model import Action
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_status_during_a_kill_says_kill_running_and_names_each_live_order_with_its_state(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    d = await make_daemon()
    await asyncio.wait_for(d.poll_once(), 10)
    bot = sim.place_order_as(7, "DU111111", "AAPL", "SELL", 5, lmt_price=999.0)
    sim.faults.cancel_pending(100, after=2.0, then="cancel")  # every cancel PendingCancel for 2 s
    ks = d.c.killswitch
    kill = asyncio.ensure_future(ks.kill(Action.CANCEL_ALL, "manual:SIGUSR1", reason="by hand"))
    await until(lambda: bool((ks.progress() or {}).get("live_orders")), 10, "the kill's first read")
    await asyncio.wait_for(d.poll_once(), 10)  # the daemon's cycle writes status.json
    out = io.StringIO()
    # a kill in progress: someone must look (the pending file is there as crash insurance)
    assert show_status(d.c.store.dir, as_json=False, out=out) == EXIT_TRIPPED
    text = out.getvalue()
    await asyncio.wait_for(kill, 20)
    assert ks.progress() is None  # the next status.json names no kill

    assert "KILL RUNNING: cancel_all from manual:SIGUSR1" in text and "attempt 1" in text, text
    assert "PENDING" not in text, text  # the pending file exists (crash insurance), but nothing waits
    [line] = [x for x in text.splitlines() if f"order {bot}," in x and "client 7" in x]
    assert line.startswith("  live order:") and "[PendingCancel]" in line, text


PENDING = {"action": "close_all", "trigger": "rule:loss", "created_at": 0.0, "interrupted": ""}
RUNNING = {"kill_id": "k1", "action": "close_all", "trigger": "rule:loss", "since": 0.0, "attempt": 2}


def test_a_pending_kill_says_why_it_waits() -> None:
    down = {"gateway": {"health": "down"}, "kill": None}
    [line] = kill_lines({"daemon_pid": 5, "pending_kill": PENDING, "status": down, "status_age_seconds": 1})
    assert line.startswith("PENDING (gateway unusable (down)")
    [line] = kill_lines({"daemon_pid": None, "pending_kill": PENDING | {"interrupted": "stop"}})
    assert line.startswith("PENDING (interrupted by a stop; the daemon is not running")


def test_a_kill_is_running_only_by_a_fresh_status_of_a_live_daemon() -> None:
    status = {"gateway": {"health": "healthy"}, "kill": RUNNING | {"live_orders": []}}
    live = {"daemon_pid": 5, "pending_kill": PENDING, "status": status, "status_age_seconds": 1}
    assert kill_lines(live)[0].startswith("KILL RUNNING: close_all from rule:loss (kill k1, since ")
    assert kill_lines(live)[1] == "  live orders: none in scope"
    stale = kill_lines(live | {"status_age_seconds": FRESH + 1})  # a dead daemon's last word
    assert "KILL RUNNING" not in " ".join(stale) and stale[0].startswith("PENDING")


def test_a_kill_that_ended_after_the_last_status_write_is_not_running() -> None:
    """status.json is rewritten at most once a second; the last-kill record is written when the kill
    ends. In between, `plan` said "STALE — paused while a kill runs" for a kill already finished
    (the README runner's `plan` right after a `kill` failed with exit 5 under load)."""
    kill = {"kill_id": "k1", "action": "close_all", "since": 1000.0}
    data = {"daemon_pid": 42, "status_age_seconds": 0.4, "status": {"kill": kill}, "last_kill": None}
    assert running_kill(data) == kill
    data["last_kill"] = {"kill_id": "k0", "finished": 990.0}  # an earlier kill: this one still runs
    assert running_kill(data) == kill
    data["last_kill"] = {"kill_id": "k1", "finished": 1003.0}
    assert running_kill(data) is None
