"""Wiring: build every part of a running watchdog from a Config, with the side effects injected.

The daemon only talks to the parts through `Components`; tests build their own (another clock,
another registry, a simulator port) with `build_components(..., **overrides)`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from watchdog.config.load import load_config
from watchdog.config.schema import Config
from watchdog.daemon.bot_watch import BotWatch
from watchdog.daemon.control import ControlChannel
from watchdog.daemon.timers import MonotonicJobs
from watchdog.gateway.client import EventKind, Gateway, GatewayEvent
from watchdog.kill.run import KillEvent, KillEventKind
from watchdog.kill.switch import KillSwitch
from watchdog.model import Breach, Severity, Snapshot
from watchdog.outputs.incidents import outage_settle
from watchdog.outputs.messages import MessageContext
from watchdog.outputs.metrics import Metrics
from watchdog.outputs.notifier import Notifier
from watchdog.outputs.rule_metrics import RuleInfo
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.rules import evaluate as rules_engine
from watchdog.rules import schedule
from watchdog.rules.evaluate import AllRules, RuleMemory
from watchdog.state.audit import AuditLog
from watchdog.state.store import StateStore

log = logging.getLogger("watchdog.daemon.lifecycle")


class RulesPort:
    """The pure rules engine, with the watched accounts bound in."""

    def __init__(self, accounts: Callable[[], tuple[str, ...]]) -> None:
        self._accounts = accounts

    def evaluate(
        self,
        rules: Any,
        snapshot: Snapshot,
        now: float,
        memory: RuleMemory,
        suspended: Collection[str] | AllRules,
    ) -> list[Breach]:
        return rules_engine.evaluate(
            rules, snapshot, now, memory, suspended, accounts=self._accounts() or None
        )


class SchedulePort:
    suspended = staticmethod(schedule.in_quiet_window)
    cron_trigger = staticmethod(schedule.cron_trigger)
    cron_trigger_expr = staticmethod(schedule.cron_trigger_expr)


@dataclass(slots=True)
class Components:
    clock: Callable[[], float]
    monotonic: Callable[[], float]
    gateway: Gateway
    store: StateStore
    audit: AuditLog
    killswitch: KillSwitch
    control: ControlChannel
    metrics: Metrics
    notifier: Notifier
    sd: SdNotifier
    scheduler: AsyncIOScheduler
    memory: RuleMemory
    rules: RulesPort
    schedule: SchedulePort = field(default_factory=SchedulePort)
    bots: BotWatch | None = None  # the dead-man's switch, when bots.heartbeats lists any bot
    timers: MonotonicJobs = field(default_factory=MonotonicJobs)  # periodic jobs; the scheduler: cron
    load_config: Callable[[str], Config] = load_config
    # set by the daemon: called for gateway events after metrics/notifications are handled here
    on_gateway_event: Callable[[GatewayEvent], None] | None = None
    # set by the daemon: a kill ended (finished or escalated): the book it planned for has changed
    on_kill_ended: Callable[[], None] | None = None
    skew_warned: bool = False  # a clock skew warning is logged once per episode


CLOCK_SKEW_WARN = 2.0  # seconds; the gateway's clock reads whole seconds, so smaller skews are noise


def _heartbeat_metrics(c: Components, rtt: float) -> None:
    status = c.gateway.status()
    c.metrics.observe_heartbeat(rtt, status.last_heartbeat or c.clock(), status.clock_skew)
    skew = status.clock_skew
    if skew is None:
        return
    if abs(skew) > CLOCK_SKEW_WARN and not c.skew_warned:
        c.skew_warned = True
        log.warning(
            "gateway clock skew %+.0fs: this host's clock or the gateway host's is wrong; rules that "
            "judge data age and scheduled rules run on this host's clock (check NTP on both hosts)",
            skew,
        )
    elif abs(skew) < CLOCK_SKEW_WARN / 2 and c.skew_warned:
        c.skew_warned = False
        log.info("gateway clock skew back to %+.1fs", skew)


def rule_labels(config: Config) -> list[RuleInfo]:
    """Name, action, severity and whether it is about an outage, of every enabled rule, for
    `Metrics.declare_rules`."""
    return [
        RuleInfo(r.name, r.action.value, r.severity.value, r.about_outage) for r in config.rules if r.enabled
    ]


def message_context(config: Config) -> MessageContext:
    """The exact commands messages print: the executable this daemon runs as, its state dir."""
    argv0 = sys.argv[0] if sys.argv else ""
    exe = os.path.abspath(argv0) if os.path.basename(argv0) == "ibkr-watchdog" else "ibkr-watchdog"
    return MessageContext(exe=exe, state_dir=config.state_dir, currency=config.gateway.base_currency or "USD")


def build_components(
    config: Config,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    registry: CollectorRegistry | None = None,
    sd: SdNotifier | None = None,
    origin: str = "",
) -> Components:
    """Create every part and connect their callbacks. Starts nothing (no sockets, no tasks).

    `origin` ("host" or "host/instance") heads every notification title.
    Raises StateError when the state directory cannot be used (missing and not creatable, not a
    directory, a link, not ours, writable by others): the daemon must refuse to start."""
    metrics = Metrics(registry)
    metrics.declare_rules(rule_labels(config), dry_run=config.kill.dry_run)
    notifier = Notifier(
        config.notifications,
        clock=clock,
        on_result=lambda severity, ok: metrics.observe_notification(str(severity), ok),
        on_dropped=lambda n: metrics.observe_notification_dropped(n),
        origin=origin,
        ctx=message_context(config),
        dry_run=config.kill.dry_run,
    )
    notifier.outage_settle = outage_settle(config.polling)
    holder: dict[str, Components] = {}

    def on_gateway_event(ev: GatewayEvent) -> None:
        c = holder["c"]
        c.metrics.set_health(c.gateway.health)
        if ev.kind is EventKind.CONNECTED:
            c.metrics.set_connected(True)
        elif ev.kind in (EventKind.DISCONNECTED, EventKind.HALF_OPEN):
            c.metrics.set_connected(False)
            c.notifier.gateway_up(False)  # "unknown" alerts from here on are part of one outage
            log.warning("gateway %s: %s", ev.kind.value, ev.message)
        elif ev.kind is EventKind.ERROR and ev.code is not None:
            c.metrics.observe_gateway_error(ev.code)
        elif ev.kind is EventKind.MALFORMED:
            c.metrics.observe_malformed()
        elif ev.kind in (EventKind.DEGRADED, EventKind.RESTORED) and ev.code is not None:
            c.metrics.observe_gateway_error(ev.code)
            log.warning("gateway %s (%s): %s", ev.kind.value, ev.code, ev.message)
        if c.on_gateway_event is not None:
            c.on_gateway_event(ev)

    # The store and the kill switch report while they are built (a damaged latch is read by the
    # kill switch's constructor): these callbacks use the parts built before them; `holder` is empty then.
    def on_kill_event(ev: KillEvent) -> None:
        if ev.kind in (KillEventKind.FINISHED, KillEventKind.ESCALATED) and ev.report is not None:
            metrics.observe_kill(ev.report)
            notifier.notify_kill(ev.report)
            c = holder.get("c")
            if c is not None and c.on_kill_ended is not None:
                c.on_kill_ended()
        elif ev.kind is KillEventKind.PENDING and ev.report is not None:
            metrics.set_pending(True)
            notifier.notify_pending_kill(ev.report, ev.message)
        elif ev.kind is KillEventKind.RESET:
            # the event's message already says "re-armed by WHO: REASON"; the text says it once
            who = str(ev.details.get("who", ""))
            notifier.notify_reset(ev.message.removeprefix(f"re-armed by {who}: "), who)
        elif ev.kind is KillEventKind.TRIGGERED and ev.trigger.startswith(("rule:", "manual:")):
            pass  # paged already (the breach, the manual-kill notice); the kill report follows: one page
        elif (
            ev.kind in (KillEventKind.LOCKOUT, KillEventKind.STATE_PROBLEM)
            or ev.severity is Severity.CRITICAL
        ):
            notifier.notify_text(ev.severity, f"Kill switch: {ev.kind.value}", ev.message)
        metrics.set_tripped(store.trading_state().value == "tripped")
        # the kill switch holds its lock from the trigger to the last event: it runs until it ends
        ended = ev.kind in (
            KillEventKind.PENDING,
            KillEventKind.FINISHED,
            KillEventKind.ESCALATED,
            KillEventKind.INTERRUPTED,
        )
        c = holder.get("c")  # None while the kill switch is being built (it reports a damaged latch)
        running = c is not None and c.killswitch.busy and not ended
        metrics.set_kill_state(running=running, pending=store.pending_kill() is not None)

    def on_state_error(message: str) -> None:
        # queued now, delivered once the notifier starts (a problem found while building is not lost)
        notifier.notify_text(Severity.CRITICAL, "State directory problem", message)

    gateway = Gateway(
        config.gateway,
        config.heartbeat,
        config.polling,
        clock=clock,
        monotonic=monotonic,
        on_event=on_gateway_event,
        on_heartbeat=lambda rtt: _heartbeat_metrics(holder["c"], rtt),
    )
    state_dir = Path(config.state_dir)
    store = StateStore(state_dir, clock, on_error=on_state_error)
    # the directory first: one that cannot be used refuses the start in one line (StateError), before
    # any file in it is read and reported on its own
    store.files.open_dir()
    audit = AuditLog(store.audit_path, clock, on_error=on_state_error)
    killswitch = KillSwitch(
        gateway,
        config.kill,
        store,
        audit,
        clock=clock,
        on_event=on_kill_event,
        accounts=config.gateway.accounts,
        client_id=config.gateway.client_id,
    )
    # every execution the gateway hears (live, or re-read by the executions poll) reaches the kill
    # switch: a closing order's fill that arrives after its kill ended is still audited under it
    gateway.executions.on_execution = killswitch.note_execution
    memory = RuleMemory()
    components = Components(
        clock=clock,
        monotonic=monotonic,
        gateway=gateway,
        store=store,
        audit=audit,
        killswitch=killswitch,
        control=ControlChannel(store, clock, audit),
        metrics=metrics,
        notifier=notifier,
        sd=sd if sd is not None else SdNotifier(),
        scheduler=AsyncIOScheduler(timezone="UTC"),
        memory=memory,
        rules=RulesPort(lambda: gateway.watched_accounts),
        bots=(
            BotWatch(
                config,
                metrics=metrics,
                notifier=notifier,
                clock=clock,
                monotonic=monotonic,
                files=store.files,
            )
            if config.bots.heartbeats
            else None
        ),
    )
    holder["c"] = components
    return components
