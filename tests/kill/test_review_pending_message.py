"""Attack 3: what [KILL PENDING] says about closing orders already sent (format_pending_kill over the
switch's real pending report)."""

from __future__ import annotations

import asyncio

from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import FakeBook, stock
from watchdog.kill.switch import KillEvent, KillEventKind
from watchdog.model import Action, KillOutcome
from watchdog.outputs.messages import format_pending_kill

T = 30.0


def _last_pending_text(events: list[KillEvent]) -> str:
    ev = [e for e in events if e.kind is KillEventKind.PENDING][-1]
    assert ev.report is not None
    n = format_pending_kill(ev.report, ev.message)
    return n.title + "\n" + n.body


async def test_a_resumed_kill_that_goes_pending_again_still_lists_the_closing_order_of_its_first_part(
    book: FakeBook, make_switch: MakeSwitch, events: list[KillEvent]
) -> None:
    book.add_position("DU1", stock(), 100)
    book.fill_chunk[1] = 30
    book.fail_at_call = 7  # after the closing order went out and 30 filled
    ks = make_switch()
    first = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "rule:x"), T)
    assert first.outcome is KillOutcome.PENDING and len(first.close_order_ids) == 1
    assert "Already sent" in _last_pending_text(events)
    # the gateway is back for a moment: the kill resumes, and the link drops again at its global
    # cancel, so the first part's closing order (70 left) is still working at the broker
    book.connected = True
    book.fail_at_call = book.calls + 1
    again = await asyncio.wait_for(ks.run_pending(), T)
    assert again is not None and again.outcome is KillOutcome.PENDING
    assert [(o.status, o.remaining) for o in book.orders] == [("Submitted", 70.0)]
    text = _last_pending_text(events)
    # seen: "No closing order was sent yet. ... you may act there: what you close is not closed again."
    assert "No closing order was sent yet" not in text, text
    # the resumed part cannot list the first part's order: it must not claim there is none
    assert "may still fill" in text and "you may act there" not in text, text


async def test_a_closing_order_the_broker_rejected_is_not_listed_as_one_that_may_still_fill(
    book: FakeBook, make_switch: MakeSwitch, events: list[KillEvent]
) -> None:
    book.add_position("DU1", stock(), 100)
    book.reject_next[1] = [(201, "Order rejected - reason: no trading permission")] * 5
    book.fail_at_call = 12  # after the rejection was seen
    report = await asyncio.wait_for(make_switch().kill(Action.CLOSE_ALL, "rule:x"), T)
    assert report.outcome is KillOutcome.PENDING and report.rejected
    assert [o.working for o in book.orders] == [False]  # nothing can fill: the 100 are open
    text = _last_pending_text(events)
    # seen: "Already sent, and may still fill (1): ... (order 1)" and "Do NOT close these positions by
    # hand": the operator is held off while nothing works on the position
    assert "Do NOT close these positions by hand" not in text, text
    assert "REJECTED" in text, text


async def test_a_pending_cancel_only_kill_never_promises_to_close_positions(
    book: FakeBook, make_switch: MakeSwitch, events: list[KillEvent]
) -> None:
    book.add_position("DU1", stock(), 100)
    book.connected = False
    report = await asyncio.wait_for(make_switch().kill(Action.CANCEL_ALL, "rule:margin"), T)
    assert report.outcome is KillOutcome.PENDING
    text = _last_pending_text(events)
    # seen: "it then re-reads the account and closes only what is still open" — a cancel-only kill
    # closes nothing: an operator who reads this waits for positions that are never closed
    assert "closes only what is still open" not in text, text
