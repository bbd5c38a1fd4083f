"""Attack 3: a dry-run kill that finds the gateway down stays pending forever."""

from __future__ import annotations

import asyncio

from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import FakeBook, stock
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.state.store import StateStore

T = 30.0


async def test_a_dry_run_kill_that_went_pending_is_cleared_once_it_has_run(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore
) -> None:
    book.add_position("DU1", stock(), 100)
    book.connected = False
    ks = make_switch(dry_run=True)
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "rule:x"), T)
    assert report.outcome is KillOutcome.PENDING
    book.connected = True
    done = await asyncio.wait_for(ks.run_pending(), T)
    assert done is not None and done.outcome is KillOutcome.DRY_RUN
    assert book.sent() == []
    assert store.trading_state() is TradingState.ARMED
    # the dry run has run: nothing may stay pending (it blocks re-arm and keeps `plan` STALE,
    # and it re-runs at every reconnect)
    assert store.pending_kill() is None
    assert await asyncio.wait_for(ks.run_pending(), T) is None


async def test_plan_made_after_a_dry_run_kill_resumed_and_ended_is_not_stale_for_it(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore
) -> None:
    from watchdog.commands.plan import overtaken
    from watchdog.commands.status import status_data

    book.add_position("DU1", stock(), 100)
    book.connected = False
    ks = make_switch(dry_run=True)
    await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "rule:x"), T)
    book.connected = True
    done = await asyncio.wait_for(ks.run_pending(), T)
    assert done is not None and done.outcome is KillOutcome.DRY_RUN
    later = {"planned_at": done.finished + 60}  # the daemon re-planned after the kill ended
    # seen: "a kill is pending (the gateway does not answer): planned before it" — every plan, forever
    assert overtaken(later, status_data(store.dir, book.clock)) is None
