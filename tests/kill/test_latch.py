"""Latch, lockout, reset, dry run, pending kills, and a kill that outlives its audit disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import WATCHDOG_REF, FakeBook, FakeClock, stock
from watchdog.errors import ControlError
from watchdog.kill.switch import KillEvent, KillEventKind
from watchdog.model import Action, KillOutcome, TradingState
from watchdog.state.audit import AuditLog, read_audit
from watchdog.state.store import LATCH_FILE, StateStore

T = 30.0


async def test_lockout_cancels_an_order_placed_after_the_kill_but_not_our_closing_orders(
    book: FakeBook, make_switch: MakeSwitch, events: list[KillEvent]
) -> None:
    ks = make_switch()
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), T)
    assert ks.store.trading_state() is TradingState.TRIPPED
    mine = book.add_order(99, "DU1", stock(), "SELL", 5, lmt_price=500.0, order_ref=f"{WATCHDOG_REF}:k")
    assert await asyncio.wait_for(ks.enforce_lockout([mine.view()], []), T) == 0
    new = book.add_order(1, "DU1", stock(), "BUY", 10)
    n = await asyncio.wait_for(ks.enforce_lockout([o.view() for o in book.orders if o.working], []), T)
    assert n == 1 and new.status == "Cancelled"
    assert any(e.kind is KillEventKind.LOCKOUT for e in events)


async def test_lockout_does_nothing_while_armed(book: FakeBook, make_switch: MakeSwitch) -> None:
    new = book.add_order(1, "DU1", stock(), "BUY", 10)
    assert await asyncio.wait_for(make_switch().enforce_lockout([new.view()], []), T) == 0
    assert new.working and book.sent() == []


async def test_lockout_flatten_closes_only_what_grew_after_a_cancel_only_kill(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(1), 100)  # kept by a cancel-only kill
    ks = make_switch(lockout_flatten=True)
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), T)
    book.positions[("DU1", 1)] = 130  # someone bought 30 more while tripped
    book.add_position("DU1", stock(2, "MSFT"), -5)
    positions = await book_positions(book)
    await asyncio.wait_for(ks.enforce_lockout([], positions), T)
    assert book.nonzero() == {("DU1", 1): 100}
    assert book.violations == []


async def book_positions(book: FakeBook) -> list:  # type: ignore[type-arg]
    from tests.kill.fakes import FakeBroker

    return await FakeBroker(book).positions()


async def test_reset_rearms_audited_and_announced(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore, events: list[KillEvent]
) -> None:
    ks = make_switch()
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), T)
    ks.reset("checked the account", who="alice")
    assert StateStore(store.dir, lambda: 0.0).latch().state is TradingState.ARMED
    assert read_audit(store.audit_path)[-1].details["who"] == "alice"
    assert events[-1].kind is KillEventKind.RESET


async def test_reset_is_refused_while_a_kill_runs(book: FakeBook, make_switch: MakeSwitch) -> None:
    book.add_position("DU1", stock(), 100)
    book.fill_chunk[1] = 1
    ks = make_switch()
    task = asyncio.ensure_future(ks.kill(Action.CLOSE_ALL, "t"))
    await asyncio.wait_for(wait_until(lambda: ks.busy, book.clock), T)
    with pytest.raises(ControlError):
        ks.reset("no", who="bob")
    await asyncio.wait_for(task, T)


async def wait_until(pred: object, clock: FakeClock) -> None:
    while not pred():  # type: ignore[operator]
        await clock.sleep(0.01)


async def test_automatic_rearm_skips_a_pending_kill(book: FakeBook, make_switch: MakeSwitch) -> None:
    book.connected = False
    ks = make_switch()
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "t"), T)
    assert report.outcome is KillOutcome.PENDING
    assert ks.rearm() is False and ks.store.trading_state() is TradingState.TRIPPED
    book.connected = True
    await asyncio.wait_for(ks.run_pending(), T)
    assert ks.rearm() is True and ks.store.trading_state() is TradingState.ARMED


async def test_dry_run_sends_no_order_message_but_plans_audits_and_announces(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore, events: list[KillEvent]
) -> None:
    book.add_position("DU1", stock(), 100)
    book.add_order(0, "DU1", stock(), "BUY", 10)
    ks = make_switch(dry_run=True)
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "rule:x"), T)
    assert report.outcome is KillOutcome.DRY_RUN and report.dry_run
    assert [(r.action, r.quantity, r.order_type) for r in report.close_orders] == [("SELL", 100, "MKT")]
    assert len(report.cancelled_orders) == 1
    assert book.sent() == [] and book.nonzero() == {("DU1", 1): 100}
    assert store.trading_state() is TradingState.ARMED  # a dry run never latches the real state
    assert store.last_kill() is not None and store.last_kill()["dry_run"] is True  # type: ignore[index]
    kinds = [e.kind for e in events]
    assert (
        KillEventKind.TRIGGERED in kinds
        and KillEventKind.CLOSE_SENT in kinds
        and kinds[-1] is KillEventKind.FINISHED
    )
    assert all(e.dry_run for e in events)
    assert {"kill.triggered", "cancel.global", "close.order", "kill.finished"} <= {
        r.event for r in read_audit(store.audit_path)
    }


async def test_gateway_down_at_the_kill_makes_it_pending_and_it_runs_on_reconnect(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore, events: list[KillEvent]
) -> None:
    book.add_position("DU1", stock(), 100)
    book.connected = False
    report = await asyncio.wait_for(make_switch().kill(Action.CLOSE_ALL, "rule:x"), T)
    assert report.outcome is KillOutcome.PENDING
    assert next(e for e in events if e.kind is KillEventKind.PENDING).severity.value == "critical"
    # the daemon restarts while the gateway is still down: the pending kill is on disk
    restarted = make_switch(store_=StateStore(store.dir, book.clock))
    assert await asyncio.wait_for(restarted.run_pending(), T) is None  # still down: nothing to do
    book.connected = True
    done = await asyncio.wait_for(restarted.run_pending(), T)
    assert done is not None and done.outcome is KillOutcome.FLAT and done.kill_id == report.kill_id
    assert book.nonzero() == {} and restarted.store.pending_kill() is None


async def test_a_disconnect_mid_kill_goes_pending_and_finishes_flat_without_overclosing(
    book: FakeBook, make_switch: MakeSwitch
) -> None:
    book.add_position("DU1", stock(1), 100)
    book.add_position("DU1", stock(2, "MSFT"), -50)
    book.fill_chunk[1] = 30
    book.fail_at_call = 7  # after the cancel phase, in the middle of placing and verifying
    ks = make_switch()
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "t"), T)
    assert report.outcome is KillOutcome.PENDING
    book.connected = True
    done = await asyncio.wait_for(ks.run_pending(), T)
    assert done is not None and done.outcome is KillOutcome.FLAT
    assert book.nonzero() == {} and book.violations == []


async def test_a_kill_interrupted_by_a_restart_resumes_from_the_pending_record(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore
) -> None:
    book.add_position("DU1", stock(), 100)
    book.fill_chunk[1] = 10
    task = asyncio.ensure_future(make_switch().kill(Action.CLOSE_ALL, "t"))
    await asyncio.wait_for(
        wait_until(lambda: book.sent(99)[-1].kind == "place_order" if book.sent() else False, book.clock), T
    )
    task.cancel()  # kill -9 of the daemon, as far as the kill is concerned
    with pytest.raises(asyncio.CancelledError):
        await task
    restarted = make_switch(store_=StateStore(store.dir, book.clock))
    assert restarted.store.trading_state() is TradingState.TRIPPED
    done = await asyncio.wait_for(restarted.run_pending(), T)
    assert done is not None and done.outcome is KillOutcome.FLAT
    assert book.violations == []


async def test_a_kill_completes_when_the_audit_disk_fails_and_the_failure_is_reported(
    book: FakeBook, make_switch: MakeSwitch, tmp_path: Path, clock: FakeClock
) -> None:
    book.add_position("DU1", stock(), 100)
    (tmp_path / "full").write_text("")
    problems: list[str] = []
    broken = AuditLog(tmp_path / "full" / "audit.jsonl", clock, on_error=problems.append)
    report = await asyncio.wait_for(make_switch(audit_=broken).kill(Action.CLOSE_ALL, "t"), T)
    assert report.outcome is KillOutcome.FLAT and book.nonzero() == {}
    assert broken.failures > 3 and problems


async def test_an_event_callback_that_raises_never_breaks_the_kill(
    book: FakeBook, store: StateStore, audit: AuditLog, clock: FakeClock
) -> None:
    from tests.kill.conftest import kill_config
    from tests.kill.fakes import FakeBroker
    from watchdog.kill.switch import KillSwitch

    def explode(event: KillEvent) -> None:
        raise RuntimeError("notifier down")

    book.add_position("DU1", stock(), 100)
    ks = KillSwitch(
        FakeBroker(book), kill_config(), store, audit, clock=clock, sleep=clock.sleep, on_event=explode
    )
    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "t"), T)
    assert report.outcome is KillOutcome.FLAT


async def test_audit_records_follow_the_steps_in_order(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore
) -> None:
    book.add_position("DU1", stock(), 100)
    report = await asyncio.wait_for(make_switch().kill(Action.CLOSE_ALL, "rule:x", reason="loss"), T)
    recs = [r for r in read_audit(store.audit_path) if r.kill_id == report.kill_id]
    events = [r.event for r in recs]
    assert events[0] == "kill.triggered" and events[-1] == "kill.finished"
    assert events.index("cancel.global") < events.index("cancel.verify") < events.index("close.plan")
    assert events.index("close.plan") < events.index("close.order") < events.index("close.verify")
    order = next(r for r in recs if r.event == "close.order")
    assert isinstance(order.details["order_id"], int) and order.details["request"]["quantity"] == 100
    assert [r.ts for r in recs] == sorted(r.ts for r in recs)


async def test_a_damaged_latch_starts_tripped_and_is_announced(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore, events: list[KillEvent]
) -> None:
    store.dir.mkdir(parents=True, exist_ok=True)
    (store.dir / LATCH_FILE).write_text("{half a fi")
    ks = make_switch(store_=StateStore(store.dir, book.clock))
    ks.audit_damage()  # the daemon's start (and every entry point) reads, audits and announces
    assert ks.store.trading_state() is TradingState.TRIPPED
    assert events and events[0].kind is KillEventKind.STATE_PROBLEM
    assert [r.details["file"] for r in ks.audit.read() if r.event == "state.corrupted"] == [LATCH_FILE]
    new = book.add_order(1, "DU1", stock(), "BUY", 1)
    assert await asyncio.wait_for(ks.enforce_lockout([new.view()], []), T) == 1
    assert len([e for e in events if e.kind is KillEventKind.STATE_PROBLEM]) == 1  # once, not per call


async def test_lockout_announces_a_new_order_once_and_recancels_it_only_if_it_outlives_the_cancel(
    book: FakeBook, make_switch: MakeSwitch, events: list[KillEvent], clock: FakeClock
) -> None:
    ks = make_switch()
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), T)
    stubborn = book.add_order(1, "DU1", stock(), "BUY", 10, ignore_cancels=1)
    stale_view = [stubborn.view()]  # the daemon's snapshot lags: it still lists the order

    assert await asyncio.wait_for(ks.enforce_lockout(stale_view, []), T) == 1
    assert await asyncio.wait_for(ks.enforce_lockout(stale_view, []), T) == 0  # just cancelled: quiet
    assert stubborn.working  # the gateway ignored that cancel
    clock.now += ks.config.verify_timeout  # still listed well after the cancel: cancel again
    assert await asyncio.wait_for(ks.enforce_lockout(stale_view, []), T) == 1

    assert stubborn.status == "Cancelled"
    detected = [e for e in events if e.kind is KillEventKind.LOCKOUT and e.message.startswith("lockout:")]
    assert len(detected) == 1  # one critical announcement, not one per poll
    assert [r.event for r in read_audit(ks.store.audit_path)].count("lockout.recancel") == 1


async def test_the_first_global_cancel_goes_out_after_the_records_are_written_and_before_their_fsync(
    book: FakeBook, make_switch: MakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    ks = make_switch()
    book.add_order(1, "DU1", stock(), "BUY", 10)
    order: list[str] = []
    real_fsync = os.fsync
    real_cancel = book.global_cancel

    def fsync(fd: int) -> None:
        order.append("fsync")
        real_fsync(fd)

    def global_cancel(client_id: int) -> None:
        # at the moment the cancel leaves, the trigger record and the latch are already in the files
        events = [r.event for r in read_audit(ks.store.audit_path)]
        latch = StateStore(ks.store.dir, lambda: 0.0).latch()
        order.append(f"cancel triggered={'kill.triggered' in events} tripped={latch.state.value}")
        real_cancel(client_id)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(book, "global_cancel", global_cancel)
    await asyncio.wait_for(ks.kill(Action.CANCEL_ALL, "rule:x"), T)

    first_cancel = next(i for i, step in enumerate(order) if step.startswith("cancel"))
    assert order[first_cancel] == "cancel triggered=True tripped=tripped"
    assert "fsync" not in order[:first_cancel]  # no disk flush held the cancel back
    assert "fsync" in order[first_cancel:]  # and everything was flushed right after it
