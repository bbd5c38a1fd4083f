"""Reset races: refused while a kill runs or is pending, bound to the trip it was made for, expiring,
and the CLI's answer is the truth."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import FakeBook, FakeClock, stock
from watchdog.commands.reset import RESET_VALID, send_reset
from watchdog.daemon.control import ControlChannel
from watchdog.errors import ControlError
from watchdog.kill.switch import KillSwitch
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.state.store import StateStore

T = 30.0


def queue_reset(store: StateStore, ks: KillSwitch, *, at: float, discard: bool = False) -> None:
    """What `ibkr-watchdog reset` writes, bound to the latch it saw at `at`."""
    latch = store.reload_latch()
    store.put_request(
        "reset",
        {
            "request_id": f"r{at}",
            "reason": "checked",
            "who": "alice",
            "requested_at": at,
            "expires_at": at + RESET_VALID,
            "kill_id": latch.kill_id,
            "tripped_at": latch.tripped_at,
            "discard_pending": discard,
        },
    )


def refusals(ks: KillSwitch) -> list[str]:
    return [str(r.details["why"]) for r in ks.audit.read() if r.event == "reset.refused"]


async def test_a_reset_is_refused_while_a_kill_is_pending_unless_it_discards_it_audited(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(), 100)
    book.connected = False
    ks = make_switch()
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "rule:x"), T)
    assert report.outcome is KillOutcome.PENDING
    with pytest.raises(ControlError, match="pending"):
        ks.reset("looks fine", who="bob")
    assert ks.store.pending_kill() is not None and ks.store.trading_state() is TradingState.TRIPPED
    ks.reset("flattened by hand at the broker", who="bob", discard_pending=True)
    assert ks.store.pending_kill() is None and ks.store.trading_state() is TradingState.ARMED
    assert [r.event for r in ks.audit.read()][-2:] == ["pending.discarded", "reset"]


async def test_a_queued_reset_made_for_an_earlier_trip_never_rearms_a_later_one(
    book: FakeBook, make_switch: MakeSwitch, clock: FakeClock
) -> None:
    ks = make_switch()
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:first"), T)
    queue_reset(ks.store, ks, at=clock())  # made for the first trip ...
    ks.reset("ok", who="alice")  # ... which someone else already reset
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:second"), T)  # a new trip

    assert ControlChannel(ks.store, clock).process_requests(ks) == 0

    assert ks.store.trading_state() is TradingState.TRIPPED
    assert "another trip" in refusals(ks)[-1]


async def test_a_queued_reset_expires(book: FakeBook, make_switch: MakeSwitch, clock: FakeClock) -> None:
    ks = make_switch()
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), T)
    queue_reset(ks.store, ks, at=clock())
    clock.now += RESET_VALID + 1  # e.g. queued while the daemon was stopping; taken at its next start

    assert ControlChannel(ks.store, clock).process_requests(ks) == 0

    assert ks.store.trading_state() is TradingState.TRIPPED and "expired" in refusals(ks)[-1]


async def test_a_reset_queued_during_a_stop_never_discards_the_interrupted_kill_at_the_next_start(
    book: FakeBook, make_switch: MakeSwitch, clock: FakeClock
) -> None:
    book.add_position("DU1", stock(), 100)
    book.fill_chunk[1] = 1  # slow fills: the kill is still running when the stop comes
    ks = make_switch()
    task = asyncio.ensure_future(ks.kill(Action.CLOSE_ALL, "rule:x"))
    while not any(m.kind == "place_order" for m in book.messages):
        await clock.sleep(0.05)
    queue_reset(ks.store, ks, at=clock())  # typed while the daemon is stopping
    task.cancel()  # the stop interrupts the kill
    with pytest.raises(asyncio.CancelledError):
        await task

    restarted = make_switch(store_=StateStore(ks.store.dir, clock))  # the next start, on the same dir
    assert ControlChannel(restarted.store, clock).process_requests(restarted) == 0  # refused: pending

    assert "pending" in refusals(restarted)[-1]
    book.fill_chunk.clear()
    report = await asyncio.wait_for(restarted.run_pending(), T)
    assert report is not None and report.outcome is KillOutcome.FLAT and book.nonzero() == {}


def test_the_cli_reports_a_refusal_as_a_failure_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_switch: MakeSwitch, book: FakeBook
) -> None:
    book.add_position("DU1", stock(), 100)
    book.connected = False
    ks = make_switch()
    asyncio.run(asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "rule:x"), T))  # pending: the gateway is down
    channel = ControlChannel(ks.store)
    ks.store.write_pid(os.getpid())
    old = signal.signal(signal.SIGHUP, lambda _n, _f: channel.process_requests(ks))  # the daemon's reload
    try:
        assert send_reset(ks.store.dir, reason="all clear", pid=None, wait=5.0) == 1
    finally:
        signal.signal(signal.SIGHUP, old)
        ks.store.remove_pid()
    assert "refused" in capsys.readouterr().err and ks.store.trading_state() is TradingState.TRIPPED
