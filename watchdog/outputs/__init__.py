"""Outputs: apprise notifications, Prometheus metrics, systemd sd_notify and logging.

Never in the kill's way: every call is non-blocking or bounded, and a failure here is counted
and logged, never raised into the kill path. It may import `watchdog.config` and the ground floor.
"""

from __future__ import annotations

from watchdog.outputs.metrics import Metrics
from watchdog.outputs.notifier import Notifier
from watchdog.outputs.systemd_notify import SdNotifier

__all__ = ["Metrics", "Notifier", "SdNotifier"]
