"""Cron helpers for scheduled rules and quiet windows: APScheduler CronTrigger with zoneinfo, DST-correct.

DST semantics (docs/rules.md):
- a cron time fires **once per wall-clock time**: on the night clocks go back, `30 1 * * *` fires at
  the first 01:30 only (APScheduler alone fires at both); a wall time skipped when clocks go forward
  (02:30 in New York in March) fires at the moment it would have been, one hour later on the wall;
- a quiet window lasts its `duration` in real elapsed seconds from its (single) start, so a one-hour
  window over the change is one hour long, never two.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from watchdog.config.schema import QuietWindow, Schedule
from watchdog.rules.evaluate import ALL, AllRules

__all__ = [
    "ALL",
    "AllRules",
    "cron_trigger",
    "cron_trigger_expr",
    "in_quiet_window",
    "next_fire_times",
    "suspended",
    "window_open_since",
]

_UTC = datetime.UTC


class OncePerWallClockTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 ships no types
    """A CronTrigger that skips the second occurrence of a wall-clock time repeated by a fall-back."""

    def get_next_fire_time(
        self, previous_fire_time: datetime.datetime | None, now: datetime.datetime
    ) -> datetime.datetime | None:
        fire: datetime.datetime | None = super().get_next_fire_time(previous_fire_time, now)
        for _ in range(4):  # at most one repeated hour a night; bounded all the same
            if fire is None or not _is_repeat(fire):
                return fire
            fire = super().get_next_fire_time(fire, fire)
        return fire


def _is_repeat(fire: datetime.datetime) -> bool:
    """True when `fire` is the second occurrence (after the fall-back) of its wall-clock time."""
    tz = fire.tzinfo
    if tz is None:
        return False
    wall = fire.astimezone(tz).replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0)
    return first.timestamp() < fire.timestamp()


@functools.lru_cache(maxsize=128)
def cron_trigger_expr(expr: str, timezone: str) -> CronTrigger:
    """A trigger for a five-field crontab in an IANA time zone (wall-clock times follow DST), firing
    once per wall-clock time (see the module docstring).

    Cached: quiet windows are checked on every evaluation, and a trigger is immutable once built."""
    return OncePerWallClockTrigger.from_crontab(expr, timezone=ZoneInfo(timezone))


def cron_trigger(schedule: Schedule) -> CronTrigger:
    """The trigger the daemon registers for a scheduled rule."""
    return cron_trigger_expr(schedule.cron, schedule.timezone)


def next_fire_times(trigger: CronTrigger, after_epoch: float, count: int) -> list[datetime.datetime]:
    """The next `count` fire times strictly after `after_epoch` (aware datetimes in the trigger's zone)."""
    out: list[datetime.datetime] = []
    now = datetime.datetime.fromtimestamp(after_epoch, _UTC)
    previous: datetime.datetime | None = None
    while len(out) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        if fire.timestamp() > after_epoch:
            out.append(fire)
        previous = fire
        now = fire
    return out


def window_open_since(window: QuietWindow, now_epoch: float) -> float | None:
    """Epoch when the window currently open began, or None if `now` is outside it.

    Open means: a cron start s with s ≤ now < s + duration, durations counted in real elapsed
    seconds (a 2 h window over a DST change is still 2 h long).
    """
    trigger = cron_trigger_expr(window.cron, window.timezone)
    # The first start at or after (now - duration); it is open if it is not later than now.
    earliest = now_epoch - window.duration
    start = trigger.get_next_fire_time(None, datetime.datetime.fromtimestamp(earliest, _UTC))
    if start is None:
        return None
    s = start.timestamp()
    if s <= earliest:  # exactly at the edge: that window has just closed; the next one may be open
        later = trigger.get_next_fire_time(start, start)
        if later is None:
            return None
        s = later.timestamp()
    return s if s <= now_epoch else None


def in_quiet_window(windows: Iterable[QuietWindow], now_epoch: float) -> set[str] | AllRules:
    """The rule names suspended at `now_epoch`; ALL when an open window lists no rules."""
    names: set[str] = set()
    for window in windows:
        if window_open_since(window, now_epoch) is None:
            continue
        if not window.rules:
            return ALL
        names.update(window.rules)
    return names


suspended = in_quiet_window  # the name the daemon's evaluation step reads best with
