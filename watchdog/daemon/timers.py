"""Periodic jobs on the event loop's monotonic clock: a wall-clock step can neither stop nor burst them.

APScheduler 3's interval trigger computes each next run in wall time: stepping the clock back one
hour (NTP correcting a bad clock, an operator's `date -s`) stopped the heartbeat, the polls, the
evaluation and with it the systemd keep-alive for that hour, and health stayed "healthy" with the
gateway muted. Periodic jobs therefore run here, on `loop.call_later` (CLOCK_MONOTONIC); APScheduler
keeps only the cron rules, which are wall-clock by nature.

Semantics match the APScheduler options the daemon used (`max_instances=1, coalesce=True`): a run
still going when the next is due is not doubled (that tick is skipped), and ticks missed while the
loop was busy are folded into one run, the schedule then continuing from now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("watchdog.daemon.timers")

JobFn = Callable[[], Awaitable[object]]


@dataclass(slots=True)
class _Job:
    name: str
    interval: float
    fn: JobFn
    due: float  # loop.time() of the next run
    handle: asyncio.TimerHandle | None = None
    task: asyncio.Task[object] | None = None
    runs: int = 0
    skipped: int = 0


@dataclass
class MonotonicJobs:
    """Named periodic coroutine jobs on the running loop. Not thread-safe: use from the loop only."""

    jobs: dict[str, _Job] = field(default_factory=dict)

    def every(self, name: str, seconds: float, fn: JobFn, *, first_in: float | None = None) -> None:
        """Run `fn()` every `seconds` (first after `first_in`, default one interval); replaces `name`."""
        if seconds <= 0:
            raise ValueError(f"interval of job {name!r} must be positive, got: {seconds}")
        self.remove(name)
        loop = asyncio.get_running_loop()
        job = _Job(name, seconds, fn, loop.time() + (seconds if first_in is None else first_in))
        self.jobs[name] = job
        self._arm(loop, job)

    def remove(self, name: str) -> None:
        """Stop scheduling `name`; a run already going finishes on its own."""
        job = self.jobs.pop(name, None)
        if job is not None and job.handle is not None:
            job.handle.cancel()

    def remove_all(self) -> None:
        for name in list(self.jobs):
            self.remove(name)

    async def stop(self) -> None:
        """Remove every job and cancel the runs still going (a bounded stop)."""
        running = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        self.remove_all()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def runs(self, name: str) -> int:
        """How many times `name` has started (tests, diagnostics)."""
        job = self.jobs.get(name)
        return 0 if job is None else job.runs

    def _arm(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        job.handle = loop.call_at(job.due, self._fire, loop, job)

    def _fire(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        if self.jobs.get(job.name) is not job:
            return  # removed or replaced meanwhile
        if job.task is not None and not job.task.done():
            job.skipped += 1  # max_instances=1: the previous run is still going
        else:
            job.runs += 1
            job.task = loop.create_task(self._run(job), name=f"job:{job.name}")
        now = loop.time()
        job.due += job.interval
        if job.due <= now:  # coalesce: missed ticks are one run, then continue from now
            job.due = now + job.interval
        self._arm(loop, job)

    @staticmethod
    async def _run(job: _Job) -> object:
        try:
            return await job.fn()
        except asyncio.CancelledError:
            raise
        except Exception:  # a failing job must not stop its timer (the next tick runs it again)
            log.exception("job %s failed", job.name)
            return None
