"""Order messages ahead of ib_async's request queue: a kill never waits behind queued look-ups.

ib_async paces every request to 45 per second (`Client.MaxRequests` in `RequestsInterval`, client.py
`sendMsg`) and queues the rest in arrival order. After a connect, or while contract details and quotes
are being looked up, that queue can hold a hundred requests — seconds of waiting — and a
`reqGlobalCancel` sent then would wait behind all of them. IB's own limit is 50 messages per second
(TWS API "Message rate limits"), so the one global cancel of a kill goes out at once, beyond the
library's pacing but within IB's margin; cancels and closing orders go first in line and keep the
pacing (a flatten of hundreds of positions must not break the 50/s limit).
"""

from __future__ import annotations

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
