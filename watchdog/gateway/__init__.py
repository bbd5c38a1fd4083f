"""The gateway: the watchdog's only door to TWS / IB Gateway, and the only importer of `ib_async`.

Connection with safety valve, reqCurrentTime heartbeat and half-open detection, reconnect,
polls into a `Snapshot`, and the order calls the kill switch makes through the `Broker`
protocol. It may import `watchdog.config`, the ground floor and `watchdog.market_hours`.
"""

from __future__ import annotations

from watchdog.gateway.client import EventKind, Gateway, GatewayEvent

__all__ = ["EventKind", "Gateway", "GatewayEvent"]
