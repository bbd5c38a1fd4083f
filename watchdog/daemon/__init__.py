"""The daemon: wiring, lifecycle, timers (monotonic; APScheduler for cron), signals, reload, control, `run`.

It owns the event loop and connects the stages (gateway → rules → kill switch → outputs, with
state and config beside them). It may import every package above; nothing but the top-level
commands (`watchdog.cli`, `watchdog.demo`) imports it.
"""

from __future__ import annotations

from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import Components, build_components

__all__ = ["Components", "Daemon", "build_components"]
