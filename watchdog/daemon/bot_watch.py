"""The daemon's side of the dead-man's switch: the heartbeat listener's life, the bots' statuses in
the snapshot, a wake-up exactly when a bot's silence limit passes, the kill's scope, the bot metrics.

Nothing here fires a kill: a silent bot breaches its `bot_silence` rule in the ordinary evaluation,
which starts the kill like any other rule. A heartbeat only moves a deadline later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from watchdog.bots.receiver import REJECT_REASONS, HeartbeatReceiver
from watchdog.bots.registry import BotRegistry
from watchdog.config.schema import Config, Rule
from watchdog.model import BotStatus, Breach, GatewayStatus, Severity
from watchdog.outputs.metrics import Metrics
from watchdog.outputs.notifier import Notifier

__all__ = ["BotWatch"]

log = logging.getLogger("watchdog.daemon.lifecycle")

# An evaluation this long after the limit, so that `silence > limit` already holds when it runs.
DUE_MARGIN = 0.005
GATEWAY_DOWN = "the watchdog cannot reach the gateway; silence counts again from the reconnect"
UP_WITHOUT_RULE = 60.0  # seconds of silence after which a bot without a bot_silence rule reads down


def silence_limits(rule: Rule) -> list[float]:
    """Seconds of silence at which the rule's `bot_silence > / >= X` comparisons start to hold."""
    if rule.when is None or not rule.enabled or rule.bot is None:
        return []
    return [
        leaf.value
        for leaf in rule.when.leaves()
        if leaf.metric == "bot_silence" and leaf.op in (">", ">=") and leaf.value is not None
    ]


class BotWatch:
    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics,
        notifier: Notifier,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._notifier = notifier
        self._clock = clock
        self.registry = BotRegistry(
            config.bots,
            Path(config.state_dir),
            clock,
            on_beat=self._on_beat,
            on_problem=self._problem,
        )
        self.receiver = HeartbeatReceiver(
            config.bots, self.registry, on_rejected=metrics.bots.observe_rejected
        )
        self.on_due: Callable[[], None] | None = None  # set by the daemon: request an evaluation
        self._heard_since: float | None = None  # since when the gateway is connected (silence counts)
        self._view: Mapping[str, BotStatus] = MappingProxyType({})
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        self._degraded: set[str] = set()

    def _problem(self, message: str) -> None:
        self._notifier.notify_text(Severity.CRITICAL, "Dead-man's switch", message)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Restore the last heartbeats, then listen. A listener that cannot bind leaves every bot
        unknown (alerted, never a kill): a watchdog that cannot hear the bots must not liquidate them."""
        self._metrics.bots.declare(self.registry.names, REJECT_REASONS)
        restored = self.registry.restore()
        if restored:
            log.info("restored the last heartbeat of %d bot(s) from the state dir", restored)
        try:
            port = await self.receiver.start()
        except OSError as exc:
            why = f"heartbeat listener not running on {self.config.bots.listen}: {exc.strerror or exc}"
            self.registry.set_deaf(why)
            log.error("%s; bot_silence rules read unknown", why)
            self._notifier.notify_text(Severity.CRITICAL, "Dead-man's switch not listening", why)
            return
        log.info("dead-man's switch listening on port %d for %s", port, ", ".join(self.registry.names))
        self.observe()

    async def stop(self) -> None:
        for handles in self._timers.values():
            for h in handles:
                h.cancel()
        self._timers.clear()
        await self.receiver.stop()
        self.registry.flush()

    @property
    def port(self) -> int:
        return self.receiver.port

    # ------------------------------------------------------------------ the evaluation's inputs
    def statuses(self, gateway: GatewayStatus) -> Mapping[str, BotStatus]:
        """The bots as the rules see them. Silence counts only while the watchdog reaches the gateway:
        while it cannot, every bot reads unknown (no kill could run anyway), and after a reconnect each
        bot's silence counts from the reconnect. A tunnel blip or the gateway's daily restart, which
        interrupt the bots' heartbeats as well, so never kill a healthy bot; a dead one is still caught
        one silence limit after the watchdog is back (also after a restart: the last heartbeats are
        restored from the state dir, so the bot is still armed)."""
        raw = self.registry.statuses()
        view: dict[str, BotStatus]
        if not gateway.connected:
            self._heard_since = None
            view = {
                n: s if s.unknown_reason else replace(s, unknown_reason=GATEWAY_DOWN) for n, s in raw.items()
            }
        else:
            if self._heard_since is None:
                self._heard_since = self._clock()
                for status in raw.values():
                    self._schedule(status)
            since = self._heard_since
            view = {
                n: s if s.last_seen is None else replace(s, last_seen=max(s.last_seen, since))
                for n, s in raw.items()
            }
        self._view = MappingProxyType(view)
        return self._view

    def kill_scope(self, breach: Breach) -> tuple[list[str] | None, str] | None:
        """(accounts, reason) for a kill of a bot rule, None for other rules. The bot's accounts
        scope the kill (empty = every watched account); the reason carries its last report."""
        rule = next((r for r in self.config.rules if r.name == breach.rule), None)
        bot = self.config.bots.bot(rule.bot) if rule is not None and rule.bot is not None else None
        if bot is None:
            return None
        status = self.registry.get(bot.name)
        reason = breach.message
        if status is not None and status.status:
            reason += f" (last report: {status.status}{': ' + status.note if status.note else ''})"
        return (list(bot.accounts) or None), reason

    def observe(self) -> None:
        """bot_up and the last-heartbeat gauge of every bot, after each evaluation."""
        now = self._clock()
        for name, heard in self.registry.statuses().items():
            status = self._view.get(name, heard)  # as the rules saw it (silence since a reconnect)
            if status.last_seen is None or status.unknown_reason:
                self._metrics.bots.set_state(name, heard.last_seen, None)
                continue
            limits = [v for r in self.config.rules if r.bot == name for v in silence_limits(r)]
            limit = min(limits, default=UP_WITHOUT_RULE)
            self._metrics.bots.set_state(name, heard.last_seen, now - status.last_seen <= limit)

    # ------------------------------------------------------------------ heartbeats
    def _on_beat(self, status: BotStatus) -> None:
        self._metrics.bots.observe_heartbeat(status.name, status.last_seen or self._clock())
        if status.status == "degraded" and status.name not in self._degraded:
            self._degraded.add(status.name)
            self._notifier.notify_text(
                Severity.WARNING, f"Bot {status.name} reports degraded", status.note or "(no note)"
            )
        elif status.status == "ok":
            self._degraded.discard(status.name)
        self._schedule(status)

    def _schedule(self, status: BotStatus) -> None:
        """Evaluate when each of the bot's silence limits passes (and after `for:`), not a timer later."""
        for h in self._timers.pop(status.name, []):
            h.cancel()
        if status.last_seen is None or self._heard_since is None:
            return  # not armed, or the gateway is down: the next connected evaluation schedules it
        last = max(status.last_seen, self._heard_since)
        loop = asyncio.get_running_loop()
        handles: list[asyncio.TimerHandle] = []
        for rule in self.config.rules:
            if rule.bot != status.name:
                continue
            for limit in silence_limits(rule):
                for due in {last + limit, last + limit + (rule.for_ or 0.0)}:
                    delay = max(0.0, due - self._clock()) + DUE_MARGIN
                    handles.append(loop.call_later(delay, self._due, due))
        self._timers[status.name] = handles

    def _due(self, due: float) -> None:
        early = due - self._clock()
        if early >= 0:  # the loop's clock and the wall clock differ by a hair: try again just after
            asyncio.get_running_loop().call_later(early + DUE_MARGIN, self._due, due)
            return
        if self.on_due is not None:
            self.on_due()
