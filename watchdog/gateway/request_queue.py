"""Order messages ahead of ib_async's request queue: a kill never waits behind queued look-ups.

ib_async paces every request to 45 per second (`Client.MaxRequests` in `RequestsInterval`, client.py
`sendMsg`) and queues the rest in arrival order. After a connect, or while contract details and quotes
are being looked up, that queue can hold a hundred requests — seconds of waiting — and a
`reqGlobalCancel` sent then would wait behind all of them. IB's own limit is 50 messages per second
(TWS API "Message rate limits"), so the one global cancel of a kill goes out at once, beyond the
library's pacing but within IB's margin; cancels and closing orders go first in line and keep the
pacing (a flatten of hundreds of positions must not break the 50/s limit). `own_queue_delay` is
how long that queue holds a new request back: a heartbeat's budget counts it as ours, not the gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def ahead_of_queue(client: Any, *, unpaced: bool = False) -> Iterator[None]:
    """Messages sent inside the block leave before every request already queued.

    `client` is an `ib_async.Client`. With `unpaced=True` they leave now even when the pacing
    window is full (use for single messages only); otherwise they wait only for the window.
    The queued requests follow, in their order, paced as before.
    """
    queued = list(client._msgQ)
    client._msgQ.clear()
    saved = client.MaxRequests
    if unpaced:
        client.MaxRequests = 0  # 0 = no pacing in ib_async's sendMsg
    try:
        yield
    finally:
        client.MaxRequests = saved
        client._msgQ.extend(queued)
        if queued:
            client.sendMsg(None)  # drain what the window allows now; ib_async's timer drains the rest


def own_queue_delay(client: Any) -> float:
    """How long our own request queue will hold a new request back before it reaches the socket (s).

    `client` is an `ib_async.Client`. ib_async throttles itself to 45 requests/s; behind a burst
    (connect, a large flatten) a heartbeat waits in that queue. That wait is ours, not the
    gateway's: it is added to the heartbeat's budget so a busy but healthy gateway is never
    declared half-open.
    """
    queued = len(getattr(client, "_msgQ", ()))
    if not client.MaxRequests:
        return 0.0
    if not queued:
        # nothing waits yet, but a window already full of requests holds the next one back too
        times = getattr(client, "_timeQ", ())
        now = asyncio.get_running_loop().time()
        if sum(1 for t in times if now - t <= client.RequestsInterval) < client.MaxRequests:
            return 0.0
    # the current window is spent (that is why requests queue): one more window, plus one per batch
    return float((queued // client.MaxRequests + 1) * client.RequestsInterval)
