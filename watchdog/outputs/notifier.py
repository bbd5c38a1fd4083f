"""Operator notifications via apprise: enqueue and return, one sender per target under a timeout, dedup.

`notify*()` never blocks, never awaits and never raises: the kill path calls it inline. Each target
has its own bounded queue and sender task (`delivery.py`), so a hanging pager cannot delay the chat
channel, and nothing here can delay the caller. Call it from the event-loop thread (asyncio queues
are not thread-safe); signal handlers installed with `loop.add_signal_handler` qualify.

One incident, one page: while the gateway is down, "unknown" rule alerts and a second outage alert
(the built-in one or a gateway rule, whichever came second) are held back and listed in the
recovery, which goes out with the page's severity so it reaches the same targets. Every title
names the host/instance (`origin`) and says DRY RUN in dry-run mode.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from watchdog.config.schema import NotificationsConfig
from watchdog.model import Breach, KillReport, Severity
from watchdog.outputs.delivery import Delivery, Target, build_targets, deliver
from watchdog.outputs.incidents import Incidents
from watchdog.outputs.logging_setup import mask
from watchdog.outputs.messages import (
    DEFAULT_CONTEXT,
    Kind,
    MessageContext,
    Notification,
    fmt_time,
    format_kill,
    format_pending_kill,
    format_reload_failure,
    format_reset,
    format_shutdown,
    format_startup,
    format_summary,
    format_text,
)
from watchdog.outputs.targets import SecretFilter, TargetSpec, all_fragments, load_targets, redact

__all__ = ["Delivery", "Kind", "Notification", "Notifier", "NotifierStats"]

log = logging.getLogger(__name__)

# Loggers that may print a notification URL (apprise itself; urllib3 logs request paths at DEBUG).
SCRUBBED_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")

OnResult = Callable[[str, bool], None]
OnDropped = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class NotifierStats:
    queued: int  # deliveries put on a target queue
    delivered: int
    failed: int
    dropped: int  # a target queue was full
    suppressed: int  # dedup: ongoing breach already announced
    summarised: int  # held back by the burst limit and folded into a summary


@dataclass(slots=True)
class _Counters:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    suppressed: int = 0
    summarised: int = 0
    sent_times: deque[float] = field(default_factory=deque)


class Notifier:
    """Sends `Notification`s to the configured apprise targets without ever holding up the caller."""

    def __init__(
        self,
        config: NotificationsConfig,
        *,
        clock: Callable[[], float] = time.time,
        on_result: OnResult | None = None,
        on_dropped: OnDropped | None = None,
        queue_size: int = 100,
        tick_interval: float = 1.0,
        origin: str = "",
        ctx: MessageContext = DEFAULT_CONTEXT,
        dry_run: bool = False,
    ) -> None:
        self.origin = origin  # "host" or "host/instance", in front of every title
        self._ctx = ctx
        self.dry_run = dry_run  # set again on reload
        self._clock = clock
        self._on_result = on_result
        self._on_dropped = on_dropped
        self._queue_size = queue_size
        self._tick_interval = tick_interval
        self._filter = SecretFilter()
        for name in SCRUBBED_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        # every other log line too (ours, ib_async's): through the handlers the records end in
        self._filtered_handlers = list(logging.getLogger().handlers)
        for handler in self._filtered_handlers:
            handler.addFilter(self._filter)
        self._targets: list[Target] = []
        self._retired: set[asyncio.Task[None]] = set()
        self._incidents = Incidents(config.reminder_interval, ctx)
        self._held: list[Notification] = []
        self._held_since: float | None = None
        self._c = _Counters()
        self._ticker: asyncio.Task[None] | None = None
        self._running = False
        self._closed = False
        self.problems: tuple[str, ...] = ()
        # the last attempts, per target, for whoever must prove a route works (the fire drill)
        self.deliveries: deque[Delivery] = deque(maxlen=200)
        self._config = config
        self._targets = self._build(config)

    # ------------------------------------------------------------------ set-up
    def _build(self, config: NotificationsConfig) -> list[Target]:
        specs, problems = load_targets(config)
        # Scrub first: apprise logs while parsing a URL it rejects.
        self._filter.fragments = self._filter.fragments | all_fragments(specs)
        targets, refused = build_targets(specs, self._queue_size)
        problems += refused
        for p in problems:
            log.error("notification target skipped: %s", p)
        if not targets:
            log.warning("no notification target configured: operators will not be told about breaches")
        self.problems = tuple(problems)
        return targets

    @property
    def ctx(self) -> MessageContext:
        return self._ctx

    @ctx.setter
    def ctx(self, value: MessageContext) -> None:
        self._ctx = self._incidents.ctx = value

    @property
    def targets(self) -> tuple[TargetSpec, ...]:
        return tuple(t.spec for t in self._targets)

    async def start(self) -> None:
        if self._running or self._closed:
            return
        self._running = True
        for t in self._targets:
            t.task = asyncio.create_task(self._sender(t), name=f"notify:{t.spec.source}")
        self._ticker = asyncio.create_task(self._tick_forever(), name="notify:tick")

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (and a pending burst summary) for at most `timeout` seconds, then quit."""
        if self._closed:
            return
        try:
            self._flush_held(self._clock(), force=True)
        except Exception:
            log.exception("burst summary not sent at shutdown")
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        tasks = [self._retire(t) for t in self._targets]
        tasks += list(self._retired)
        live = [t for t in tasks if t is not None]
        if live:
            _, pending = await asyncio.wait(live, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("%d notification sender(s) still busy at shutdown; abandoned", len(pending))
                await asyncio.wait(pending, timeout=1.0)
        self._running = False
        for name in SCRUBBED_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)
        for handler in self._filtered_handlers:
            handler.removeFilter(self._filter)

    def _retire(self, t: Target) -> asyncio.Task[None] | None:
        """Ask a sender to finish its queue and exit (or stop it at once if the queue is full)."""
        if t.task is None:
            return None
        try:
            t.queue.put_nowait(None)
        except asyncio.QueueFull:
            t.task.cancel()
        return t.task

    def reconfigure(self, config: NotificationsConfig) -> None:
        """Swap targets and limits after a reload; old senders finish their queues in the background."""
        try:
            new = self._build(config)
        except Exception:
            log.exception("notification targets not reloaded; keeping the previous ones")
            return
        old, self._targets, self._config = self._targets, new, config
        self._incidents.reminder_interval = config.reminder_interval
        if self._running and not self._closed:
            for t in new:
                t.task = asyncio.create_task(self._sender(t), name=f"notify:{t.spec.source}")
        for t in old:
            task = self._retire(t)
            if task is not None:
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)

    # ------------------------------------------------------------------ public events
    def notify(self, n: Notification) -> bool:
        """Queue one notification; True if it went to at least one target queue now. Never raises."""
        try:
            now = self._clock()
            self._tick(now)
            return self._emit(n, now)
        except Exception:
            log.exception("notification could not be queued")
            return False

    def notify_text(self, severity: str | Severity, title: str, body: str) -> bool:
        return self.notify(format_text(Severity(severity), title, body))

    def notify_breach(self, b: Breach) -> bool:
        """Announce a breach/warning/unknown once, remind while it lasts, announce its recovery."""
        try:
            now = self._clock()
            self._flush_held(now)  # reminders of other breaches are the ticker's job
            n = self._incidents.breach(b, now)
            return False if n is None else self._emit(n, now)
        except Exception:
            log.exception("breach notification could not be queued")
            return False

    @property
    def outage_settle(self) -> float:
        """Seconds after an outage during which missing data is held back (`incidents.outage_settle`)."""
        return self._incidents.settle

    @outage_settle.setter
    def outage_settle(self, seconds: float) -> None:
        self._incidents.settle = seconds

    def gateway_up(self, up: bool) -> None:
        """The gateway's state as the daemon sees it (connected / lost); losing it starts an outage."""
        self._incidents.gateway_up(up, self._clock())

    def retain_rules(self, names: Iterable[str]) -> None:
        """Forget ongoing breaches of rules a reload removed, so they are not reminded forever."""
        self._incidents.retain_rules(names)

    def notify_kill(self, report: KillReport) -> bool:
        return self.notify(format_kill(report, self._ctx))

    def notify_pending_kill(self, report: KillReport, why: str = "") -> bool:
        return self.notify(format_pending_kill(report, why, self._ctx))

    def notify_startup(
        self, version: str, accounts: Sequence[str], state: str, *, dry_run: bool = False
    ) -> bool:
        return self.notify(format_startup(version, accounts, state, dry_run=dry_run))

    def notify_shutdown(self, reason: str, state: str) -> bool:
        """During an outage it also goes where the outage was told: no recovery follows from this process."""
        n = format_shutdown(reason, state)
        o = self._incidents.outage
        if o is not None and o.sent:
            since = fmt_time(o.since)
            body = f"{n.body}\nStopped during a gateway outage (since {since}): no recovery message follows."
            n = dataclasses.replace(n, body=body, routes=frozenset(o.sent), limited=False)
        return self.notify(n)

    def notify_reconnect(self, endpoint: str, downtime: float | None = None) -> bool:
        """The socket is back: the outage's recovery, unless IB's servers are still to come back."""
        n = self._incidents.reconnect(endpoint, downtime, self._clock())
        return False if n is None else self.notify(n)

    def notify_client_id_in_use(self, client_id: int | None, message: str) -> bool:
        """326 on a (re)connect: part of the outage, said once per outage."""
        n = self._incidents.client_id_in_use(client_id, message, self._clock())
        return False if n is None else self.notify(n)

    def data_flowing(self) -> bool:
        """Account data was read: ends an outage of IB's servers that a new connection never reported."""
        try:
            n = self._incidents.data_flowing(self._clock())
        except Exception:
            log.exception("outage bookkeeping failed")
            return False
        return False if n is None else self.notify(n)

    def set_quiet(self, rules: Collection[str] | None) -> None:
        """The rules inside a quiet window now (None: every rule): not reminded, not announced from hold."""
        self._incidents.quiet = rules

    def notify_gateway_down(self, endpoint: str, down_since: float, last_error: str = "") -> bool:
        n = self._incidents.gateway_down(endpoint, down_since, self._clock(), last_error)
        return False if n is None else self.notify(n)

    def notify_degraded(self, code: int, message: str) -> bool:
        """1100/2110: the gateway lost IB's servers (socket up): an outage begins, said once."""
        n = self._incidents.degraded(code, message, self._clock())
        return False if n is None else self.notify(n)

    def notify_restored(self, code: int | None, message: str) -> bool:
        """1101/1102: the outage 1100/2110 began is over; its recovery goes where the outage was told."""
        n = self._incidents.restored(code, message, self._clock())
        return False if n is None else self.notify(n)

    def notify_reload_failure(self, problems: Sequence[str]) -> bool:
        return self.notify(format_reload_failure(problems))

    def notify_reset(self, reason: str, by: str = "") -> bool:
        return self.notify(format_reset(reason, by, self._clock()))

    def tick(self) -> None:
        """Public step: send due reminders and a due burst summary (the background ticker calls this)."""
        try:
            self._tick(self._clock())
        except Exception:
            log.exception("notification tick failed")

    def stats(self) -> NotifierStats:
        c = self._c
        suppressed = c.suppressed + self._incidents.suppressed
        return NotifierStats(c.queued, c.delivered, c.failed, c.dropped, suppressed, c.summarised)

    async def drain(self, within: float) -> None:
        """Wait until every queued notification was delivered or failed; TimeoutError after `within` s."""
        await asyncio.wait_for(asyncio.gather(*(t.queue.join() for t in self._targets)), within)

    # ------------------------------------------------------------------ internals
    def _tick(self, now: float) -> None:
        self._flush_held(now)
        for n in self._incidents.reminders(now):
            self._emit(n, now)

    def _flush_held(self, now: float, *, force: bool = False) -> None:
        """One summary per target, of the held notifications that target takes (a pager gets no warnings)."""
        if not self._held or self._held_since is None:
            return
        if not force and now - self._held_since < self._config.burst_window:
            return
        held, self._held, self._held_since = self._held, [], None
        self._c.sent_times.append(now)
        for t in self._targets:
            mine = [n for n in held if _takes(t, n)]
            if mine:
                self._put(t, self._dressed(format_summary(mine, self._config.burst_window)))

    def _emit(self, n: Notification, now: float) -> bool:
        """Apply the burst limit, then hand over to the target queues."""
        window, times = self._config.burst_window, self._c.sent_times
        while times and now - times[0] >= window:
            times.popleft()
        if n.limited and len(times) >= self._config.burst_max:
            self._held.append(n)
            self._c.summarised += 1
            if self._held_since is None:
                self._held_since = now
            log.info("notification held for the burst summary: [%s] %s", n.severity.value, n.title)
            return False
        return self._dispatch(n, now)

    def _dressed(self, n: Notification) -> Notification:
        """Origin and DRY RUN in the title; secrets out of title and body."""
        frags = self._filter.fragments
        title = n.title
        if self.dry_run and "DRY RUN" not in title:
            title = f"[DRY RUN] {title}"
        if self.origin:
            title = f"{self.origin}: {title}"
        body = mask(redact(n.body or n.title, frags))  # apprise refuses an empty body
        return dataclasses.replace(n, title=mask(redact(title, frags)), body=body)

    def _dispatch(self, n: Notification, now: float) -> bool:
        if self._closed:
            log.warning("notifier stopped; not sent: [%s] %s", n.severity.value, n.title)
            return False
        self._c.sent_times.append(now)
        log.info("notify [%s] %s", n.severity.value, redact(n.title, self._filter.fragments))
        n = self._dressed(n)  # the journal names the host already; the title gets it for the phone
        queued = False
        for t in self._targets:
            if _takes(t, n) and self._put(t, n):
                queued = True
        return queued

    def _put(self, t: Target, n: Notification) -> bool:
        if self._closed:
            return False
        msg = n
        if t.dropped:
            note = f"({t.dropped} earlier notification(s) to this target were dropped: queue full)"
            msg = dataclasses.replace(n, body=f"{n.body}\n{note}")
        try:
            t.queue.put_nowait(msg)
        except asyncio.QueueFull:
            t.dropped += 1
            self._c.dropped += 1
            if t.dropped == 1:
                log.warning("notification queue of %s is full; dropping until it drains", t.spec.label)
            self._callback(self._on_dropped, 1)
            return False
        t.dropped = 0
        self._c.queued += 1
        return True

    async def _sender(self, t: Target) -> None:
        while True:
            n = await t.queue.get()
            try:
                if n is None:
                    return
                ok, why = await deliver(t, n, self._config.timeout)
                self.deliveries.append(Delivery(t.spec, n.title, ok, why, self._clock()))
                if ok:
                    self._c.delivered += 1
                else:
                    self._c.failed += 1
                    log.warning(
                        "notification [%s] %r to %s failed: %s", n.severity.value, n.title, t.spec.label, why
                    )
                self._callback(self._on_result, n.severity.value, ok)
            finally:
                t.queue.task_done()

    def _callback(self, fn: Callable[..., None] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("notification callback failed")

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            self.tick()


def _takes(t: Target, n: Notification) -> bool:
    """A target takes a notification of a severity it lists, or routed to one (an outage's recovery)."""
    return n.severity in t.spec.severities or not n.routes.isdisjoint(t.spec.severities)
