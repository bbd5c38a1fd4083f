"""The closing orders' executions in the audit (`close.fill`) and in `report`, against the simulator."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID
from tests.kill.conftest import MakeSwitch, kill_switch
from tests.kill.fakes import FakeBook, stock
from watchdog.commands.kill_report import report_command
from watchdog.gateway.client import Gateway
from watchdog.kill.switch import KillEvent
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator
from watchdog.state.audit import AuditLog, read_audit

DU1, DU2 = ACCOUNTS


@pytest.mark.integration
async def test_every_execution_of_a_close_all_is_audited_under_its_kill_and_listed_under_its_order(
    sim: Simulator, gateway: Gateway, tmp_path: Path
) -> None:
    sim.set_price("AAPL", 190.1234)
    sim.set_price("SPY", 510.5)
    sim.set_position(DU1, "AAPL", 200, avg_cost=182.5)
    sim.set_position(DU2, "SPY", 50, avg_cost=500.0)
    sim.set_session("regular")
    sim.fill.partial_fills = 3  # each closing order fills in three pieces, 50 ms apart
    sim.fill.fill_delay = 0.05
    gateway.market_hours = lambda sec_type, now: True
    await asyncio.wait_for(gateway.poll_positions(), 5)
    ks = kill_switch(gateway, tmp_path)

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 20)

    assert report.outcome is KillOutcome.FLAT, report.reason
    truth = {e.exec_id: e for e in sim.executions() if e.client_id == CLIENT_ID}
    assert len(truth) == 6 and Counter(e.order_id for e in truth.values()).most_common(1)[0][1] == 3
    records = [r for r in read_audit(ks.store.audit_path) if r.event == "close.fill"]
    assert {r.kill_id for r in records} == {report.kill_id}
    last = {r.details["exec_id"]: r.details for r in records}  # a later record may add the commission
    assert set(last) == set(truth)
    for exec_id, e in truth.items():
        d = last[exec_id]
        assert (d["order_id"], d["side"], d["shares"], d["price"]) == (e.order_id, e.side, e.shares, e.price)
        assert (d["account"], d["contract"], d["commission"]) == (e.account, e.inst.symbol, e.commission)
    # the KILL DONE report carries them too (the message's "Closing fills")
    assert {f.exec_id for f in report.close_fills} == set(truth)
    assert sum(f.shares for f in report.close_fills) == 250

    out = io.StringIO()
    assert report_command(ks.store.dir, report.kill_id, out=out) == 0
    lines = out.getvalue().splitlines()
    for oid, size in zip(report.close_order_ids, (o.quantity for o in report.close_orders), strict=True):
        at = next(i for i, line in enumerate(lines) if f"closing order {oid}:" in line)
        mine = sorted((e for e in truth.values() if e.order_id == oid), key=lambda e: e.exec_id)
        under = lines[at + 1 : at + 1 + len(mine) + 1]
        for line, e in zip(under, mine, strict=False):
            assert f"fill {e.side} {e.shares:g} @ " in line and f"exec {e.exec_id}" in line, under
            assert f"commission {e.commission:g} USD" in line, under
        avg = sum(e.shares * e.price for e in mine) / size
        assert under[-1].strip() == f"filled {size:g} of {size:g}, avg {avg:.4f}".rstrip("0").rstrip(".") + (
            f" ({len(mine)} fills)"
        )


async def test_each_piece_of_a_partial_fill_is_audited_once_and_announced_never(
    make_switch: MakeSwitch, book: FakeBook, audit: AuditLog, events: list[KillEvent]
) -> None:
    """Virtual time: 300 long closing 100 per tick. Each execution is one `close.fill` (its commission
    known at once), none becomes a KillEvent (no notification per fill), and another instance's
    execution of a closing order is left to that instance's audit."""
    book.add_position("DU1", stock(), 300)
    book.fill_chunk[1] = 100
    ks = make_switch()

    report = await asyncio.wait_for(ks.kill(Action.CLOSE_ALL, "test"), 10)

    assert report.outcome is KillOutcome.FLAT, report.reason
    mine = [f for f in book.executions if f.client_id == 99]
    assert len(mine) == 3
    records = audit.read()
    fills = [r for r in records if r.event == "close.fill"]
    assert [r.details["exec_id"] for r in fills] == [f.exec_id for f in mine]
    assert [f.exec_id for f in report.close_fills] == [f.exec_id for f in mine]
    assert len(events) == len([r for r in records if r.event != "close.fill"])  # one event per step
    other = replace(mine[0], exec_id="other.01", client_id=98)  # the standby's order, same orderRef form
    assert not ks.note_execution(other)
    assert not ks.note_execution(mine[0])  # known already
    assert [r.event for r in audit.read()].count("close.fill") == 3
