"""Cron triggers and quiet windows in New York time, on both sides of the 2026 US DST changes."""

from __future__ import annotations

import datetime

import pytest

from watchdog.config.schema import QuietWindow, Schedule
from watchdog.rules.evaluate import ALL, RuleMemory, evaluate
from watchdog.rules.schedule import (
    cron_trigger,
    cron_trigger_expr,
    in_quiet_window,
    next_fire_times,
    window_open_since,
)

from .helpers import pnl, rule

UTC = datetime.UTC


def utc(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=UTC).timestamp()


def iso(fires: list[datetime.datetime]) -> list[str]:
    return [f.astimezone(UTC).strftime("%a %m-%d %H:%M") for f in fires]


def test_a_1555_new_york_rule_fires_at_the_right_utc_instants_across_the_march_change() -> None:
    trigger = cron_trigger(Schedule(cron="55 15 * * mon-fri", timezone="America/New_York"))
    fires = next_fire_times(trigger, utc(2026, 3, 5), 4)
    # EST (UTC-5) until Sunday 2026-03-08 02:00, EDT (UTC-4) after; no weekend fires
    assert iso(fires) == ["Thu 03-05 20:55", "Fri 03-06 20:55", "Mon 03-09 19:55", "Tue 03-10 19:55"]
    assert all((f.hour, f.minute) == (15, 55) for f in fires)  # always 15:55 on the New York clock


def test_a_1555_new_york_rule_fires_at_the_right_utc_instants_across_the_november_change() -> None:
    trigger = cron_trigger(Schedule(cron="55 15 * * mon-fri", timezone="America/New_York"))
    fires = next_fire_times(trigger, utc(2026, 10, 29), 4)
    assert iso(fires) == ["Thu 10-29 19:55", "Fri 10-30 19:55", "Mon 11-02 20:55", "Tue 11-03 20:55"]


def test_next_fire_times_are_strictly_after_the_given_instant() -> None:
    trigger = cron_trigger_expr("55 15 * * *", "America/New_York")
    at_fire = utc(2026, 3, 9, 19, 55)
    assert next_fire_times(trigger, at_fire, 1)[0].timestamp() == at_fire + 86_400


NIGHTLY = QuietWindow.model_validate(
    {"name": "nightly", "cron": "45 23 * * *", "duration": "2h", "rules": ["gateway-down"]}
)


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        # Saturday 2026-03-07 23:45 EST = 04:45 UTC; two real hours later = 06:45 UTC (after the jump)
        ((2026, 3, 8, 4, 44), False),
        ((2026, 3, 8, 4, 45), True),
        ((2026, 3, 8, 6, 44), True),
        ((2026, 3, 8, 6, 45), False),
        # Sunday 2026-03-08 23:45 EDT = 03:45 UTC next day
        ((2026, 3, 9, 3, 44), False),
        ((2026, 3, 9, 3, 45), True),
        # Saturday 2026-10-31 23:45 EDT = 03:45 UTC; the window ends 05:45 UTC (01:45 EST, the second one)
        ((2026, 11, 1, 3, 45), True),
        ((2026, 11, 1, 5, 44), True),
        ((2026, 11, 1, 5, 45), False),
        # Sunday 2026-11-01 23:45 EST = 04:45 UTC next day
        ((2026, 11, 2, 3, 45), False),
        ((2026, 11, 2, 4, 45), True),
    ],
)
def test_the_nightly_quiet_window_follows_new_york_time_across_dst(
    instant: tuple[int, ...], inside: bool
) -> None:
    now = utc(*instant)
    assert in_quiet_window([NIGHTLY], now) == ({"gateway-down"} if inside else set())


def test_window_open_since_gives_the_start_of_the_open_window() -> None:
    assert window_open_since(NIGHTLY, utc(2026, 3, 8, 5, 0)) == utc(2026, 3, 8, 4, 45)
    assert window_open_since(NIGHTLY, utc(2026, 3, 8, 12, 0)) is None


def test_a_window_without_a_rule_list_suspends_every_condition_rule() -> None:
    every = QuietWindow.model_validate(
        {"name": "all", "cron": "0 12 * * *", "duration": "30m", "timezone": "UTC"}
    )
    assert in_quiet_window([every, NIGHTLY], utc(2026, 5, 1, 12, 10)) is ALL
    assert in_quiet_window([every], utc(2026, 5, 1, 12, 30)) == set()


def test_rules_in_an_open_quiet_window_do_not_fire() -> None:
    loss = rule("daily_pnl <= -2500", name="loss")
    window = QuietWindow.model_validate(
        {"name": "w", "cron": "0 9 * * *", "duration": "1h", "timezone": "UTC", "rules": ["loss"]}
    )
    inside = utc(2026, 5, 1, 9, 30)
    m = RuleMemory()
    assert evaluate([loss], pnl(inside, DU1=-9000), inside, m, in_quiet_window([window], inside)) == []
    after = utc(2026, 5, 1, 10, 0)
    out = evaluate([loss], pnl(after, DU1=-9000), after, m, in_quiet_window([window], after))
    assert [b.rule for b in out] == ["loss"]


def test_an_invalid_cron_expression_is_refused() -> None:
    with pytest.raises(ValueError, match="Wrong number of fields"):
        cron_trigger_expr("55 15 * *", "America/New_York")


# ---- the night clocks go back: 2026-11-01 02:00 EDT → 01:00 EST, so 01:00–01:59 happens twice in New York
def test_a_cron_time_in_the_repeated_hour_fires_once_on_the_fall_back_night() -> None:
    trigger = cron_trigger(Schedule(cron="30 1 * * *", timezone="America/New_York"))
    fires = next_fire_times(trigger, utc(2026, 10, 31, 12), 3)
    # the first 01:30 (EDT, 05:30 UTC) only, not the second (EST, 06:30 UTC); then every night as usual
    assert iso(fires) == ["Sun 11-01 05:30", "Mon 11-02 06:30", "Tue 11-03 06:30"]


def test_an_hourly_cron_skips_the_repeated_wall_clock_hour() -> None:
    fires = next_fire_times(cron_trigger_expr("30 * * * *", "America/New_York"), utc(2026, 11, 1, 4), 3)
    # 01:30 EDT, then 02:30 EST: the wall clock never reads 01:30 a second time for this rule
    assert iso(fires) == ["Sun 11-01 04:30", "Sun 11-01 05:30", "Sun 11-01 07:30"]


def test_a_skipped_wall_time_in_march_fires_once_an_hour_later() -> None:
    fires = next_fire_times(cron_trigger_expr("30 2 * * *", "America/New_York"), utc(2026, 3, 7, 12), 2)
    # 02:30 does not exist on 2026-03-08 (02:00 EST → 03:00 EDT): it fires at 03:30 EDT = 07:30 UTC
    assert iso(fires) == ["Sun 03-08 07:30", "Mon 03-09 06:30"]


def test_a_one_hour_quiet_window_over_the_fall_back_lasts_one_real_hour() -> None:
    window = QuietWindow.model_validate(
        {"name": "one-hour", "cron": "0 1 * * *", "duration": "1h", "timezone": "America/New_York",
         "rules": ["gateway-down"]}
    )  # fmt: skip
    night = range(int(utc(2026, 11, 1, 3)), int(utc(2026, 11, 1, 9)), 60)
    inside = [t for t in night if in_quiet_window([window], t)]
    assert len(inside) == 60  # minutes: one real hour, not two
    assert (inside[0], inside[-1]) == (utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 59))
