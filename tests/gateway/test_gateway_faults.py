"""Connection faults against the simulator: half-open, drop, restart, nightly reset, 326, safety valve."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import pytest
from ib_async import IB

from tests.gateway.conftest import ACCOUNTS, CLIENT_ID, FAST_HB, Harness, eventually
from watchdog.config.schema import HeartbeatConfig
from watchdog.errors import ClientIdInUse, GatewayUnavailable, SafetyValveError
from watchdog.gateway.client import Gateway
from watchdog.model import Health

pytestmark = pytest.mark.integration
DU1, DU2 = ACCOUNTS


@contextlib.asynccontextmanager
async def supervised(g: Gateway) -> AsyncIterator[asyncio.Task[None]]:
    """Run `g.supervise()` in the background and stop it (bounded) at the end."""
    stop = asyncio.Event()
    task = asyncio.create_task(g.supervise(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


SLOW_ANSWER_HB = HeartbeatConfig(
    interval="200ms", timeout="300ms", misses=2, reconnect_initial="50ms", reconnect_max="200ms"
)


@pytest.mark.parametrize("hb", [FAST_HB, SLOW_ANSWER_HB], ids=["timeout<interval", "timeout>interval"])
async def test_half_open_is_detected_within_interval_times_misses_plus_timeout(
    harness: Harness, hb: HeartbeatConfig
) -> None:
    sim = harness.sim
    g = harness.gateway(hb=hb)
    bystander = IB()  # a plain ib_async client with no heartbeat of its own
    await asyncio.wait_for(bystander.connectAsync("127.0.0.1", sim.port, clientId=7, timeout=2), 5)
    try:
        async with supervised(g):
            await eventually(lambda: g.tracker.last_ok_at is not None)
            sim.faults.mute()
            await eventually(lambda: g.health is Health.DOWN)
            assert "half_open" in harness.kinds()
            assert g.status().connected is False
            # the same silent socket still looks connected to ib_async itself
            assert bystander.isConnected() is True
            last_ok_sent = g.tracker.last_ok_sent
            detected = g.down_detected_at
            assert last_ok_sent is not None and detected is not None
            # from the last answered heartbeat: the next one goes out within an interval, and the
            # streak deadline is (misses - 1) * interval + timeout after it (plus loop latency)
            assert detected - last_ok_sent <= hb.interval * hb.misses + hb.timeout + 0.1
            sim.faults.unmute()
            await eventually(lambda: g.health is Health.HEALTHY and g.is_connected())
            assert harness.kinds().count("connected") == 2
            assert g.tracker.consecutive_misses == 0
    finally:
        bystander.disconnect()


async def test_a_dropped_connection_goes_down_and_reconnects(harness: Harness) -> None:
    sim = harness.sim
    g = harness.gateway()
    async with supervised(g):
        await eventually(g.is_connected)
        assert await sim.faults.drop(client_id=CLIENT_ID, reset=True) == 1
        await eventually(lambda: "disconnected" in harness.kinds())
        await eventually(lambda: harness.kinds().count("connected") == 2 and g.is_connected())
    assert g.status().down_since is None
    assert CLIENT_ID in sim.connected_clients()


async def test_a_daily_restart_is_retried_with_backoff_until_the_gateway_listens_again(
    harness: Harness,
) -> None:
    sim = harness.sim
    g = harness.gateway()
    async with supervised(g):
        await eventually(g.is_connected)
        await sim.faults.daily_restart(refuse_for=0.5)
        await eventually(lambda: g.health is Health.DOWN)
        await eventually(lambda: harness.kinds().count("connected") == 2, within=10)
        assert g.connect_failures >= 2  # refused while the gateway restarted
        assert "reconnecting" in harness.kinds()
        await eventually(lambda: g.tracker.last_ok_at is not None and g.backoff.attempts == 0)
    assert g.health is Health.HEALTHY and g.is_connected()


async def test_a_nightly_reset_is_degraded_then_healthy(harness: Harness) -> None:
    sim = harness.sim
    g = harness.gateway()
    async with supervised(g):
        await eventually(g.is_connected)
        await sim.faults.nightly_reset(0.5)
        await eventually(lambda: g.health is Health.DEGRADED)
        status = g.status()
        assert status.down_since is not None and status.last_error.startswith("1100")
        assert g.is_connected()  # the socket and the heartbeats stay fine during the reset
        await eventually(lambda: g.health is Health.HEALTHY)
    assert [e.code for e in harness.events if e.kind.value in ("degraded", "restored")] == [1100, 1102]
    assert g.error_counts[1100] == 1 and g.error_counts[1102] == 1
    assert "half_open" not in harness.kinds()


async def test_error_2110_also_counts_as_degraded(harness: Harness) -> None:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    harness.sim.faults.inject_error(2110)
    await eventually(lambda: g.health is Health.DEGRADED)
    harness.sim.faults.inject_error(1102)
    await eventually(lambda: g.health is Health.HEALTHY)


async def test_error_1101_re_requests_the_subscriptions(harness: Harness) -> None:
    sim = harness.sim
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)

    def requests(msg_id: int) -> int:
        return sum(1 for r in sim.received(client_id=CLIENT_ID) if r.msg_id == msg_id)

    await eventually(lambda: requests(92) == len(ACCOUNTS))  # reqPnL per account at connect
    pnl_before, multi_before = requests(92), requests(76)
    sim.faults.inject_error(1101)
    await eventually(lambda: requests(92) == pnl_before + len(ACCOUNTS))
    await eventually(lambda: requests(76) == multi_before + len(ACCOUNTS))
    assert requests(93) == len(ACCOUNTS)  # the stale subscriptions were cancelled first
    assert [e.code for e in harness.events if e.kind.value == "restored"] == [1101]
    await asyncio.wait_for(g.poll_pnl(), 5)
    await eventually(lambda: g.snapshot().accounts[DU1].daily_pnl is not None)


async def test_error_326_at_connect_is_reported_as_client_id_in_use(harness: Harness) -> None:
    first = harness.gateway()
    await asyncio.wait_for(first.connect(), 5)
    second = harness.gateway()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ClientIdInUse, match=f"client id {CLIENT_ID} is already in use") as err:
        await asyncio.wait_for(second.connect(), 5)
    assert err.value.client_id == CLIENT_ID
    assert loop.time() - started < 1.0  # not the whole connect timeout
    assert "client_id_in_use" in harness.kinds()
    # the daemon's retry keeps the reserved id: a backoff delay, then the same id again
    delay = await asyncio.wait_for(second.ensure_connected(), 5)
    assert delay > 0
    start_api = [r.fields for r in harness.sim.received() if r.msg_id == 71]
    assert [int(f[2]) for f in start_api] == [CLIENT_ID] * 3
    assert first.is_connected()


async def test_a_refused_connection_is_gateway_unavailable(harness: Harness) -> None:
    sim = harness.sim
    port = sim.port
    await asyncio.wait_for(sim.stop(), 5)
    g = harness.gateway(port=port)
    with pytest.raises(GatewayUnavailable, match="cannot connect"):
        await asyncio.wait_for(g.connect(), 5)
    assert g.health is Health.DOWN and g.connect_failures == 1
    assert g.status().down_since is not None
    await asyncio.wait_for(sim.start(port=port), 5)  # the fixture stops it again


@pytest.mark.parametrize(("port", "paper"), [(4001, True), (7496, True), (4002, False), (7497, False)])
async def test_a_paper_live_port_mismatch_refuses_to_start_before_connecting(
    harness: Harness, port: int, paper: bool
) -> None:
    g = harness.gateway(port=port, paper=paper)
    with pytest.raises(SafetyValveError, match=f"gateway.port {port}"):
        await asyncio.wait_for(g.connect(), 5)
    assert g.connect_attempts == 0  # refused before any socket was opened


async def test_live_config_on_a_gateway_with_paper_accounts_refuses_to_start(harness: Harness) -> None:
    g = harness.gateway(paper=False)
    with pytest.raises(SafetyValveError, match=r"paper is false .* DU111111, DU222222"):
        await asyncio.wait_for(g.connect(), 5)
    assert g.is_connected() is False
    await eventually(lambda: harness.sim.connected_clients() == [])
    # a supervisor never retries a safety-valve refusal
    with pytest.raises(SafetyValveError):
        await asyncio.wait_for(g.ensure_connected(), 5)


async def test_a_configured_account_the_gateway_does_not_manage_refuses_to_start(harness: Harness) -> None:
    g = harness.gateway(accounts=(DU1, "DU999999"))
    with pytest.raises(SafetyValveError, match="not managed by this gateway: DU999999"):
        await asyncio.wait_for(g.connect(), 5)
    await eventually(lambda: harness.sim.connected_clients() == [])


async def test_heartbeat_tracks_rtt_and_the_gateway_clock_skew(harness: Harness) -> None:
    harness.sim.faults.clock_skew(30.0)
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    rtt = await asyncio.wait_for(g.heartbeat(), 5)
    status = g.status()
    assert status.heartbeat_rtt == rtt and 0 <= rtt < 0.5
    assert status.clock_skew == pytest.approx(30.0, abs=1.0)  # whole-second server time
    assert status.last_heartbeat is not None


async def test_tcp_keepalive_is_enabled_on_the_gateway_socket(harness: Harness) -> None:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    settings = g.keepalive_settings()
    assert settings["SO_KEEPALIVE"] == 1
    assert settings.get("TCP_KEEPIDLE", 10) == 10


async def test_malformed_gateway_messages_are_counted_and_survived(harness: Harness) -> None:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 5)
    harness.sim.server.broadcast([94, 1, "not-a-number", "x", "y"], client_id=CLIENT_ID)
    harness.sim.server.broadcast([999, 1], client_id=CLIENT_ID)
    await eventually(lambda: g.malformed_messages == 2)
    assert harness.kinds().count("malformed") == 2
    assert await asyncio.wait_for(g.heartbeat(), 5) >= 0  # still alive


async def test_a_broken_event_listener_does_not_break_the_gateway(harness: Harness) -> None:
    def explode(_: object) -> None:
        raise RuntimeError("listener bug")

    g = harness.gateway(on_event=explode)
    await asyncio.wait_for(g.connect(), 5)
    assert g.is_connected()


async def test_close_leaves_no_tasks_threads_or_sockets_behind(harness: Harness) -> None:
    tasks_before = asyncio.all_tasks()
    threads_before = threading.active_count()
    g = harness.gateway()
    async with supervised(g):
        await eventually(lambda: g.tracker.last_ok_at is not None)
        await asyncio.wait_for(g.poll_positions(), 5)
    await asyncio.wait_for(g.close(), 5)
    assert g.health is Health.DOWN and not g.is_connected()
    await eventually(lambda: harness.sim.connected_clients() == [])
    # the simulator's own connection handler finishes on its side of the socket: wait for it
    await eventually(lambda: asyncio.all_tasks() == tasks_before)
    assert threading.active_count() == threads_before


async def test_heartbeat_rtts_are_reported_for_the_histogram_and_close_is_final(harness: Harness) -> None:
    seen: list[float] = []
    g = harness.gateway(on_heartbeat=seen.append)
    await asyncio.wait_for(g.connect(), 5)
    rtt = await asyncio.wait_for(g.heartbeat(), 5)
    assert seen == [rtt]
    await asyncio.wait_for(g.close(), 5)
    assert g.closed
    with pytest.raises(GatewayUnavailable, match="closed by the watchdog"):
        await asyncio.wait_for(g.connect(), 5)
    await asyncio.wait_for(g.supervise(asyncio.Event()), 5)  # returns at once once closed


async def test_a_heartbeat_queued_behind_our_own_request_burst_is_not_a_miss(harness: Harness) -> None:
    g = harness.gateway()  # timeout 150 ms, 2 misses
    await asyncio.wait_for(g.connect(), 5)
    ib = g._require()
    for _ in range(90):  # two seconds' worth of ib_async's 45 requests/s self-throttle
        ib.client.reqIds(1)  # harmless requests that fill the queue
    assert len(ib.client._msgQ) > 30  # the heartbeat will wait behind these in our own queue

    rtt = await asyncio.wait_for(g.heartbeat(), 10)

    assert rtt > FAST_HB.timeout  # it did wait longer than the gateway's timeout ...
    assert g.tracker.consecutive_misses == 0  # ... and that wait was not held against the gateway
    assert g.is_connected()
