"""Snapshot, polls and order methods against the simulator (real ib_async over loopback TCP)."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID, Harness, eventually
from watchdog.errors import GatewayUnavailable
from watchdog.gateway.client import Gateway
from watchdog.model import CloseOrderRequest, ContractRef, Health, Position
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
DU1, DU2 = ACCOUNTS


async def poll_all(g: Gateway) -> None:
    await asyncio.wait_for(g.poll_pnl(), 5)
    await asyncio.wait_for(g.poll_account_summary(), 5)
    await asyncio.wait_for(g.poll_positions(), 5)
    await asyncio.wait_for(g.poll_orders(), 5)
    await asyncio.wait_for(g.poll_executions(), 5)


async def test_snapshot_values_equal_the_simulator_state_for_two_accounts(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU1, "AAPL", 100, avg_cost=150.0)
    sim.set_position(DU2, "ES", -2, avg_cost=250_000.0)
    sim.set_account_value(DU1, "NetLiquidation", 123_456.0)
    sim.set_account_value(DU2, "Cushion", 0.42)
    sim.set_pnl(DU1, daily=-1_234.5, unrealized=321.0, realized=-55.0)
    sim.set_pnl(DU2, daily=777.0)
    sim.place_order_as(client_id=3, account=DU1, symbol="MSFT", action="BUY", quantity=10, lmt_price=1.0)
    sim.place_order_as(client_id=0, account=DU2, symbol="AAPL", action="SELL", quantity=5, lmt_price=9_999.0)
    sim.place_order_as(client_id=4, account=DU1, symbol="AAPL", action="BUY", quantity=7, order_type="MKT")
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    await poll_all(g)

    def has_market_values() -> bool:
        snap = g.snapshot()
        return len(snap.positions) == 2 and all(p.market_value is not None for p in snap.positions)

    async with asyncio.timeout(5):  # reqPnLSingle values arrive with the next stream tick
        while not has_market_values():
            await g.poll_positions()
            await poll_pnl_tick(sim)
    await poll_all(g)
    snap = g.snapshot()

    assert set(snap.accounts) == set(ACCOUNTS)
    for account in ACCOUNTS:
        values = sim.account_values(account)
        state = snap.accounts[account]
        assert state.net_liquidation == pytest.approx(float(values["NetLiquidation"]))
        assert state.excess_liquidity == pytest.approx(float(values["ExcessLiquidity"]))
        assert state.cushion == pytest.approx(float(values["Cushion"]))
        assert state.maint_margin_req == pytest.approx(float(values["MaintMarginReq"]))
        assert state.gross_position_value == pytest.approx(float(values["GrossPositionValue"]))
        daily, unrealized, realized = sim.pnl(account)
        assert (state.daily_pnl, state.unrealized_pnl, state.realized_pnl) == pytest.approx(
            (daily, unrealized, realized)
        )
        assert {"net_liquidation", "cushion", "daily_pnl"} <= set(state.as_of)
    assert snap.accounts[DU1].net_liquidation == pytest.approx(123_456.0)
    assert snap.accounts[DU2].cushion == pytest.approx(0.42)
    assert snap.accounts[DU1].daily_pnl == pytest.approx(-1_234.5)

    truth = {(p.account, p.con_id): p for p in sim.positions()}
    got = {p.key: p for p in snap.positions}
    assert set(got) == set(truth)
    for key, p in truth.items():
        multiplier = got[key].contract.multiplier
        assert got[key].quantity == p.quantity
        assert got[key].market_value == pytest.approx(p.quantity * p.market_price * multiplier)
    assert snap.positions_as_of is not None

    working = {(o.client_id, o.order_id) for o in sim.open_orders()}
    assert {(o.client_id, o.order_id) for o in snap.open_orders} == working
    assert {o.client_id for o in snap.open_orders} == {0, 3}  # another API client and a manual order
    manual = next(o for o in snap.open_orders if o.client_id == 0)
    assert (manual.account, manual.action, manual.remaining, manual.lmt_price) == (DU2, "SELL", 5.0, 9_999.0)

    executions = sim.executions()
    assert executions, "the market order of client 4 should have filled"
    assert {f.exec_id for f in snap.fills} == {e.exec_id for e in executions}
    fill = next(f for f in snap.fills if f.client_id == 4)
    assert (fill.account, fill.side, fill.shares) == (DU1, "BOT", 7.0)
    assert fill.commission == pytest.approx(executions[0].commission)
    assert snap.gateway.health is Health.HEALTHY and snap.gateway.connected


async def poll_pnl_tick(sim: Simulator) -> None:
    """Wait for the simulator's next P&L stream tick (its pnl_interval is 0.1 s)."""
    await asyncio.sleep(sim.pnl_interval)


async def test_order_events_count_orders_placed_after_the_first_poll(harness: Harness) -> None:
    sim = harness.sim
    sim.place_order_as(client_id=3, account=DU1, symbol="MSFT", action="BUY", quantity=1, lmt_price=1.0)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    await asyncio.wait_for(g.poll_orders(), 5)
    assert g.snapshot().order_events == ()
    sim.place_order_as(client_id=3, account=DU2, symbol="MSFT", action="BUY", quantity=1, lmt_price=1.0)
    await asyncio.wait_for(g.poll_orders(), 5)
    assert [account for account, _ in g.snapshot().order_events] == [DU2]


async def test_a_configured_subset_is_the_only_account_watched(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU1, "AAPL", 10)
    sim.set_position(DU2, "AAPL", 20)
    sim.place_order_as(client_id=3, account=DU2, symbol="MSFT", action="BUY", quantity=1, lmt_price=1.0)
    g = harness.gateway(accounts=(DU1,))
    await asyncio.wait_for(g.connect(), 5)
    await poll_all(g)
    snap = g.snapshot()
    assert list(snap.accounts) == [DU1]
    assert [p.account for p in snap.positions] == [DU1]
    assert snap.open_orders == ()


async def test_place_close_order_routes_and_tags_the_order(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU2, "AAPL", 100)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    position = next(p for p in await asyncio.wait_for(g.positions(), 5) if p.account == DU2)
    request = CloseOrderRequest(
        account=DU2,
        contract=position.contract,
        action="SELL",
        quantity=100,
        order_type="LMT",
        limit_price=180.5,
        outside_rth=True,
        order_ref="ibkr-watchdog:k1",
        exchange="SMART",
    )
    order_id = await asyncio.wait_for(g.place_close_order(request), 5)

    def placed() -> list[list[str]]:
        return [r.fields for r in sim.received(client_id=CLIENT_ID) if r.msg_id == 3]

    await eventually(lambda: bool(placed()))
    f = placed()[0]
    assert int(f[1]) == order_id
    assert int(f[2]) == position.contract.con_id
    assert f[4] == "STK" and f[9] == "SMART"  # routable exchange, not the position's NASDAQ
    assert (f[16], float(f[17]), f[18], float(f[19])) == ("SELL", 100.0, "LMT", 180.5)
    assert (f[21], f[23], f[26], f[27], f[33]) == ("DAY", DU2, "ibkr-watchdog:k1", "1", "1")
    # an aggressive limit below the 190 mark: the simulator fills it, proving it was routable
    await eventually(lambda: not sim.positions(DU2))
    assert any(e.order_ref == "ibkr-watchdog:k1" for e in sim.executions(DU2))


async def test_a_market_close_order_flattens_the_position(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU1, "AAPL", 30)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    position = next(p for p in await asyncio.wait_for(g.positions(), 5) if p.account == DU1)
    assert g.is_regular_hours(position, 0.0) is False  # 1970-01-01 was a Thursday at 19:00 in New York
    await g.place_close_order(
        CloseOrderRequest(
            account=DU1, contract=position.contract, action="SELL", quantity=30, order_type="MKT"
        )
    )
    await eventually(lambda: not sim.positions(DU1))
    assert await asyncio.wait_for(g.positions(), 5) == []


async def test_global_cancel_cancels_orders_of_other_clients_and_manual_orders(harness: Harness) -> None:
    sim = harness.sim
    sim.place_order_as(client_id=3, account=DU1, symbol="MSFT", action="BUY", quantity=10, lmt_price=1.0)
    sim.place_order_as(client_id=0, account=DU2, symbol="AAPL", action="SELL", quantity=5, lmt_price=9_999.0)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    assert len(await asyncio.wait_for(g.open_orders(), 5)) == 2
    await asyncio.wait_for(g.global_cancel(), 5)
    await eventually(lambda: sim.open_orders() == [])
    assert await asyncio.wait_for(g.open_orders(), 5) == []


async def test_cancel_order_cancels_an_order_this_client_placed(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU1, "AAPL", 10)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    position = next(p for p in await asyncio.wait_for(g.positions(), 5) if p.account == DU1)
    order_id = await g.place_close_order(
        CloseOrderRequest(
            account=DU1, contract=position.contract, action="SELL", quantity=10, order_type="LMT",
            limit_price=99_999.0, order_ref="wd",
        )
    )  # fmt: skip
    await eventually(lambda: len(sim.open_orders()) == 1)
    await asyncio.wait_for(g.cancel_order(order_id), 5)
    await eventually(lambda: sim.open_orders() == [])


async def test_mark_price_comes_from_the_gateway(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU1, "AAPL", 10)
    sim.set_price("AAPL", 201.25)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    async with asyncio.timeout(5):
        while True:
            positions = await g.poll_positions()
            if positions and positions[0].market_price is not None:
                break
            await poll_pnl_tick(sim)
    assert await g.mark_price(positions[0]) == pytest.approx(201.25)


async def test_close_orders_for_unwatched_accounts_or_bad_quantities_are_refused(harness: Harness) -> None:
    g = harness.gateway(accounts=(DU1,))
    await asyncio.wait_for(g.connect(), 5)
    contract = ContractRef(con_id=265598, symbol="AAPL", sec_type="STK")
    with pytest.raises(ValueError, match="not watched"):
        await g.place_close_order(
            CloseOrderRequest(account=DU2, contract=contract, action="SELL", quantity=1, order_type="MKT")
        )
    with pytest.raises(ValueError, match="bad close order"):
        await g.place_close_order(
            CloseOrderRequest(account=DU1, contract=contract, action="SELL", quantity=0, order_type="MKT")
        )
    assert [r for r in harness.sim.received(client_id=CLIENT_ID) if r.msg_id == 3] == []


async def test_every_call_raises_gateway_unavailable_while_disconnected(harness: Harness) -> None:
    g = harness.gateway()
    position = Position(account=DU1, contract=ContractRef(con_id=1, symbol="X", sec_type="STK"), quantity=1)
    for call in (
        g.poll_pnl,
        g.poll_account_summary,
        g.poll_positions,
        g.poll_orders,
        g.poll_executions,
        g.global_cancel,
        g.open_orders,
        g.positions,
        g.heartbeat,
    ):
        with pytest.raises(GatewayUnavailable):
            await asyncio.wait_for(call(), 5)
    assert await g.mark_price(position) is None
    assert g.is_connected() is False


async def test_a_poll_that_gets_no_answer_times_out(harness: Harness) -> None:
    harness.sim.faults.delay({63, 64}, 5.0)  # account summary answers held back
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    with pytest.raises(GatewayUnavailable, match="account summary: no answer within 1s"):
        await asyncio.wait_for(g.poll_account_summary(), 5)
    harness.sim.faults.clear_delays()
    await asyncio.wait_for(g.poll_positions(), 5)  # the connection itself is fine


async def test_positions_carry_the_listing_exchange_and_tick_from_contract_details(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU1, "ES", 2, avg_cost=260_000.0)
    sim.set_position(DU1, "AAPL  261218C00200000", 5, avg_cost=1_000.0)
    sim.set_position(DU1, "AAPL", 10, avg_cost=150.0)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    positions = {
        p.contract.symbol + p.contract.sec_type: p for p in await asyncio.wait_for(g.poll_positions(), 5)
    }

    future = positions["ESFUT"].contract
    assert (future.exchange, future.min_tick) == ("CME", 0.25)  # reported empty; looked up by conId
    option = positions["AAPLOPT"].contract
    assert option.min_tick == pytest.approx(sim.book.universe.get(option.con_id).min_tick)
    assert option.exchange == ""  # options route through SMART: nothing to fill in
    stock = positions["AAPLSTK"].contract
    assert stock.min_tick == 0.01  # stocks are looked up too: tick ladder and their own trading hours
    details_requests = [f for f in sim.received(CLIENT_ID) if f.msg_id == 9]
    await asyncio.wait_for(g.poll_positions(), 5)
    assert [f for f in sim.received(CLIENT_ID) if f.msg_id == 9] == details_requests  # cached per conId


async def test_only_a_changed_streamed_value_asks_the_daemon_to_evaluate(harness: Harness) -> None:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    calls: list[float] = []
    g.on_data = lambda: calls.append(1.0)

    def received_at() -> float | None:
        return g.snapshot().accounts[DU1].as_of.get("daily_pnl")

    async def next_tick() -> None:  # the simulator re-sends P&L every 100 ms, changed or not
        before = received_at()
        await eventually(lambda: received_at() != before)

    await next_tick()
    settled = len(calls)
    await next_tick()
    await next_tick()
    assert len(calls) == settled  # the same numbers again: no evaluation asked for
    harness.sim.set_pnl(DU1, daily=-4_321.0)
    await eventually(lambda: len(calls) > settled)
    assert g.snapshot().accounts[DU1].daily_pnl == -4_321.0


async def test_routine_position_polls_read_the_live_subscription_and_the_kill_reads_fresh(
    harness: Harness,
) -> None:
    sim = harness.sim
    sim.set_position(DU1, "AAPL", 100, avg_cost=150.0)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    await asyncio.wait_for(g.poll_positions(), 5)  # first poll after a connect: a round trip

    def requests() -> int:
        return sum(1 for f in sim.received(CLIENT_ID) if f.msg_id == 61)

    sent = requests()
    sim.set_position(DU1, "AAPL", 40, avg_cost=150.0)  # the gateway streams the change
    await eventually(lambda: any(p.position == 40 for p in g._require().positions()))
    routine = await asyncio.wait_for(g.poll_positions(), 5)
    assert [p.quantity for p in routine if p.account == DU1] == [40.0]
    assert requests() == sent  # no reqPositions on the wire for a routine poll

    fresh = await asyncio.wait_for(g.positions(), 5)  # what the kill switch calls
    assert [p.quantity for p in fresh if p.account == DU1] == [40.0]
    assert requests() == sent + 1


async def test_order_error_reports_a_rejection_but_not_a_cancel_notice(harness: Harness) -> None:
    sim = harness.sim
    sim.set_position(DU1, "AAPL", 10)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    position = next(p for p in await asyncio.wait_for(g.positions(), 5) if p.account == DU1)

    def close(limit: float) -> CloseOrderRequest:
        return CloseOrderRequest(
            account=DU1, contract=position.contract, action="SELL", quantity=10, order_type="LMT",
            limit_price=limit, order_ref="wd",
        )  # fmt: skip

    resting = await g.place_close_order(close(99_999.0))
    await eventually(lambda: len(sim.open_orders()) == 1)
    await asyncio.wait_for(g.cancel_order(resting), 5)
    await eventually(lambda: g.error_counts[202] >= 1)  # "Order Canceled" arrived for it
    assert g.order_error(resting) is None  # a cancel is not a rejection

    sim.faults.reject_next(1, code=201)
    refused = await g.place_close_order(close(99_999.0))
    await eventually(lambda: g.order_error(refused) is not None)
    assert g.order_error(refused)[0] == 201  # type: ignore[index]
