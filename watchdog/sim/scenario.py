"""Scenario files: initial book (accounts, prices, positions, orders) plus a YAML timeline of steps."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from watchdog.sim.orders import FillConfig

if TYPE_CHECKING:
    from watchdog.sim.simulator import Simulator

log = logging.getLogger("watchdog.sim")

TOP_KEYS = frozenset(
    {
        "name",
        "description",
        "accounts",
        "cash",
        "master_client_id",
        "session",
        "fill",
        "prices",
        "positions",
        "orders",
        "timeline",
    }
)
STEP_ACTIONS = frozenset(
    {
        "set_price",
        "set_pnl",
        "clear_pnl",
        "set_position",
        "set_account_value",
        "place_order",
        "cancel_order",
        "global_cancel",
        "fault",
        "session",
        "log",
    }
)
FAULTS = frozenset(
    {
        "mute",
        "unmute",
        "freeze",
        "unfreeze",
        "drop",
        "delay",
        "clear_delays",
        "reject_next",
        "ignore_cancel",
        "inject_error",
        "nightly_reset",
        "silence_data",
        "daily_restart",
        "pacing",
        "clock_skew",
        "late_executions",
        "clear",
    }
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class ScenarioError(ValueError):
    """A scenario file is invalid; the message names the file and the key path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Step:
    at: float  # seconds after the timeline starts
    action: str
    args: Any


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    accounts: tuple[str, ...] = ("DU111111", "DU222222")
    cash: float = 1_000_000.0
    master_client_id: int | None = None
    session: str = "regular"
    fill: FillConfig = field(default_factory=FillConfig)
    prices: tuple[tuple[str | int, float], ...] = ()
    positions: tuple[dict[str, Any], ...] = ()
    orders: tuple[dict[str, Any], ...] = ()
    timeline: tuple[Step, ...] = ()


def parse_duration(value: object, where: str) -> float:
    """`2s`, `500ms`, `1.5`, `3m` -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ScenarioError(where, f"must be a duration like 2s / 500ms / 1m, got: {value!r}")
    n, unit = float(match.group(1)), match.group(2) or "s"
    return n * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def _resolve(path_or_name: str | Path) -> tuple[str, str]:
    """A file path, or the name of a built-in scenario (`default`)."""
    p = Path(path_or_name)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return str(p), p.read_text(encoding="utf-8")
    res = resources.files("watchdog.sim").joinpath("scenarios", f"{path_or_name}.yaml")
    if not res.is_file():
        raise ScenarioError(str(path_or_name), "no such scenario file or built-in scenario")
    return f"<builtin {path_or_name}>", res.read_text(encoding="utf-8")


def load_scenario(path_or_name: str | Path = "default") -> Scenario:
    where, text = _resolve(path_or_name)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ScenarioError(where, f"invalid YAML: {exc}") from None
    return parse_scenario(data, where)


def parse_scenario(data: object, where: str = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(where, "top level must be a mapping")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ScenarioError(where, f"unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    fill_raw = data.get("fill") or {}
    if not isinstance(fill_raw, dict) or set(fill_raw) - {"delay", "partial_fills", "stock_mkt_outside_rth"}:
        raise ScenarioError(f"{where}: fill", "allowed keys: delay, partial_fills, stock_mkt_outside_rth")
    fill = FillConfig(
        fill_delay=parse_duration(fill_raw.get("delay", 0), f"{where}: fill.delay"),
        partial_fills=int(fill_raw.get("partial_fills", 1)),
        stock_mkt_outside_rth=fill_raw.get("stock_mkt_outside_rth", "reject"),
    )
    if fill.stock_mkt_outside_rth not in ("reject", "hold"):
        raise ScenarioError(f"{where}: fill.stock_mkt_outside_rth", "must be reject or hold")
    prices = data.get("prices") or {}
    if not isinstance(prices, dict):
        raise ScenarioError(f"{where}: prices", "must map symbol or conId to price")
    steps = []
    for i, raw in enumerate(data.get("timeline") or []):
        steps.append(_parse_step(raw, f"{where}: timeline[{i}]"))
    accounts = tuple(str(a) for a in data.get("accounts") or ("DU111111", "DU222222"))
    return Scenario(
        name=str(data.get("name", where)),
        accounts=accounts,
        cash=float(data.get("cash", 1_000_000.0)),
        master_client_id=data.get("master_client_id"),
        session=str(data.get("session", "regular")),
        fill=fill,
        prices=tuple((k, float(v)) for k, v in prices.items()),
        positions=tuple(_mapping_list(data.get("positions"), f"{where}: positions")),
        orders=tuple(_mapping_list(data.get("orders"), f"{where}: orders")),
        timeline=tuple(sorted(steps, key=lambda s: s.at)),
    )


def _mapping_list(raw: object, where: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise ScenarioError(where, "must be a list of mappings")
    return raw


def _parse_step(raw: object, where: str) -> Step:
    if not isinstance(raw, dict) or "at" not in raw:
        raise ScenarioError(where, "each step is a mapping with `at:` and one action")
    actions = [k for k in raw if k != "at"]
    if len(actions) != 1 or actions[0] not in STEP_ACTIONS:
        raise ScenarioError(where, f"exactly one action of {sorted(STEP_ACTIONS)}, got: {actions}")
    action = actions[0]
    args = raw[action]
    if action == "fault":
        name = args if isinstance(args, str) else next(iter(args), None) if isinstance(args, dict) else None
        if name not in FAULTS or (isinstance(args, dict) and len(args) != 1):
            raise ScenarioError(f"{where}.fault", f"one fault of {sorted(FAULTS)}, got: {args!r}")
    return Step(parse_duration(raw["at"], f"{where}.at"), action, args)


def apply_initial(sim: Simulator, spec: Scenario) -> None:
    """Prices first (positions are valued at them), then positions, then resting orders."""
    sim.set_session(spec.session)  # type: ignore[arg-type]
    for key, price in spec.prices:
        sim.set_price(key, price)
    for pos in spec.positions:
        _call(sim.set_position, pos, "positions")
    for order in spec.orders:
        _place(sim, order)


def _call(fn: Any, kwargs: dict[str, Any], where: str) -> Any:
    try:
        return fn(**kwargs)
    except TypeError as exc:
        raise ScenarioError(where, f"bad arguments {kwargs!r}: {exc}") from None


def _place(sim: Simulator, args: dict[str, Any]) -> int:
    kw = dict(args)
    if "quantity" not in kw and "qty" in kw:
        kw["quantity"] = kw.pop("qty")
    return int(_call(sim.place_order_as, kw, "place_order"))


async def run_scenario(sim: Simulator, spec: Scenario) -> None:
    """Play the timeline; `at` is relative to when this coroutine starts. Errors in a step are logged."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for step in spec.timeline:
        delay = start + step.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await run_step(sim, step)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("scenario %s: step at %.3fs (%s) failed: %s", spec.name, step.at, step.action, exc)


async def run_step(sim: Simulator, step: Step) -> None:
    a, args = step.action, step.args
    log.info("scenario step at %.3fs: %s %s", step.at, a, args)
    if a == "set_price":
        sim.set_price(args["symbol"], float(args["price"]))
    elif a == "set_pnl":
        _call(sim.set_pnl, args, a)
    elif a == "clear_pnl":
        sim.clear_pnl(args["account"] if isinstance(args, dict) else str(args))
    elif a == "set_position":
        _call(sim.set_position, args, a)
    elif a == "set_account_value":
        _call(sim.set_account_value, args, a)
    elif a == "place_order":
        _place(sim, args)
    elif a == "cancel_order":
        _call(sim.cancel_order_as, args, a)
    elif a == "global_cancel":
        sim.global_cancel()
    elif a == "session":
        sim.set_session(args)
    elif a == "log":
        log.info("scenario: %s", args)
    elif a == "fault":
        name, kwargs = (args, {}) if isinstance(args, str) else next(iter(args.items()))
        if kwargs is not None and not isinstance(kwargs, dict):
            kwargs = {"client_id": kwargs} if name in ("mute", "unmute", "freeze", "unfreeze") else {}
        if name == "delay" and isinstance(kwargs, dict) and kwargs.get("msg_ids") is not None:
            kwargs = {**kwargs, "msg_ids": set(kwargs["msg_ids"])}
        result = _call(getattr(sim.faults, name), kwargs or {}, f"fault {name}")
        if inspect.isawaitable(result):
            await result
