"""Prometheus series of the dead-man's switch: each bot's last heartbeat, up, heartbeats and refusals.

Label sets are bounded: `bot` takes the configured names only, `reason` the receiver's fixed set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["BotMetrics"]

PREFIX = "ibkr_watchdog_"


class BotMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r, p = registry, PREFIX
        self.last_heartbeat = Gauge(
            p + "bot_last_heartbeat_timestamp_seconds",
            "Epoch of the bot's last accepted heartbeat (NaN: none since start or a clean stop)",
            ["bot"],
            registry=r,
        )
        self.up = Gauge(
            p + "bot_up",
            "1 heartbeating, 0 silent past its bot_silence limit (dead-man due), NaN not armed",
            ["bot"],
            registry=r,
        )
        self.heartbeats = Counter(
            p + "bot_heartbeats", "Heartbeats accepted from the bot", ["bot"], registry=r
        )
        self.rejected = Counter(
            p + "bot_heartbeat_rejected",
            "Heartbeat requests refused without effect, by reason",
            ["reason"],
            registry=r,
        )
        self.flooded = Gauge(
            p + "bot_listener_flooded",
            "1 while the heartbeat listener evicts or refuses connections (bot_silence kills held), else 0",
            registry=r,
        )
        self._bots: set[str] = set()

    def declare(self, bots: Iterable[str], reasons: Iterable[str]) -> None:
        """Every series at its start value (counters 0, gauges NaN); bots no longer configured go."""
        keep = set(bots)
        for gone in self._bots - keep:
            for metric in (self.last_heartbeat, self.up, self.heartbeats):
                metric.remove(gone)
        for bot in keep - self._bots:
            self.heartbeats.labels(bot)
            self.last_heartbeat.labels(bot).set(math.nan)
            self.up.labels(bot).set(math.nan)
        for reason in reasons:
            self.rejected.labels(reason)
        self._bots = keep

    def observe_heartbeat(self, bot: str, at: float) -> None:
        self.heartbeats.labels(bot).inc()
        self.last_heartbeat.labels(bot).set(at)

    def set_flooded(self, flooded: bool) -> None:
        self.flooded.set(1 if flooded else 0)

    def observe_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def set_state(self, bot: str, last_seen: float | None, up: bool | None) -> None:
        """`up` None = not armed (never heard since start, or stopped cleanly): NaN, never 0."""
        if bot not in self._bots:
            return
        self.last_heartbeat.labels(bot).set(math.nan if last_seen is None else last_seen)
        self.up.labels(bot).set(math.nan if up is None else (1 if up else 0))
