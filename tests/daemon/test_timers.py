"""MonotonicJobs: periodic runs on the loop's clock, never doubled, a failing job keeps its timer."""

from __future__ import annotations

import asyncio

import pytest

from tests.daemon.conftest import until
from watchdog.daemon.timers import MonotonicJobs


async def test_a_run_still_going_is_not_doubled_and_the_timer_goes_on() -> None:
    jobs = MonotonicJobs()
    release = asyncio.Event()
    started = 0

    async def slow() -> None:
        nonlocal started
        started += 1
        await release.wait()

    jobs.every("slow", 0.02, slow)
    try:
        await until(lambda: jobs.jobs["slow"].skipped >= 3, 2, "ticks skipped while the run goes on")
        assert started == 1
        release.set()
        await until(lambda: started >= 2, 2, "the next run after it finished")
    finally:
        await jobs.stop()
    assert jobs.jobs == {}


async def test_a_failing_job_keeps_its_timer(caplog: pytest.LogCaptureFixture) -> None:
    jobs = MonotonicJobs()
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("poll failed")

    jobs.every("broken", 0.01, broken)
    try:
        await until(lambda: calls >= 3, 2, "runs after failures")
    finally:
        await jobs.stop()
    assert "job broken failed" in caplog.text
