"""The user's configuration made safe for a rehearsal, and the local endpoint that receives its messages.

What is replaced (and why) is returned in words, so the report states every difference from the
file that was rehearsed. The gateway address is ALWAYS the drill's own simulator on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

from pydantic import BaseModel, SecretStr

from watchdog.config.schema import METRICS, Condition, Config, MetricKind, NotifyTarget

LOOPBACK = "127.0.0.1"
FAST_VERIFY = 2.0  # seconds per kill round: the simulator answers in milliseconds, longer only waits
FAST_POLL = 1.0  # seconds between polls at most: detection sooner, same rules
FAST_HEARTBEAT = 1.0  # seconds between heartbeats at most
FAST_RECONNECT = (0.2, 1.0)  # first and longest reconnect delay
FAST_CONNECT = 3.0  # seconds for one connection attempt
FAST_GRACE = 1.0  # standby grace in seconds


def drill_config(
    config: Config,
    *,
    port: int,
    state_dir: str,
    notify_url: str,
    notify: bool,
    notify_label: str = "manual-kill",
) -> tuple[Config, list[str]]:
    """The rehearsal's config and the list of overrides in words. `notify`: keep the user's targets too."""
    notes: list[str] = []
    gw = config.gateway.model_copy(
        update={
            "host": LOOPBACK,
            "port": port,
            "connect_timeout": min(config.gateway.connect_timeout, FAST_CONNECT),
        }
    )
    notes.append(
        f"gateway {config.gateway.host}:{config.gateway.port} replaced by the drill's simulator on "
        f"{LOOPBACK} (client id {config.gateway.client_id}, accounts and paper flag kept; the simulated "
        "gateway has the watchdog as its Master API client, as docs/deployment.md asks)"
    )
    hb = config.heartbeat
    heartbeat = hb.model_copy(
        update={
            "interval": min(hb.interval, FAST_HEARTBEAT),
            "reconnect_initial": min(hb.reconnect_initial, FAST_RECONNECT[0]),
            "reconnect_max": min(hb.reconnect_max, FAST_RECONNECT[1]),
        }
    )
    if heartbeat != hb:
        notes.append(
            f"heartbeat interval ≤ {FAST_HEARTBEAT:g} s and reconnect delays ≤ {FAST_RECONNECT[1]:g} s "
            "(only faster; timeout and misses kept)"
        )
    p = config.polling
    fast = {k: min(getattr(p, k), FAST_POLL) for k in ("pnl", "account_summary", "positions", "orders")}
    polling = p.model_copy(update={**fast, "executions": min(p.executions, FAST_POLL)})
    if polling != p:
        notes.append(f"polls every {FAST_POLL:g} s at most (detection sooner; same rules)")
    k = config.kill
    kill = k.model_copy(
        update={
            "dry_run": False,
            "verify_timeout": min(k.verify_timeout, FAST_VERIFY),
            "standby_grace": min(k.standby_grace, FAST_GRACE),
            "rearm_cron": None,
        }
    )
    if k.verify_timeout > FAST_VERIFY:
        notes.append(
            f"kill.verify_timeout {k.verify_timeout:g} s → {FAST_VERIFY:g} s per round "
            "(the simulator fills at once; max_attempts, pacing, collar and order_ref kept)"
        )
    if k.dry_run:
        notes.append(
            "kill.dry_run true → false: the drill rehearses the kill the config would run if enabled"
        )
    if k.rearm_cron:
        notes.append("kill.rearm_cron left out (an automatic re-arm would end a scenario's latch early)")
    targets = [NotifyTarget(url=SecretStr(notify_url))]
    if notify:
        targets += list(config.notifications.targets)
        notes.append(
            f"notifications: the config's targets hear the {notify_label} scenario for real (--notify), "
            "once; every scenario's messages are captured by the drill on loopback"
        )
    else:
        notes.append(
            "notifications: captured by the drill on loopback only; the config's targets and urls_file "
            "were not read (no --notify), so their secrets were neither needed nor checked"
        )
    notifications = config.notifications.model_copy(
        update={"targets": tuple(targets), "urls_file": config.notifications.urls_file if notify else None}
    )
    metrics = config.metrics.model_copy(update={"host": LOOPBACK, "port": 0})
    bots = config.bots.model_copy(update={"listen": f"{LOOPBACK}:0"})
    if config.bots.heartbeats:
        notes.append(
            f"bot heartbeats: the receiver on an ephemeral loopback port instead of {config.bots.listen} "
            "(your bots keep talking to the running daemon); the drill heartbeats as each bot"
        )
    notes.append("metrics on an ephemeral loopback port; state dir: a fresh temporary directory per scenario")
    if config.quiet_windows:
        notes.append("quiet windows left out: every rule is rehearsed whatever the time of day")
    if sum(1 for r in config.rules if r.enabled and r.action.is_kill) > 1:
        notes.append(
            "in a rule's scenario the other kill rules alert instead of killing: each rule's own kill is "
            "rehearsed (a rule that breached first on the same values is named)"
        )
    rules = tuple(r.model_copy(update={"enabled": False}) if r.schedule else r for r in config.rules)
    if any(r.schedule and r.enabled for r in config.rules):
        notes.append("scheduled rules are fired by the drill, not by their cron times")
    drilled = config.model_copy(
        update={
            "gateway": gw,
            "heartbeat": heartbeat,
            "polling": polling,
            "kill": kill,
            "notifications": notifications,
            "metrics": metrics,
            "bots": bots,
            "state_dir": state_dir,
            "quiet_windows": (),
            "rules": rules,
        }
    )
    if drilled.gateway.host != LOOPBACK or drilled.gateway.port != port:  # belt and braces
        raise AssertionError("a drill must only ever talk to its own simulator")
    return drilled, notes


def isolated(config: Config, rule: str) -> Config:
    """The config with every other kill rule held to an alert: a rule's scenario rehearses *its* kill.

    A value driven past one limit often passes another (a 3 % loss is also past a 2,500 loss limit);
    the other rules still judge and announce, but only the rehearsed rule's kill may run."""
    from watchdog.model import Action

    rules = tuple(
        r if r.name == rule or not r.action.is_kill else r.model_copy(update={"action": Action.ALERT})
        for r in config.rules
    )
    return config.model_copy(update={"rules": rules})


def config_yaml(config: Config) -> str:
    """The config as a file `ibkr-watchdog run` accepts (for the restart scenario's real process)."""
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["notifications"]["targets"] = [
        {"url": t.url.get_secret_value(), "severities": [s.value for s in t.severities]}
        for t in config.notifications.targets
    ]
    for bot, written in zip(config.bots.heartbeats, data.get("bots", {}).get("heartbeats", []), strict=True):
        written["token"] = bot.token.get_secret_value()  # a dump masks secrets; the file needs them
    _spell(Config, data)
    return json.dumps(data, indent=1)  # JSON is YAML


def _unit(annotation: Any, metadata: list[Any]) -> str:
    """'s' for a Duration field, '%' for a Percent field (told by their before-validators), else ''."""
    inner = [m for a in (annotation, *get_args(annotation)) for m in getattr(a, "__metadata__", ())]
    for item in [*metadata, *inner]:
        name = getattr(getattr(item, "func", None), "__name__", "")
        if name == "_duration_field":
            return "s"
        if name == "_percent_field":
            return "%"
    return ""


def _spell(model: type[BaseModel], data: Any) -> None:
    """Every Duration back as `2s` and Percent as `3%` in a dump (which holds plain floats), walking the
    schema itself, so a key added to it later is spelled right too; conditions by their metric."""
    if not isinstance(data, dict):
        return
    for name, info in model.model_fields.items():
        key = info.alias or name
        value = data.get(key)
        unit = _unit(info.annotation, info.metadata)
        if unit and isinstance(value, int | float) and not isinstance(value, bool):
            data[key] = f"{value:g}s" if unit == "s" else f"{value * 100:g}%"
            continue
        inner = _model_of(info.annotation)
        if inner is Condition:
            if isinstance(value, dict):
                _spell_condition(value)
        elif inner is not None:
            for item in value if isinstance(value, list) else [value]:
                _spell(inner, item)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (itself, in a tuple, or optional), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for arg in get_args(candidate):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _spell_condition(cond: dict[str, Any]) -> None:
    """A threshold in base units back in its metric's file spelling (-3% for -0.03, 30s for 30.0)."""
    for part in [*(cond.get("all") or []), *(cond.get("any") or [])]:
        _spell_condition(part)
    info = METRICS.get(str(cond.get("metric")))
    value = cond.get("value")
    if info is None or not isinstance(value, int | float):
        return
    if info.kind is MetricKind.PERCENT or (info.kind is MetricKind.RATIO and not 0 <= value <= 1):
        cond["value"] = f"{value * 100:g}%"
    elif info.kind is MetricKind.SECONDS:
        cond["value"] = f"{value:g}s"


@dataclass(slots=True)
class Message:
    """One notification the rehearsal's daemon sent (as apprise's json:// posts it)."""

    at: float  # drill clock
    scenario: str
    title: str
    body: str
    kind: str  # apprise type: info, warning, failure, success


@dataclass(slots=True)
class Capture:
    """A loopback HTTP endpoint for apprise's `json://` target; one path per scenario."""

    clock: Callable[[], float] = time.time
    messages: list[Message] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _paths: dict[str, str] = field(default_factory=dict)  # scenario → its number in the URL

    @property
    def _names(self) -> dict[str, str]:
        return {number: scenario for scenario, number in self._paths.items()}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def url(self, scenario: str) -> str:
        """A short number in the path, not the scenario's name: the notifier scrubs words of its URLs
        from every message (they may be tokens), and a rule's name must stay readable."""
        number = self._paths.setdefault(scenario, str(len(self._paths) + 1))
        return f"json://{LOOPBACK}:{self.port}/d/{number}"

    def of(self, scenario: str) -> list[Message]:
        return [m for m in self.messages if m.scenario == scenario]

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._arrived.clear()
                    await self._arrived.wait()
        return predicate()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5.0):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                body = await reader.readexactly(length) if length else b""
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        self.messages.append(
            Message(
                at=self.clock(),
                scenario=self._names.get(path.rstrip("/").rsplit("/", 1)[-1], "?"),
                title=str(data.get("title", "")),
                body=str(data.get("message", "")),
                kind=str(data.get("type", "")),
            )
        )
        self._arrived.set()
