"""The daemon's timers and its config reload.

Periodic jobs (heartbeat, polls, evaluation, and with it the systemd keep-alive) run on the loop's
monotonic clock (`daemon/timers.py`); APScheduler (AsyncIOScheduler, on the ib_async loop) keeps the
cron rules only, which are wall-clock times by nature.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from watchdog.config.schema import Config
from watchdog.daemon.bot_watch import BotWatch
from watchdog.daemon.kill_tasks import KillTasks
from watchdog.daemon.wiring import Components, rule_labels
from watchdog.errors import ConfigError
from watchdog.model import Action, KillReport, TradingState
from watchdog.outputs.incidents import outage_settle


class Daemon(Protocol):
    """What the timers need of the daemon (`watchdog.daemon.lifecycle.Daemon` satisfies it).

    A Protocol rather than an import keeps `jobs` below `lifecycle`: no import cycle.
    """

    c: Components
    config: Config
    config_path: str | None
    kills: KillTasks

    @property
    def running(self) -> bool: ...

    def request_evaluation(self) -> None: ...

    async def run_job(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None: ...
    async def heartbeat_job(self) -> None: ...
    async def poll(self, name: str) -> bool: ...
    async def evaluate_job(self) -> None: ...
    async def readiness_job(self) -> None: ...
    def should_fire(self, action: Action) -> bool: ...
    def start_kill(
        self, action: Action, trigger: str, *, reason: str = "", accounts: list[str] | None = None
    ) -> asyncio.Task[KillReport | None]: ...


log = logging.getLogger("watchdog.daemon.lifecycle")


def schedule_jobs(d: Daemon) -> None:
    """(Re)register every timer: heartbeat, polls, evaluation, kill readiness, scheduled rules, re-arm."""
    c, cfg = d.c, d.config
    sched, timers = c.scheduler, c.timers
    for job in sched.get_jobs():
        job.remove()
    timers.remove_all()
    opts: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    timers.every("heartbeat", cfg.heartbeat.interval, functools.partial(d.run_job, d.heartbeat_job))
    intervals = {
        "pnl": cfg.polling.pnl,
        "account_summary": cfg.polling.account_summary,
        "positions": cfg.polling.positions,
        "orders": cfg.polling.orders,
        "executions": cfg.polling.executions,
    }
    for name, every in intervals.items():
        timers.every(f"poll:{name}", every, functools.partial(d.run_job, d.poll, name))
    timers.every("evaluate", min(intervals.values()), d.evaluate_job)
    timers.every("readiness", cfg.kill.readiness_interval, functools.partial(d.run_job, d.readiness_job))
    for rule in cfg.rules:
        if rule.schedule is None or not rule.enabled:
            continue
        trigger = c.schedule.cron_trigger(rule.schedule)
        sched.add_job(scheduled_rule, trigger, args=[d, rule.name], id=f"rule:{rule.name}", **opts)
    if cfg.kill.rearm_cron:
        trigger = c.schedule.cron_trigger_expr(cfg.kill.rearm_cron, cfg.kill.timezone)
        sched.add_job(auto_rearm, trigger, args=[d], id="rearm", **opts)


async def scheduled_rule(d: Daemon, name: str) -> None:
    """A rule with a `schedule:` fires its action at its cron times (e.g. flatten before the close)."""
    rule = next((r for r in d.config.rules if r.name == name), None)
    if rule is None:
        return
    log.warning("scheduled rule %s fires: %s", name, rule.action.value)
    d.c.notifier.notify_text(rule.severity.value, f"Scheduled rule {name}", f"action {rule.action.value}")
    if rule.action.is_kill and d.should_fire(rule.action):
        accounts = None if rule.scope in ("each", "all") else [rule.scope]
        d.start_kill(rule.action, f"schedule:{name}", reason="scheduled", accounts=accounts)


async def auto_rearm(d: Daemon) -> None:
    """`kill.rearm_cron`: re-arm at a session boundary unless a kill is running or pending."""
    if d.c.store.trading_state() is TradingState.TRIPPED and not d.kills.tasks:
        d.c.killswitch.rearm(reason="session boundary")
        d.c.notifier.notify_text("info", "Watchdog re-armed", "automatic re-arm at the session boundary")


def reload_config(d: Daemon) -> bool:
    """Validate the file fully, swap atomically; on any error keep the running config (read here)."""
    if not _begin_reload(d) or d.config_path is None:
        return False
    try:
        new: Config | BaseException = d.c.load_config(d.config_path)
    except Exception as exc:  # noqa: BLE001 - every failure to load keeps the running config
        new = exc
    return _finish_reload(d, new)


async def reload_config_async(d: Daemon) -> bool:
    """`reload_config` with the file read and validated in a worker thread, off the event loop.

    The heartbeat, the polls and a kill go on while a slow disk is read; a FIFO or an oversized
    file is refused by the loader (`config.input_file`) before it is read, so the thread never hangs.
    """
    if not _begin_reload(d) or d.config_path is None:
        return False
    try:
        new: Config | BaseException = await asyncio.to_thread(d.c.load_config, d.config_path)
    except Exception as exc:  # noqa: BLE001 - reported by _finish_reload
        new = exc
    return _finish_reload(d, new)


def _begin_reload(d: Daemon) -> bool:
    d.c.sd.reloading()
    d.c.control.process_requests(d.c.killswitch)
    if d.config_path is None:
        d.c.sd.ready()
        return False
    return True


def _finish_reload(d: Daemon, new: Config | BaseException) -> bool:
    c = d.c
    if isinstance(new, BaseException):
        if isinstance(new, ConfigError):
            problems = [str(p) for p in new.problems]
        else:  # a loader bug must not stop the daemon: the running config stays, loudly
            log.error("reload failed unexpectedly", exc_info=new)
            problems = [f"{d.config_path}: cannot load: {type(new).__name__}: {new}"]
        c.metrics.observe_reload(False, c.clock())
        for problem in problems:
            log.error("reload rejected: %s", problem)
        c.audit.record("reload", {"ok": False, "problems": problems})
        c.notifier.notify_reload_failure(problems)
        c.sd.ready()
        return False
    if new.gateway != d.config.gateway or new.metrics != d.config.metrics:
        log.warning("gateway/metrics settings changed: restart the daemon to apply them")
    d.config = new
    # a changed rule starts afresh in the rules engine, which will never report the old one's
    # recovery: its ongoing alert goes too, or it would be reminded forever
    dropped = c.memory.retain(new.rules)
    c.notifier.retain_rules(r.name for r in new.rules if r.name not in dropped)
    c.killswitch.config = new.kill
    restart_needed = _reload_bots(d, new)
    c.notifier.reconfigure(new.notifications)
    c.notifier.dry_run = new.kill.dry_run
    c.notifier.outage_settle = outage_settle(new.polling)
    c.metrics.declare_rules(rule_labels(new), dry_run=new.kill.dry_run)
    if d.running and c.scheduler.running:
        schedule_jobs(d)
    c.metrics.observe_reload(True, c.clock())
    c.audit.record(
        "reload",
        {
            "ok": True,
            "rules": [r.name for r in new.rules],
            "bots": [b.name for b in new.bots.heartbeats],
            **({"restart_needed": restart_needed} if restart_needed else {}),
        },
    )
    log.info("config reloaded: %d rules", len(new.rules))
    c.sd.ready()
    return True


def _reload_bots(d: Daemon, new: Config) -> list[str]:
    """Bots, tokens, accounts and silence limits apply at once (a leaked token rotated in rules.yaml
    stops working at the reload); the first bot added starts the listener. Returns what needs a
    restart (a new listen address), already logged and notified."""
    c = d.c
    if c.bots is None:
        if not new.bots.heartbeats:
            return []
        c.bots = BotWatch(
            new,
            metrics=c.metrics,
            notifier=c.notifier,
            clock=c.clock,
            monotonic=c.monotonic,
            files=c.store.files,
        )
        if c.scheduler.running:
            c.bots.on_due = d.request_evaluation
        c.bots.start_soon()
        log.info("dead-man's switch started by the reload: %s", ", ".join(c.bots.registry.names))
        return []
    old = c.bots.config.bots  # (d.config is already the new one)
    notes = c.bots.reconfigure(new)
    if new.bots != old:
        before = {b.name: b for b in old.heartbeats}
        after = {b.name: b for b in new.bots.heartbeats}
        rotated = [n for n in after if n in before and after[n].token != before[n].token]
        log.info(
            "bots reloaded: %s (added: %s; removed: %s; new token: %s)",
            ", ".join(after) or "none",
            ", ".join(sorted(set(after) - set(before))) or "none",
            ", ".join(sorted(set(before) - set(after))) or "none",
            ", ".join(rotated) or "none",
        )
    for note in notes:
        log.warning("%s", note)
        c.notifier.notify_text("warning", "Restart needed", note)
    return notes
