"""cancel_all: global cancel, verification through fresh reads, retries, escalation."""

from __future__ import annotations

import asyncio

from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import FakeBook, stock
from watchdog.kill.switch import KillEvent, KillEventKind
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.state.store import StateStore

T = 10.0  # seconds; every kill in these tests finishes in virtual time, far below this


async def test_it_cancels_orders_of_other_clients_including_client_0(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    for client in (0, 1, 2, 3):
        book.add_order(client, "DU1", stock(), "BUY", 10)
    known = [o.view() for o in book.orders]
    report = await asyncio.wait_for(make_switch().kill(Action.CANCEL_ALL, "rule:loss", known_orders=known), T)
    assert report.outcome is KillOutcome.FLAT
    assert not [o for o in book.orders if o.working]
    assert {o.client_id for o in report.cancelled_orders} == {0, 1, 2, 3}
    assert [m.kind for m in book.sent()] == ["global_cancel"]


async def test_verification_catches_an_ignored_cancel_and_the_retry_removes_it(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    stubborn = book.add_order(2, "DU1", stock(), "SELL", 5, ignore_cancels=1)
    book.add_order(0, "DU1", stock(), "BUY", 5)
    report = await asyncio.wait_for(make_switch().kill(Action.CANCEL_ALL, "manual:SIGUSR2"), T)
    assert report.outcome is KillOutcome.FLAT
    assert stubborn.status == "Cancelled"
    assert [m.kind for m in book.sent()] == ["global_cancel", "global_cancel"]
    assert report.attempts == 2


async def test_an_own_straggler_is_also_cancelled_by_id(book: FakeBook, make_switch: MakeSwitch) -> None:
    mine = book.add_order(99, "DU1", stock(), "BUY", 5, ignore_cancels=1)
    report = await asyncio.wait_for(make_switch().kill(Action.CANCEL_ALL, "t"), T)
    assert report.outcome is KillOutcome.FLAT
    assert ("cancel_order", mine.order_id) in [(m.kind, m.detail) for m in book.sent()]


async def test_escalation_names_every_order_that_never_goes_away(
    book: FakeBook, make_switch: MakeSwitch, events: list[KillEvent]
) -> None:
    a = book.add_order(0, "DU1", stock(), "BUY", 7, ignore_cancels=100)
    b = book.add_order(3, "DU2", stock(5, "MSFT"), "SELL", 3, ignore_cancels=100)
    book.add_order(1, "DU1", stock(), "BUY", 1)
    report = await asyncio.wait_for(make_switch(max_attempts=3).kill(Action.CANCEL_ALL, "t"), T)
    assert report.outcome is KillOutcome.ESCALATED
    assert {o.perm_id for o in report.remaining_orders} == {a.perm_id, b.perm_id}
    assert f"perm {a.perm_id}" in report.reason and f"perm {b.perm_id}" in report.reason
    assert sum(m.kind == "global_cancel" for m in book.sent()) == 3
    escalated = [e for e in events if e.kind is KillEventKind.ESCALATED]
    assert escalated and escalated[-1].report is report


async def test_a_scoped_cancel_verifies_only_that_account(book: FakeBook, make_switch: MakeSwitch) -> None:
    book.add_order(0, "DU2", stock(), "BUY", 7, ignore_cancels=100)  # not in scope: may stay
    book.add_order(0, "DU1", stock(), "BUY", 7)
    report = await asyncio.wait_for(make_switch().kill(Action.CANCEL_ALL, "t", accounts=["DU1"]), T)
    assert report.outcome is KillOutcome.FLAT
    assert report.accounts == ("DU1",)


async def test_a_kill_latches_the_watchdog_tripped(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore
) -> None:
    report = await asyncio.wait_for(make_switch().kill(Action.CANCEL_ALL, "rule:x", reason="loss"), T)
    latch = StateStore(store.dir, lambda: 0.0).latch()
    assert latch.state is TradingState.TRIPPED
    assert (latch.trigger, latch.reason, latch.kill_id, latch.action) == (
        "rule:x",
        "loss",
        report.kill_id,
        Action.CANCEL_ALL,
    )
    assert store.pending_kill() is None
