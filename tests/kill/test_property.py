"""Property: whatever the book does (fills, partial fills, rejects, drops, restarts, a second instance,
other clients' orders that fill late after the global cancel, closing orders held until a later open),
no position ever crosses zero, and the end is flat or escalated."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kill.conftest import kill_config
from tests.kill.fakes import WATCHDOG_REF, FakeBook, FakeBroker, FakeClock, stock
from watchdog.kill.switch import KillSwitch
from watchdog.model import Action, KillOutcome, KillReport
from watchdog.state.audit import AuditLog
from watchdog.state.store import StateStore

KEYS = [(a, c) for a in ("DU1", "DU2") for c in (1, 2, 3)]


@dataclass(frozen=True)
class Scenario:
    positions: dict[tuple[str, int], int]
    leftovers: list[
        tuple[tuple[str, int], float, int, int, bool]
    ]  # key, fraction, client, ignores, marketable
    foreign: list[tuple[tuple[str, int], int]]  # key, ignored cancels
    late: list[tuple[tuple[str, int], float, float]]  # key, fraction of what is left, seconds to the fill
    hold_until: float | None  # watchdog market orders held until then (a holiday), None: never
    chunks: dict[int, int]
    rejects: dict[int, list[int]]
    regular_hours: bool
    marks_move: bool
    fail_at_call: int | None
    restart_after_sleeps: int | None
    second_instance: bool
    scoped: bool


scenarios = st.builds(
    Scenario,
    positions=st.dictionaries(
        st.sampled_from(KEYS), st.integers(-300, 300).filter(bool), min_size=1, max_size=6
    ),
    leftovers=st.lists(
        st.tuples(
            st.sampled_from(KEYS),
            st.floats(0.1, 1.0),
            st.sampled_from([98, 99]),
            st.integers(0, 2),
            st.booleans(),
        ),
        max_size=3,
    ),
    foreign=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 4)), max_size=3),
    late=st.lists(st.tuples(st.sampled_from(KEYS), st.floats(0.1, 1.0), st.floats(0.0, 40.0)), max_size=3),
    hold_until=st.none() | st.floats(0.0, 60.0),
    chunks=st.dictionaries(st.sampled_from([1, 2, 3]), st.integers(1, 120), max_size=3),
    rejects=st.dictionaries(
        st.sampled_from([1, 2, 3]), st.lists(st.sampled_from([201, 202, 200, 110]), max_size=3)
    ),
    regular_hours=st.booleans(),
    marks_move=st.booleans(),
    fail_at_call=st.none() | st.integers(1, 40),
    restart_after_sleeps=st.none() | st.integers(1, 60),
    second_instance=st.booleans(),
    scoped=st.booleans(),
)


def build_book(s: Scenario, clock: FakeClock) -> FakeBook:
    book = FakeBook(clock)
    book.regular_hours = s.regular_hours
    for (account, con), qty in s.positions.items():
        book.add_position(account, stock(con, f"S{con}"), qty, mark=100.0)
    left = {k: abs(q) for k, q in book.positions.items()}
    for key, fraction, client, ignores, marketable in s.leftovers:
        qty = book.positions.get(key, 0)
        size = int(left.get(key, 0) * fraction)
        if size == 0:
            continue  # closing orders left from earlier were netted then: together at most the position
        left[key] -= size
        side = "SELL" if qty > 0 else "BUY"
        price = (95.0 if side == "SELL" else 105.0) if marketable else (150.0 if side == "SELL" else 50.0)
        book.add_order(
            client, key[0], stock(key[1], f"S{key[1]}"), side, size,
            lmt_price=price, order_ref=f"{WATCHDOG_REF}:old", ignore_cancels=ignores,
        )  # fmt: skip
    for key, ignores in s.foreign:
        book.add_order(0, key[0], stock(key[1], f"S{key[1]}"), "BUY", 10, ignore_cancels=ignores)
    for key, fraction, after in s.late:  # a bot's reducing order: the global cancel makes it fill late
        qty = book.positions.get(key, 0)
        size = int(left.get(key, 0) * fraction)
        if size == 0:
            continue
        left[key] -= size
        side = "SELL" if qty > 0 else "BUY"
        price = 150.0 if side == "SELL" else 50.0  # resting: only the late fill executes it
        order = book.add_order(7, key[0], stock(key[1], f"S{key[1]}"), side, size, lmt_price=price)
        order.late_fill_after = after
    if s.hold_until is not None:
        book.hold_market_until = clock.now + s.hold_until
    book.fill_chunk.update({c: float(n) for c, n in s.chunks.items()})
    book.reject_next.update(
        {c: [(code, f"error {code}") for code in codes] for c, codes in s.rejects.items()}
    )
    book.fail_at_call = s.fail_at_call
    if s.marks_move:
        book.clock.on_advance.append(
            lambda now: book.marks.update({c: 100.0 + (now % 7) - 3 for c in (1, 2, 3)})
        )
    return book


def switch(book: FakeBook, state: Path, client_id: int, *, standby: bool = False) -> KillSwitch:
    store = StateStore(state, book.clock)
    store.dir.mkdir(parents=True, exist_ok=True)
    cfg = kill_config(verify_timeout="2s", standby=standby, standby_grace="20s")
    return KillSwitch(
        FakeBroker(book, client_id), cfg, store, AuditLog(store.audit_path, book.clock),
        clock=book.clock, sleep=book.clock.sleep, client_id=client_id,
    )  # fmt: skip


async def until_done(ks: KillSwitch, book: FakeBook, report: KillReport | None) -> KillReport:
    """What the daemon does on each reconnect: run the pending kill (None = the gateway was down again)."""
    while report is None or report.outcome is KillOutcome.PENDING:
        book.connected = True
        report = await ks.run_pending()
    return report


async def play(s: Scenario, root: Path) -> tuple[FakeBook, list[KillReport], tuple[str, ...]]:
    clock = FakeClock()
    book = build_book(s, clock)
    accounts = ("DU1",) if s.scoped else ()
    primary = switch(book, root / "a", 99)
    tasks = [asyncio.ensure_future(primary.kill(Action.CLOSE_ALL, "rule:loss", accounts=accounts or None))]
    standby = switch(book, root / "b", 98, standby=True) if s.second_instance else None
    if standby is not None:
        tasks.append(
            asyncio.ensure_future(standby.kill(Action.CLOSE_ALL, "rule:loss", accounts=accounts or None))
        )
    if s.restart_after_sleeps is not None:
        while not tasks[0].done() and len(clock.sleeps) < s.restart_after_sleeps:
            await clock.sleep(0.05)
        if not tasks[0].done():
            tasks[0].cancel()  # the primary daemon dies mid-kill and comes back on the same state dir
            primary = switch(book, root / "a", 99)
            book.connected = True
            tasks[0] = asyncio.ensure_future(primary.run_pending())  # type: ignore[arg-type]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    reports: list[KillReport] = []
    for ks, res in zip([primary, standby], results, strict=False):
        if isinstance(res, asyncio.CancelledError):
            continue
        assert isinstance(res, KillReport | None), res
        assert ks is not None
        report = await until_done(ks, book, res)
        if report.outcome is KillOutcome.ESCALATED and standby is None:
            # the hand-off: a known book — every order still alive in scope is listed, by id and state
            scope = set(report.accounts)  # empty: every account
            alive = {
                (o.client_id, o.order_id)
                for o in book.orders
                if o.working and (not scope or o.account in scope)
            }
            listed = {(o.client_id, o.order_id) for o in report.remaining_orders}
            assert alive <= listed, f"alive but not handed over: {alive - listed}"
        reports.append(report)
    for r in reports:  # an escalation hands over: the person flattens by hand what the report says is left
        if r.outcome is KillOutcome.ESCALATED:
            by_hand(book, r)
    await clock.sleep(120)  # long after the kill: every late fill and every held order has had its turn
    return book, reports, accounts


def by_hand(book: FakeBook, report: KillReport) -> None:
    """The person sells (buys) the position at once, minus what the report lists as still alive on it."""
    for p in report.remaining_positions:
        qty = book.positions.get(p.key, 0.0)
        side = "SELL" if qty > 0 else "BUY"
        alive = sum(
            o.remaining
            for o in report.remaining_orders
            if (o.account, o.contract.con_id) == p.key and o.action == side
        )
        size = abs(qty) - alive
        if size > 0:
            manual = book.add_order(0, p.account, p.contract, side, size, order_type="MKT", lmt_price=None)
            book.fill(manual, size)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios)
def test_no_position_ever_crosses_zero_because_of_the_watchdog(s: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        book, reports, accounts = asyncio.run(asyncio.wait_for(play(s, Path(tmp)), 60))
    assert book.violations == []
    assert book.crossings == []
    escalated = {p.key for r in reports if r.outcome is KillOutcome.ESCALATED for p in r.remaining_positions}
    for r in reports:  # FLAT only when nothing in scope could still fill
        assert r.outcome is not KillOutcome.FLAT or not r.remaining_orders
    for key, qty in book.nonzero().items():
        in_scope = not accounts or key[0] in accounts
        if in_scope:
            assert key in escalated, (
                f"{key} left at {qty} without an escalation: {[r.reason for r in reports]}"
            )
        else:  # out of scope: only a leftover order that ignored the (account-wide) global cancel may fill
            assert abs(qty) <= abs(s.positions[key]) and qty * s.positions[key] > 0
