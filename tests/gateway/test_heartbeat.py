"""Heartbeat miss counting, RTT, clock skew and the reconnect backoff (pure)."""

from __future__ import annotations

import pytest

from watchdog.gateway.heartbeat import Backoff, HeartbeatTracker


def test_a_single_miss_is_down_when_misses_is_one() -> None:
    t = HeartbeatTracker(interval=1.0, timeout=1.5, misses=1)
    assert t.wait_budget(10.0) == pytest.approx(1.5)
    assert t.missed(sent=10.0, now=11.5) is True


def test_it_needs_consecutive_misses_and_an_answer_resets_the_streak() -> None:
    t = HeartbeatTracker(interval=1.0, timeout=0.5, misses=3)
    assert t.missed(sent=0.0, now=0.5) is False
    assert t.missed(sent=1.0, now=1.5) is False
    t.answered(sent=2.0, received=2.1, sent_epoch=1000.0, server_epoch=1000.0)
    assert t.consecutive_misses == 0
    assert t.missed(sent=3.0, now=3.5) is False
    assert t.missed(sent=4.0, now=4.5) is False
    assert t.missed(sent=5.0, now=5.5) is True


def test_detection_stays_within_interval_times_misses_plus_timeout_when_timeout_exceeds_interval() -> None:
    t = HeartbeatTracker(interval=0.2, timeout=0.3, misses=2)
    t.answered(sent=0.0, received=0.01, sent_epoch=0.0, server_epoch=0.0)
    first = 0.2  # first unanswered heartbeat
    assert t.wait_budget(first) == pytest.approx(0.3)
    assert t.missed(sent=first, now=first + 0.3) is False
    second = first + 0.3  # sent right after (sequential heartbeats)
    # only what is left until the deadline: (misses - 1) * interval + timeout after the first miss
    assert t.wait_budget(second) == pytest.approx(0.2)
    assert t.missed(sent=second, now=second + 0.2) is True
    assert second + 0.2 <= 0.0 + 2 * 0.2 + 0.3 + 1e-9


def test_rtt_and_clock_skew_account_for_half_the_round_trip_and_whole_second_server_time() -> None:
    t = HeartbeatTracker(interval=1.0, timeout=1.0, misses=1)
    rtt = t.answered(sent=5.0, received=5.2, sent_epoch=1_000.0, server_epoch=1_030.0)
    assert rtt == pytest.approx(0.2)
    # gateway stamped at ~1000.1 our time; its truncated 1030 means 1030.0..1031.0 → centre 1030.5
    assert t.clock_skew == pytest.approx(30.4)
    assert t.last_heartbeat == pytest.approx(1_000.2)


def test_backoff_grows_exponentially_and_is_capped() -> None:
    b = Backoff(initial=1.0, maximum=8.0, rand=lambda: 0.0)
    assert [b.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next_delay() == 1.0


def test_backoff_jitter_only_shortens_so_the_cap_holds() -> None:
    b = Backoff(initial=1.0, maximum=4.0, jitter=0.5, rand=lambda: 1.0)
    assert [b.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    high = Backoff(initial=1.0, maximum=4.0, jitter=0.5, rand=lambda: 0.0)
    assert max(high.next_delay() for _ in range(10)) == 4.0
