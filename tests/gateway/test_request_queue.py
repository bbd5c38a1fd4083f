"""A kill's order messages leave ahead of ib_async's request queue (real ib_async, real TCP)."""

from __future__ import annotations

import asyncio

import pytest

from tests.gateway.conftest import Harness, eventually

pytestmark = pytest.mark.integration

QUEUED = 180  # four seconds of look-ups at ib_async's 45 requests per second


def _ids(harness: Harness) -> list[int]:
    return [f.msg_id for f in harness.sim.received()]


async def test_the_global_cancel_overtakes_a_queue_of_look_ups_and_the_queue_still_drains(
    harness: Harness,
) -> None:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 10)
    ib = g._require()  # the test fills the library's queue the way a connect burst or look-ups do
    before = len(_ids(harness))
    for _ in range(QUEUED):
        ib.client.reqCurrentTime()
    assert len(ib.client._msgQ) > QUEUED // 2  # most of them are waiting in ib_async's queue

    await g.global_cancel()

    await eventually(lambda: 58 in _ids(harness)[before:], within=1.0)
    sent = _ids(harness)[before:]
    # at most one pacing window (45) of the look-ups left before the global cancel, never the rest
    assert sent.index(58) <= 45
    # nothing queued was lost or reordered: every look-up still reaches the gateway afterwards
    await eventually(lambda: _ids(harness)[before:].count(49) == QUEUED, within=10.0)


async def test_a_closing_cancel_goes_first_in_line_and_keeps_the_pacing(harness: Harness) -> None:
    g = harness.gateway()
    await asyncio.wait_for(g.connect(), 10)
    ib = g._require()
    before = len(_ids(harness))
    for _ in range(QUEUED):
        ib.client.reqCurrentTime()

    await g.cancel_order(424242)

    await eventually(lambda: 4 in _ids(harness)[before:], within=2.5)
    sent = _ids(harness)[before:]
    assert sent.index(4) <= 2 * 45  # within the next pacing window, not after four seconds of queue
    await eventually(lambda: _ids(harness)[before:].count(49) == QUEUED, within=10.0)
