"""The kill switch: plan → cancel → close → verify → escalate, with the latch and the lockout.

It reaches the gateway only through the small `Broker` protocol (`watchdog.gateway.Gateway`
satisfies it; tests use fakes and the simulator), persists through `watchdog.state`, and may
import `watchdog.config`, `watchdog.state`, the ground floor and `watchdog.market_hours`.
"""

from __future__ import annotations

from watchdog.kill.broker import Broker
from watchdog.kill.run import KillEvent, KillEventKind
from watchdog.kill.switch import KillSwitch, reset_latch

__all__ = ["Broker", "KillEvent", "KillEventKind", "KillSwitch", "reset_latch"]
