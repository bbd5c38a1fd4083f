"""How the drill drives a rule's metric across its threshold in the simulator, and which thresholds
can never be reached from the rehearsed book (a finding: the rule gives false comfort).

Each leaf comparison of a rule becomes simulator calls on the rule's accounts; `all:` drives every
leaf, `any:` the first one that can be driven. Values are pushed 20 % past the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from watchdog.config.schema import METRICS, Condition, Config, MetricKind, Rule

if TYPE_CHECKING:
    from watchdog.sim import Simulator

Step = Callable[["Simulator"], Awaitable[None] | None]
# metrics that are never below zero: a limit below zero on them is a sign slip, not a limit
NEVER_NEGATIVE = frozenset(
    {
        "drawdown",
        "drawdown_pct",
        "margin_ratio",
        "gross_position_value",
        "largest_position_value",
        "position_count",
        "open_order_count",
        "fills_per_minute",
        "orders_per_minute",
        "heartbeat_rtt",
        "gateway_down_seconds",
        "data_age",
        "bot_silence",
    }
)
BOT_CLIENT = 7  # the client id the drill's "bot" orders come from
CURRENT_TIME = 49  # TWS API currentTime, the answer to the heartbeat (outgoing message id)


@dataclass(slots=True)
class Drive:
    """What to do to the simulator so the rule fires; or why it cannot fire / cannot be driven."""

    steps: list[tuple[str, Step]] = field(default_factory=list)
    warp: float = 0.0  # drill seconds the clock may be advanced (for:, staleness)
    cannot_fire: str = ""  # a finding
    not_driven: str = ""  # the simulator cannot produce it (reported, not a finding)
    needs_down: bool = False  # warp only once the daemon sees the gateway down
    undo: list[Step] = field(default_factory=list)
    bot: str = ""  # a bot_silence rule's bot: the drill heartbeats as it once, then falls silent
    heartbeat: bool = False
    time_based: bool = False  # the condition itself needs time to pass (down, stale, silent)
    findings: list[str] = field(
        default_factory=list
    )  # `each`: accounts where it can never fire (driven elsewhere)


def scope_accounts(rule: Rule, watched: list[str], sim: Simulator) -> list[str]:
    """The accounts a rule reads: all for `each` and `all` (those with positions first), or its own.

    `each` is judged per account: reachability is checked on every one, the drive uses one."""
    if rule.scope not in ("each", "all"):
        return [rule.scope]
    if rule.scope == "all":
        return watched
    return sorted(watched, key=lambda a: not sim.positions(a))


def _reachable(op: str, need: float, worth: float) -> bool:
    """A fall of `need` (base currency) can happen in an account worth `worth`: it can lose all of it,
    never more. An unknown or empty worth (<= 0) is not judged."""
    if worth <= 0:
        return True
    return need < worth or (need == worth and op in ("<=", ">="))


def _past(value: float, op: str, kind: MetricKind) -> float:
    unit = {
        MetricKind.MONEY: 100.0,
        MetricKind.PERCENT: 0.01,
        MetricKind.RATIO: 0.01,
        MetricKind.SECONDS: 1.0,
    }
    if kind in (MetricKind.COUNT, MetricKind.RATE):
        return math.floor(value) + 1 if op in (">", ">=", "!=") else math.ceil(value) - 1
    margin = max(abs(value) * 0.2, unit.get(kind, 1.0))
    if op in ("<", "<="):
        return value - margin
    return value if op == "==" else value + margin


def _values(sim: Simulator, account: str, tag: str) -> float:
    raw = sim.account_values(account).get(tag, "0") or "0"
    try:
        return float(raw)
    except ValueError:
        return 0.0


def plan_drive(rule: Rule, config: Config, sim: Simulator, watched: list[str]) -> Drive:
    drive = Drive(warp=(rule.for_ or 0.0) + (1.0 if rule.for_ else 0.0), bot=rule.bot or "")
    assert rule.when is not None
    _drive_condition(rule.when, rule, config, sim, scope_accounts(rule, watched, sim), drive)
    drive.findings = list(dict.fromkeys(drive.findings))
    return drive


def _drive_condition(
    cond: Condition, rule: Rule, config: Config, sim: Simulator, accounts: list[str], drive: Drive
) -> None:
    if cond.metric is not None:
        _drive_leaf(cond, config, sim, accounts, drive, each=rule.scope == "each")
        return
    if cond.all is not None:
        clash = contradiction(cond.all)
        if clash:
            drive.cannot_fire = clash
            return
        for part in cond.all:
            _drive_condition(part, rule, config, sim, accounts, drive)
        return
    reasons = []
    for part in cond.any or ():
        trial = Drive(bot=drive.bot)
        _drive_condition(part, rule, config, sim, accounts, trial)
        if not trial.cannot_fire and not trial.not_driven:
            drive.findings += trial.findings
            drive.steps += trial.steps
            drive.undo += trial.undo
            drive.warp += trial.warp
            drive.needs_down = drive.needs_down or trial.needs_down
            drive.heartbeat = drive.heartbeat or trial.heartbeat
            drive.time_based = drive.time_based or trial.time_based
            return
        reasons.append(trial.cannot_fire or trial.not_driven)
    drive.cannot_fire = "; ".join(reasons) if all(reasons) else drive.cannot_fire


def contradiction(parts: tuple[Condition, ...]) -> str:
    """'' unless two comparisons of one `all:` on the same metric exclude each other (x < 0 and x > 5)."""
    low: dict[str, tuple[float, bool]] = {}  # metric → (bound, inclusive)
    high: dict[str, tuple[float, bool]] = {}
    for c in parts:
        if c.metric is None or c.value is None:
            continue
        if c.op in (">", ">=", "==") and (c.metric not in low or c.value >= low[c.metric][0]):
            low[c.metric] = (c.value, c.op != ">")
        if c.op in ("<", "<=", "==") and (c.metric not in high or c.value <= high[c.metric][0]):
            high[c.metric] = (c.value, c.op != "<")
    for metric, (lo, lo_in) in low.items():
        if metric in high:
            hi, hi_in = high[metric]
            if lo > hi or (lo == hi and not (lo_in and hi_in)):
                return (
                    f"{metric} above {lo:g} and below {hi:g} at once: the all: conditions exclude each other"
                )
    return ""


def _drive_leaf(
    c: Condition, config: Config, sim: Simulator, accounts: list[str], drive: Drive, *, each: bool = False
) -> None:
    assert c.metric is not None and c.op is not None and c.value is not None
    metric, op, threshold = c.metric, c.op, c.value
    info = METRICS[metric]
    if (
        metric in NEVER_NEGATIVE
        and (threshold < 0 or (threshold == 0 and op == "<"))
        and op in ("<", "<=", "==")
    ):
        flip = {"<": ">", "<=": ">=", "==": "=="}[op]
        drive.cannot_fire = (
            f"{metric} {op} {threshold:g} can never hold: {info.label} is never negative "
            f"(a sign slip? {metric} {flip} {abs(threshold):g})"
        )
        return
    target = _past(threshold, op, info.kind)
    below = op in ("<", "<=")
    nlv = {a: _values(sim, a, "NetLiquidation") for a in accounts}
    # a fall in money the rule waits for: judged from the threshold itself (not the drive's overshoot),
    # on every account an `each` rule reads, or on the sum for `all`
    need = -threshold if metric == "daily_pnl" and below else threshold if metric == "drawdown" else None
    if need is not None:
        what = "a loss" if metric == "daily_pnl" else "a drawdown"
        worths = {a: nlv[a] for a in accounts} if each else {", ".join(accounts): sum(nlv.values())}
        never = {a: w for a, w in worths.items() if not _reachable(op, need, w)}
        text = "; ".join(f"{a} is worth {w:,.0f} net liquidation" for a, w in never.items())
        if never and len(never) == len(worths):
            drive.cannot_fire = (
                f"{metric} {op} {threshold:,.0f} needs {what} larger than the whole account ({text})"
            )
            return
        if never:
            drive.findings.append(f"{metric} {op} {threshold:,.0f} can never fire in {text}")
            accounts = [a for a in accounts if a not in never]
    if each:
        accounts = accounts[:1]
    first, others = accounts[0], accounts[1:]
    total = sum(nlv[a] for a in accounts)

    def step(text: str, fn: Step) -> None:
        drive.steps.append((text, fn))

    def tag(account: str, name: str, value: float) -> Step:
        return lambda s: s.set_account_value(account, name, value)

    if metric in ("daily_pnl", "unrealized_pnl", "realized_pnl"):
        field_name = metric.split("_")[0]
        if metric == "daily_pnl" and below and nlv[first] > 0:
            target = max(target, -nlv[first])  # 20 % past, but never more than the account can lose
        for a in accounts:
            value = target if a == first else 0.0
            step(
                f"{field_name} P&L of {a} set to {value:,.0f}",
                _pnl(a, field_name, value),
            )
    elif metric == "daily_pnl_pct":
        if below and threshold <= -1.0:
            drive.cannot_fire = (
                f"daily_pnl_pct {op} {threshold:.0%} needs a loss of the whole account or more"
            )
            return
        for a in accounts:
            step(
                f"previous-day equity of {a} pinned at {nlv[a]:,.0f}",
                tag(a, "PreviousDayEquityWithLoanValue", nlv[a]),
            )
            step(f"daily P&L of {a} set to {target:.1%}", _pnl(a, "daily", target * nlv[a]))
    elif metric in ("net_liquidation", "excess_liquidity", "gross_position_value"):
        tag_name = {"net_liquidation": "NetLiquidation", "excess_liquidity": "ExcessLiquidity"}.get(
            metric, "GrossPositionValue"
        )
        rest = sum(_values(sim, a, tag_name) for a in others)
        step(f"{tag_name} of {first} set to {target - rest:,.0f}", tag(first, tag_name, target - rest))
    elif metric == "drawdown":
        target = min(target, total) if total > 0 else target  # 20 % past, but never below zero
        value = nlv[first] - target
        step(
            f"net liquidation of {first} falls by {target:,.0f} to {value:,.0f}",
            tag(first, "NetLiquidation", value),
        )
    elif metric == "drawdown_pct":
        if threshold >= 1.0:
            drive.cannot_fire = (
                f"drawdown_pct {op} {threshold:.0%}: an account cannot fall by more than all of it"
            )
            return
        for a in accounts:
            step(
                f"net liquidation of {a} falls by {target:.1%}",
                tag(a, "NetLiquidation", nlv[a] * (1 - target)),
            )
    elif metric == "cushion":
        for a in accounts:
            step(f"cushion of {a} set to {target:.1%}", tag(a, "Cushion", target))
            step(
                f"excess liquidity of {a} set to {target * nlv[a]:,.0f}",
                tag(a, "ExcessLiquidity", target * nlv[a]),
            )
    elif metric == "margin_ratio":
        for a in accounts:
            step(
                f"maintenance margin of {a} set to {target:.0%} of equity",
                tag(a, "MaintMarginReq", target * nlv[a]),
            )
    elif metric in ("open_order_count", "orders_per_minute"):
        if below:
            drive.not_driven = f"{metric} {op} {threshold:g}: the drill only drives counts upwards"
            return
        have = sum(len(sim.open_orders(a)) for a in accounts) if metric == "open_order_count" else 0
        n = max(1, int(target) - have)
        step(
            f"a bot (client {BOT_CLIENT}) places {n} resting orders in {first}",
            lambda s: _resting(s, first, n),
        )
    elif metric == "fills_per_minute":
        if below:
            drive.not_driven = f"{metric} {op} {threshold:g}: the drill only drives counts upwards"
            return
        n = int(target)
        step(f"a bot (client {BOT_CLIENT}) gets {n} fills in {first}", lambda s: _fills(s, first, n))
    elif metric == "position_count":
        held = {p.con_id for a in accounts for p in sim.positions(a)}
        free = [i for i in sim.universe.by_con_id.values() if i.con_id not in held]
        n = int(target) - sum(len(sim.positions(a)) for a in accounts)
        if below or n > len(free):
            drive.not_driven = (
                f"position_count {op} {threshold:g}: the simulator has {len(free)} more contracts"
            )
            return
        for inst in free[:n]:
            step(
                f"new position: 1 {inst.local_symbol or inst.symbol} in {first}",
                _position(first, inst.con_id, 1.0),
            )
    elif metric == "largest_position_value":
        if below:
            drive.not_driven = "largest_position_value below a limit: the drill does not shrink positions"
            return
        pos = max(
            (p for a in accounts for p in sim.positions(a)),
            key=lambda p: abs(p.quantity * p.market_price),
            default=None,
        )
        if pos is None:
            drive.not_driven = "largest_position_value: the book holds no position to grow"
            return
        mult = sim.instrument(pos.con_id).multiplier
        price = target / abs(pos.quantity * mult)
        step(
            f"mark of {pos.symbol} set to {price:,.2f} (position worth {target:,.0f})",
            lambda s: s.set_price(pos.con_id, price),
        )
    elif metric == "heartbeat_rtt":
        timeout = config.heartbeat.timeout
        if below:
            drive.not_driven = "heartbeat_rtt below a limit: the drill does not speed up the gateway"
        elif threshold >= timeout:
            drive.cannot_fire = (
                f"heartbeat_rtt {op} {threshold:g}s can never be measured: an answer later than "
                f"heartbeat.timeout ({timeout:g}s) is a miss, not a round trip"
            )
        else:
            delay = threshold + (timeout - threshold) / 4  # past the limit, well before a miss
            step(
                f"gateway answers heartbeats after {delay:.2f}s",
                lambda s: s.faults.delay({CURRENT_TIME}, delay),
            )
            drive.undo.append(lambda s: s.faults.delay({CURRENT_TIME}, 0))
    elif metric == "gateway_down_seconds":
        step("gateway goes half-open (socket open, nothing answered)", lambda s: s.faults.mute())
        drive.undo.append(lambda s: s.faults.unmute())
        drive.warp += target + 1.0
        drive.needs_down = True
        drive.time_based = True
    elif metric == "bot_silence":
        if below:
            drive.not_driven = "bot_silence below a limit: the drill only lets a bot fall silent"
            return
        drive.heartbeat = True  # the heartbeat itself goes over HTTP once the daemon listens
        drive.time_based = True
        drive.warp += target + 1.0
    elif metric == "data_age":
        # silently, as a subscription that died: with 1100 (IB's nightly reset) the breach would be part
        # of the outage's one notice (docs/alerting.md), and the drill proves the rule's own alert
        step(
            "account data stops without a word from the gateway (socket and heartbeat alive, no 1100)",
            lambda s: s.faults.silence_data(),
        )
        drive.undo.append(_data_back)
        drive.time_based = True
        drive.warp += target + 2.0
    else:  # a metric added to the catalogue after the drill was written
        drive.not_driven = f"the drill does not know how to drive {metric}"


def _data_back(sim: Simulator) -> None:
    sim.faults.clear()  # the data flows again


def _pnl(account: str, name: str, value: float) -> Step:
    return lambda s: s.set_pnl(account, **{name: value})


def _position(account: str, con_id: int, quantity: float) -> Step:
    return lambda s: s.set_position(account, con_id, quantity)


def _resting(sim: Simulator, account: str, n: int) -> None:
    symbol = _stock(sim, account)
    low = round(sim.price(symbol) * 0.5, 2)
    for i in range(n):
        sim.place_order_as(BOT_CLIENT, account, symbol, "BUY", 1, "LMT", lmt_price=round(low - i * 0.01, 2))


def _fills(sim: Simulator, account: str, n: int) -> None:
    symbol = _stock(sim, account)
    for i in range(n):
        sim.place_order_as(BOT_CLIENT, account, symbol, "BUY" if i % 2 == 0 else "SELL", 1, "MKT")


def _stock(sim: Simulator, account: str) -> int | str:
    held = [p.con_id for p in sim.positions(account) if p.sec_type == "STK"]
    return held[0] if held else "AAPL"
