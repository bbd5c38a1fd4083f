"""Pure heartbeat bookkeeping (misses, RTT, clock skew) and the reconnect backoff.

No I/O here: `gateway.Gateway` feeds in monotonic and epoch timestamps, so the rules that decide
"the gateway is down" are unit-tested without sockets or sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# The gateway's currentTime is whole epoch seconds (truncated), so the true gateway time lies in
# [t, t + 1): centring on t + 0.5 gives a skew estimate within ±0.5 s (plus half the RTT asymmetry).
_SERVER_TIME_RESOLUTION = 1.0


@dataclass(slots=True)
class HeartbeatTracker:
    """Counts consecutive unanswered heartbeats and decides when the gateway is down.

    DOWN when `misses` consecutive heartbeats went unanswered, and at the latest
    `(misses - 1) * interval + timeout` after the first unanswered one was sent — so detection stays
    within `interval * misses + timeout` of the last answered heartbeat even when `timeout > interval`
    (heartbeats are sequential: ib_async keeps only one pending reqCurrentTime).
    """

    interval: float
    timeout: float
    misses: int
    consecutive_misses: int = 0
    streak_started: float | None = None  # monotonic send time of the first unanswered heartbeat
    last_ok_sent: float | None = None  # monotonic send time of the last answered heartbeat
    last_ok_at: float | None = None  # monotonic receive time of the last answer
    last_heartbeat: float | None = None  # epoch receive time of the last answer
    rtt: float | None = None
    clock_skew: float | None = None  # gateway clock minus ours, seconds (resolution ~1 s)

    def deadline(self, sent: float) -> float:
        """Monotonic time by which an answer must arrive before the gateway counts as down."""
        start = self.streak_started if self.streak_started is not None else sent
        return start + (self.misses - 1) * self.interval + self.timeout

    def wait_budget(self, sent: float) -> float:
        """How long a heartbeat sent at monotonic `sent` may wait for its answer."""
        return max(0.0, min(self.timeout, self.deadline(sent) - sent))

    def answered(self, *, sent: float, received: float, sent_epoch: float, server_epoch: float) -> float:
        """Record an answer; returns the round-trip time in seconds."""
        rtt = max(0.0, received - sent)
        self.rtt = rtt
        self.last_ok_sent = sent
        self.last_ok_at = received
        self.last_heartbeat = sent_epoch + rtt
        # our clock at the moment the gateway stamped its answer ≈ send time + half the round trip
        ours_at_stamp = sent_epoch + rtt / 2.0
        self.clock_skew = server_epoch + _SERVER_TIME_RESOLUTION / 2.0 - ours_at_stamp
        self.consecutive_misses = 0
        self.streak_started = None
        return rtt

    def missed(self, *, sent: float, now: float) -> bool:
        """Record an unanswered heartbeat; True when the gateway must now be treated as down."""
        deadline = self.deadline(sent)
        if self.streak_started is None:
            self.streak_started = sent
        self.consecutive_misses += 1
        return self.consecutive_misses >= self.misses or now >= deadline - 1e-6

    def reset(self) -> None:
        """A fresh connection: forget the miss streak (RTT and skew stay as last known)."""
        self.consecutive_misses = 0
        self.streak_started = None


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with jitter for reconnect attempts.

    Delay n (from 0) is `min(maximum, initial * factor**n)` shortened by up to `jitter` of itself,
    so the cap is never exceeded and many watchdogs restarting together do not reconnect in step.
    """

    initial: float
    maximum: float
    factor: float = 2.0
    jitter: float = 0.2
    rand: Callable[[], float] = field(default=random.random)
    attempts: int = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return base * (1.0 - self.jitter * self.rand())

    def reset(self) -> None:
        """Called after a healthy connection: the next outage starts again from `initial`."""
        self.attempts = 0
