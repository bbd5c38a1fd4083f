"""The daemon's side of the dead-man's switch: the heartbeat listener's life, the bots' statuses in
the snapshot, a wake-up exactly when a bot's silence limit passes, the kill's scope, the bot metrics.

Nothing here fires a kill: a silent bot breaches its `bot_silence` rule in the ordinary evaluation,
which starts the kill like any other rule. A heartbeat only moves a deadline later, and whatever
makes the watchdog unable to hear the bots (the gateway down, the listener not bound, the listener
flooded) turns their silence into "unknown", which never kills.

Silence is measured on the monotonic clock; the wall clock only labels heartbeats for the state
file, the metrics and the notifications.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from watchdog.bots.listener import ACCEPT_RATE
from watchdog.bots.receiver import REJECT_REASONS, HeartbeatReceiver
from watchdog.bots.registry import BotRegistry
from watchdog.config.schema import Config, Rule
from watchdog.model import BotStatus, Breach, GatewayStatus, Severity
from watchdog.outputs.metrics import Metrics
from watchdog.outputs.notifier import Notifier
from watchdog.state.files import StateDirectory

__all__ = ["BIND_RETRY", "BotWatch"]

log = logging.getLogger("watchdog.daemon.lifecycle")

# An evaluation this long after the limit, so that `silence > limit` already holds when it runs.
DUE_MARGIN = 0.005
GATEWAY_DOWN = "the watchdog cannot reach the gateway; silence counts again from the reconnect"
UP_WITHOUT_RULE = 60.0  # seconds of silence after which a bot without a bot_silence rule reads down
BIND_RETRY = 10.0  # seconds between attempts to bind a listener that could not bind


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
        monotonic: Callable[[], float] = time.monotonic,
        files: StateDirectory | None = None,
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._notifier = notifier
        self._clock = clock
        self._monotonic = monotonic
        self.registry = BotRegistry(
            config.bots,
            Path(config.state_dir),
            clock,
            monotonic=monotonic,
            files=files,
            on_beat=self._on_beat,
            on_problem=self._problem,
        )
        self.receiver = HeartbeatReceiver(
            config.bots,
            self.registry,
            on_rejected=metrics.bots.observe_rejected,
            on_pressure=self._on_pressure,
            monotonic=monotonic,
        )
        self.on_due: Callable[[], None] | None = None  # set by the daemon: request an evaluation
        # monotonic times from which silence counts: the gateway connect, the listener's bind
        self._connected_since: float | None = None
        self._listening_since: float | None = None
        self._view: Mapping[str, BotStatus] = MappingProxyType({})
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        self._flood_timer: asyncio.TimerHandle | None = None
        self._degraded: set[str] = set()
        self._flooded = False  # a flood episode is announced once, and its end once
        self._deaf_announced = False
        self._task: asyncio.Task[None] | None = None  # a late start, or the bind retries
        self.bind_attempts = 0

    def _problem(self, message: str) -> None:
        self._notifier.notify_text(Severity.CRITICAL, "Dead-man's switch", message)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Restore the last heartbeats, then listen. A listener that cannot bind leaves every bot
        unknown (alerted once, never a kill) and is retried every BIND_RETRY seconds: a watchdog that
        cannot hear the bots must not liquidate them, and must not stay deaf either."""
        self._metrics.bots.declare(self.registry.names, REJECT_REASONS)
        restored = self.registry.restore()
        if restored:
            log.info("restored the last heartbeat of %d bot(s) from the state dir", restored)
        if not await self._listen():
            self._task = asyncio.ensure_future(self._rebind())

    def start_soon(self) -> None:
        """Start from a synchronous caller (a reload that adds the first bot)."""
        self._task = asyncio.ensure_future(self.start())

    async def _listen(self) -> bool:
        self.bind_attempts += 1
        try:
            port = await self.receiver.start()
        except OSError as exc:
            why = f"heartbeat listener not running on {self.config.bots.listen}: {exc.strerror or exc}"
            self.registry.set_deaf(why)
            if not self._deaf_announced:
                self._deaf_announced = True
                log.error("%s; bot_silence rules read unknown; retrying every %g s", why, BIND_RETRY)
                self._notifier.notify_text(Severity.CRITICAL, "Dead-man's switch not listening", why)
            return False
        self._listening_since = self._monotonic()  # the bots could not reach us before: count from now
        self.registry.set_deaf("")
        names = ", ".join(self.registry.names)
        if self._deaf_announced:
            self._deaf_announced = False
            message = f"heartbeat listener bound on port {port}; silence of {names} counts from now"
            log.warning("%s", message)
            self._notifier.notify_text(Severity.INFO, "Dead-man's switch listening again", message)
        else:
            log.info("dead-man's switch listening on port %d for %s", port, names)
        self._schedule_all()
        self.observe()
        return True

    async def _rebind(self) -> None:
        while True:
            await asyncio.sleep(BIND_RETRY)
            if await self._listen():
                return

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for handles in self._timers.values():
            for h in handles:
                h.cancel()
        self._timers.clear()
        if self._flood_timer is not None:
            self._flood_timer.cancel()
        await self.receiver.stop()
        self.registry.flush()

    def reconfigure(self, config: Config) -> list[str]:
        """A reload: new bots, tokens, accounts and limits apply at once (a rotated token is refused
        from the next request). Returns what still needs a restart (a new `listen` address)."""
        old, self.config = self.config, config
        self.registry.reconfigure(config.bots)
        self.receiver.reconfigure(config.bots)
        self._metrics.bots.declare(self.registry.names, REJECT_REASONS)
        for gone in set(self._timers) - set(self.registry.names):
            for h in self._timers.pop(gone):
                h.cancel()
        self._schedule_all()
        if config.bots.listen != old.bots.listen and self.receiver.listening:
            return [
                f"bots.listen changed from {old.bots.listen} to {config.bots.listen}: the heartbeat "
                f"listener stays on {old.bots.listen} until the watchdog restarts"
            ]
        return []

    @property
    def port(self) -> int:
        return self.receiver.port

    # ------------------------------------------------------------------ the evaluation's inputs
    def statuses(self, gateway: GatewayStatus) -> Mapping[str, BotStatus]:
        """The bots as the rules see them, with `silence` measured on the monotonic clock.

        Silence counts only while the watchdog reaches the gateway and listens: while it cannot reach
        the gateway every bot reads unknown (no kill could run anyway), and after a reconnect (or the
        listener's late bind) each bot's silence counts from then. A tunnel blip or the gateway's
        daily restart, which interrupt the bots' heartbeats as well, so never kill a healthy bot; a
        dead one is still caught one silence limit after the watchdog is back (also after a restart:
        the last heartbeats are restored from the state dir, so the bot is still armed). While the
        listener is flooded (it evicted connections within a bot's silence window), heartbeats may
        have been lost: that bot reads unknown, its kill held."""
        raw = self.registry.statuses()
        now = self._monotonic()
        view: dict[str, BotStatus]
        if not gateway.connected:
            self._connected_since = None
            view = {
                n: s if s.unknown_reason else replace(s, unknown_reason=GATEWAY_DOWN) for n, s in raw.items()
            }
        else:
            if self._connected_since is None:
                self._connected_since = now
                self._schedule_all()
            view = {}
            for name, status in raw.items():
                heard = self.registry.heard_at(name)
                silence = None if heard is None else now - max(heard, self._since())
                view[name] = replace(status, silence=silence)
        view = self._hold_while_flooded(view, now)
        self._view = MappingProxyType(view)
        return self._view

    def _since(self) -> float:
        return max(t for t in (self._connected_since, self._listening_since, float("-inf")) if t is not None)

    def window(self, name: str) -> float:
        """The seconds of silence after which this bot's rules can fire (the largest limit + for)."""
        windows = [
            limit + (rule.for_ or 0.0)
            for rule in self.config.rules
            if rule.bot == name
            for limit in silence_limits(rule)
        ]
        return max(windows, default=UP_WITHOUT_RULE)

    def _hold_while_flooded(self, view: dict[str, BotStatus], now: float) -> dict[str, BotStatus]:
        pressure = self.receiver.last_pressure
        if pressure is None:
            return view
        age = now - pressure
        held, longest = {}, 0.0
        for name, status in view.items():
            window = self.window(name)
            longest = max(longest, window)
            if age <= window and status.silence is not None and not status.unknown_reason:
                held[name] = replace(
                    status,
                    unknown_reason=(
                        f"the heartbeat listener is flooded (last connection evicted or refused "
                        f"{age:.1f} s ago): a missed heartbeat proves nothing, so bot {name}'s "
                        f"silence kill is held until {window:g} s after the flood"
                    ),
                )
        if held:
            self._wake_after_flood(pressure + max(self.window(n) for n in held) - now)
        elif self._flooded and age > longest:
            self._flooded = False
            self._metrics.bots.set_flooded(False)
            log.warning("heartbeat listener no longer flooded: bot_silence rules judge again")
            self._notifier.notify_text(
                Severity.INFO, "Dead-man's switch listener no longer flooded", "bot_silence rules judge again"
            )
        return {**view, **held}

    def _wake_after_flood(self, delay: float) -> None:
        if self._flood_timer is not None:
            self._flood_timer.cancel()
        self._flood_timer = asyncio.get_running_loop().call_later(max(0.0, delay) + DUE_MARGIN, self._wake)

    def _wake(self) -> None:
        if self.on_due is not None:
            self.on_due()

    def labelled(self, breach: Breach) -> Breach:
        """A bot rule's breach names the bot's accounts (what its kill touches), not "all accounts"."""
        rule = next((r for r in self.config.rules if r.name == breach.rule), None)
        bot = self.config.bots.bot(rule.bot) if rule is not None and rule.bot is not None else None
        if bot is None:
            return breach
        accounts = ", ".join(bot.accounts) if bot.accounts else "every watched account"
        return replace(breach, where=f"bot {bot.name}'s accounts ({accounts})")

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
        for name, heard in self.registry.statuses().items():
            status = self._view.get(name, heard)  # as the rules saw it (silence since a reconnect)
            if status.silence is None or status.unknown_reason:
                self._metrics.bots.set_state(name, heard.last_seen, None)
                continue
            limits = [v for r in self.config.rules if r.bot == name for v in silence_limits(r)]
            limit = min(limits, default=UP_WITHOUT_RULE)
            self._metrics.bots.set_state(name, heard.last_seen, status.silence <= limit)

    # ------------------------------------------------------------------ heartbeats
    def _on_pressure(self) -> None:
        # Called for every eviction (thousands a second in a flood): announce once per episode.
        if self._flooded:
            return
        self._flooded = True
        self._metrics.bots.set_flooded(True)
        message = (
            f"the heartbeat listener on {self.config.bots.listen} is evicting or refusing connections "
            f"(more than {self.config.bots.max_connections} open at once, or over {ACCEPT_RATE} new "
            "ones a second): bot heartbeats may be lost, so silence kills are held until each bot's "
            "silence limit has passed without a flood"
        )
        log.warning("%s", message)
        self._notifier.notify_text(Severity.WARNING, "Dead-man's switch listener flooded", message)

    def _on_beat(self, status: BotStatus) -> None:
        self._metrics.bots.observe_heartbeat(status.name, status.last_seen or self._clock())
        if status.status == "degraded" and status.name not in self._degraded:
            self._degraded.add(status.name)
            self._notifier.notify_text(
                Severity.WARNING, f"Bot {status.name} reports degraded", status.note or "(no note)"
            )
        elif status.status == "ok":
            self._degraded.discard(status.name)
        self._schedule(status.name)

    def _schedule_all(self) -> None:
        for name in self.registry.names:
            self._schedule(name)

    def _schedule(self, name: str) -> None:
        """Evaluate when each of the bot's silence limits passes (and after `for:`), not a timer later.
        Deadlines are monotonic, like the loop's own timers."""
        for h in self._timers.pop(name, []):
            h.cancel()
        heard = self.registry.heard_at(name)
        if heard is None or self._connected_since is None:
            return  # not armed, or the gateway is down: the next connected evaluation schedules it
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a reload outside the daemon): the next evaluation schedules it
        last = max(heard, self._since())
        handles: list[asyncio.TimerHandle] = []
        for rule in self.config.rules:
            if rule.bot != name:
                continue
            for limit in silence_limits(rule):
                for due in {last + limit, last + limit + (rule.for_ or 0.0)}:
                    delay = max(0.0, due - self._monotonic()) + DUE_MARGIN
                    handles.append(loop.call_later(delay, self._due, due))
        self._timers[name] = handles

    def _due(self, due: float) -> None:
        early = due - self._monotonic()
        if early >= 0:  # the loop's clock and the injected one differ by a hair: try again just after
            asyncio.get_running_loop().call_later(early + DUE_MARGIN, self._due, due)
            return
        if self.on_due is not None:
            self.on_due()
