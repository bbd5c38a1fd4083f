"""Fault switches: what a real client observes for each one."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock

from tests.sim.conftest import ACCOUNT, Connect
from tests.sim.rawclient import RawClient
from watchdog.sim import Simulator

pytestmark = pytest.mark.fault

AAPL = Stock("AAPL", "SMART", "USD")


def error_codes(ib: IB) -> list[int]:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
    return codes


async def test_muted_connection_stays_connected_but_never_answers(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    sim.faults.mute(client_id=5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.5)
    assert ib.isConnected()
    assert [f.msg_id for f in sim.received(5)][-1] == 49  # it did read the request
    sim.faults.unmute(client_id=5)
    assert await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)


async def test_global_mute_leaves_handshake_unanswered(sim: Simulator) -> None:
    sim.faults.mute()
    ib = IB()
    try:
        with pytest.raises(TimeoutError):
            await ib.connectAsync(sim.host, sim.port, clientId=5, timeout=0.5)
    finally:
        ib.disconnect()


async def test_frozen_connection_answers_only_after_thaw(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    sim.faults.freeze(client_id=5)
    request = asyncio.ensure_future(ib.reqCurrentTimeAsync())
    done, _ = await asyncio.wait({request}, timeout=0.4)
    assert not done and ib.isConnected()
    assert [f.msg_id for f in sim.received(5)][-1] != 49  # never read
    sim.faults.unfreeze(client_id=5)
    assert await asyncio.wait_for(request, 2)


@pytest.mark.parametrize("reset", [False, True])
async def test_drop_disconnects_the_client(sim: Simulator, connect: Connect, reset: bool) -> None:
    ib = await connect(5)
    other = await connect(6)
    gone = asyncio.Event()
    ib.disconnectedEvent += gone.set
    assert await sim.faults.drop(client_id=5, reset=reset) == 1
    await asyncio.wait_for(gone.wait(), 2)
    assert not ib.isConnected() and other.isConnected()
    await sim.wait_until(lambda: sim.connected_clients() == [6], 2)


async def test_delay_holds_back_only_chosen_messages(sim: Simulator, connect: Connect) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    ib = await connect(5)
    sim.faults.delay({49}, 0.4)
    start = time.monotonic()
    await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
    assert time.monotonic() - start >= 0.35
    start = time.monotonic()
    await asyncio.wait_for(ib.reqPositionsAsync(), 2)
    assert time.monotonic() - start < 0.3
    sim.faults.delay({49}, 0)
    start = time.monotonic()
    await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
    assert time.monotonic() - start < 0.3


async def test_reject_next_rejects_with_the_given_code(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    codes = error_codes(ib)
    sim.faults.reject_next(1, code=201, message="Order rejected - reason:Simulated margin")
    rejected = ib.placeOrder(AAPL, MarketOrder("BUY", 1, account=ACCOUNT))
    await sim.wait_until(lambda: rejected.orderStatus.status == "Cancelled", 2)
    assert codes == [201]
    accepted = ib.placeOrder(AAPL, MarketOrder("BUY", 1, account=ACCOUNT))
    await sim.wait_until(lambda: accepted.orderStatus.status == "Filled", 2)


async def test_ignored_cancel_leaves_the_order_working(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    trade = ib.placeOrder(AAPL, LimitOrder("BUY", 1, 100.0, account=ACCOUNT))
    await sim.wait_until(lambda: trade.orderStatus.status == "Submitted", 2)
    sim.faults.ignore_cancel(1)
    ib.cancelOrder(trade.order)
    await sim.wait_until(lambda: any(f.msg_id == 4 for f in sim.received(5)), 2)
    await asyncio.wait_for(ib.reqAllOpenOrdersAsync(), 2)
    assert [o.order_id for o in sim.open_orders()] == [trade.order.orderId]
    assert [t.order.orderId for t in ib.openTrades()] == [trade.order.orderId]
    ib.cancelOrder(trade.order)  # the fault was for one cancel only
    await sim.wait_until(lambda: trade.orderStatus.status == "Cancelled", 2)


async def test_ignored_cancel_survives_a_global_cancel(sim: Simulator, connect: Connect) -> None:
    sim.place_order_as(0, ACCOUNT, "AAPL", "SELL", 1, "LMT", 300.0)
    sim.place_order_as(7, ACCOUNT, "MSFT", "SELL", 1, "LMT", 500.0)
    ib = await connect(5)
    sim.faults.ignore_cancel(1)
    ib.reqGlobalCancel()
    await sim.wait_until(lambda: len(sim.open_orders()) == 1, 2)


async def test_a_pending_cancel_fills_late_instead_of_cancelling_and_a_second_cancel_gets_161(
    sim: Simulator, connect: Connect
) -> None:
    ib = await connect(5)
    codes = error_codes(ib)
    trade = ib.placeOrder(AAPL, LimitOrder("SELL", 3, 900.0, account=ACCOUNT))  # resting
    await sim.wait_until(lambda: trade.orderStatus.status == "Submitted", 2)
    sim.faults.cancel_pending(1, after=0.3, then="fill")
    ib.reqGlobalCancel()
    await sim.wait_until(lambda: sim.open_orders()[0].status == "PendingCancel", 2)
    ib.cancelOrder(trade.order)  # not cancellable now: the destination decides
    await sim.wait_until(lambda: 161 in codes, 2)
    await sim.wait_until(lambda: trade.orderStatus.status == "Filled", 2)
    assert trade.orderStatus.filled == 3 and sim.open_orders() == []
    assert [e.shares for e in sim.executions()] == [3.0]


async def test_a_pending_cancel_can_also_end_cancelled(sim: Simulator, connect: Connect) -> None:
    sim.place_order_as(7, ACCOUNT, "MSFT", "SELL", 1, "LMT", 500.0)
    order_id = sim.place_order_as(7, ACCOUNT, "AAPL", "SELL", 1, "LMT", 500.0)
    ib = await connect(5)
    sim.faults.cancel_pending(1, after=0.2, then="cancel", order=(7, order_id))  # only that order
    ib.reqGlobalCancel()
    await sim.wait_until(lambda: [o.order_id for o in sim.open_orders()] == [order_id], 2)
    assert sim.open_orders()[0].status == "PendingCancel"
    await sim.wait_until(lambda: sim.open_orders() == [], 2)
    assert sim.executions() == []


async def test_injected_errors_reach_the_chosen_clients(sim: Simulator, connect: Connect) -> None:
    a, b = await connect(5), await connect(6)
    codes_a, codes_b = error_codes(a), error_codes(b)
    sim.faults.inject_error(2110, client_id=5)
    sim.faults.inject_error(1100)
    await sim.wait_until(lambda: codes_a == [2110, 1100] and codes_b == [1100], 2)


async def test_nightly_reset_keeps_socket_but_stops_data(sim: Simulator, connect: Connect) -> None:
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    ib = await connect(5)
    codes = error_codes(ib)
    pnl = ib.reqPnL(ACCOUNT)
    await sim.wait_until(lambda: pnl.unrealizedPnL == 1000.0, 2)
    await sim.faults.nightly_reset(0.6)
    await sim.wait_until(lambda: codes == [1100], 1)
    sim.set_price("AAPL", 200.0)
    assert await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.5)  # heartbeats still answered
    assert pnl.unrealizedPnL == 1000.0 and ib.isConnected()
    await sim.faults.wait_idle(2)
    await sim.wait_until(lambda: codes == [1100, 1102], 1)
    await sim.wait_until(lambda: pnl.unrealizedPnL == 2000.0, 2)


async def test_daily_restart_refuses_then_accepts_connections(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    gone = asyncio.Event()
    ib.disconnectedEvent += gone.set
    await sim.faults.daily_restart(refuse_for=0.5)
    await asyncio.wait_for(gone.wait(), 2)
    with pytest.raises(ConnectionRefusedError):
        await RawClient.open(sim.host, sim.port)
    await sim.faults.wait_idle(3)
    again = await connect(5)
    assert again.isConnected() and sim.connected_clients() == [5]


async def test_pacing_violation_gets_error_100_and_disconnect(sim: Simulator, connect: Connect) -> None:
    sim.faults.pacing(limit_per_second=10, enabled=True)
    ib = await connect(5)  # connect itself sends 7 requests
    codes = error_codes(ib)
    gone = asyncio.Event()
    ib.disconnectedEvent += gone.set
    for _ in range(12):
        ib.client.reqCurrentTime()
    await asyncio.wait_for(gone.wait(), 2)
    assert 100 in codes


async def test_pacing_is_off_when_disabled_and_paced_for_paceapi_clients(sim: Simulator) -> None:
    sim.faults.pacing(limit_per_second=3, enabled=True)
    client = await RawClient.open(sim.host, sim.port)
    try:
        await client.handshake(8, versions="v157..178 +PACEAPI")
        for _ in range(6):
            client.send([49, 1])
        for _ in range(6):
            await client.recv_msg(49, within=3)
    finally:
        await client.close()
    sim.faults.pacing(enabled=False)
    ib = IB()
    try:
        await ib.connectAsync(sim.host, sim.port, clientId=9, timeout=2)
        for _ in range(10):
            ib.client.reqCurrentTime()
        assert await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
        assert ib.isConnected()
    finally:
        ib.disconnect()


async def test_clock_skew_shifts_current_time(sim: Simulator, connect: Connect) -> None:
    ib = await connect(5)
    sim.faults.clock_skew(3600)
    t = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
    assert 3590 < t.timestamp() - time.time() < 3610
    sim.faults.clock_skew(0)
    t = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 2)
    assert abs(t.timestamp() - time.time()) < 10


async def test_malformed_and_unknown_frames_are_logged_counted_and_survived(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog.sim")
    client = await RawClient.open(sim.host, sim.port)
    try:
        await client.handshake(4)
        await client.recv_msg(15)
        client.send_payload(b"not-a-number\0x\0")
        client.send([9999, 1])
        client.send([92])  # reqPnL without its fields
        error = await client.recv_msg(4)
        while error[3] != "320":  # skip the farm-status notices sent at startApi
            error = await client.recv_msg(4)
        client.send([49, 1])
        assert (await client.recv_msg(49))[2].isdigit()
    finally:
        await client.close()
    assert sim.server.malformed_total == 2 and sim.server.unknown_total == 1
    assert "client id 4 sent a malformed frame" in caplog.text
    assert "unsupported message id 9999" in caplog.text


@pytest.mark.parametrize(
    "opening",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"API\0\0\0\0\x09v100..150", b"API\0\xff\xff\xff\xffjunk"],
)
async def test_garbage_before_the_handshake_is_dropped(sim: Simulator, opening: bytes) -> None:
    client = await RawClient.open(sim.host, sim.port)
    try:
        client.send_bytes(opening)
        assert await client.closed_by_peer()
    finally:
        await client.close()
    ib = IB()
    try:
        await ib.connectAsync(sim.host, sim.port, clientId=1, timeout=2)
        assert ib.isConnected()
    finally:
        ib.disconnect()


async def test_silence_data_stops_the_data_without_a_word(sim: Simulator, connect: Connect) -> None:
    """A subscription that died silently: no 1100, heartbeats answered, no account data until the
    silence ends (the drill's stale-data rehearsal: with 1100 it would be an outage)."""
    sim.set_position(ACCOUNT, "AAPL", 100, avg_cost=180.0)
    ib = await connect(5)
    codes = error_codes(ib)
    pnl = ib.reqPnL(ACCOUNT)
    await sim.wait_until(lambda: pnl.unrealizedPnL == 1000.0, 2)
    await sim.faults.silence_data(0.6)
    sim.set_price("AAPL", 200.0)
    assert await asyncio.wait_for(ib.reqCurrentTimeAsync(), 0.5)  # heartbeats still answered
    assert pnl.unrealizedPnL == 1000.0 and ib.isConnected()
    await sim.faults.wait_idle(2)
    await sim.wait_until(lambda: pnl.unrealizedPnL == 2000.0, 2)
    assert codes == []  # not a word: no 1100, no 1102
