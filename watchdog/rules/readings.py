"""Metric values from a Snapshot, per account or summed, with missing/NaN/stale data folded into "unknown"."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from watchdog.model import AccountState, Health, Snapshot

RATE_WINDOW = 60.0  # fills/orders "per minute" count the events of the last 60 s
_DATA_FIELDS = ("net_liquidation", "daily_pnl")  # the account values data_age looks at

# The day's highs (for drawdown and warning baselines) live in RuleMemory; readings ask for them
# through this callback so this module stays free of state: (key, metric, value, now) → high so far.
HighFn = Callable[[str | None, str, float, float], float]


@dataclass(frozen=True, slots=True)
class Reading:
    """A metric value, or None with the reason it is not known."""

    value: float | None
    why: str = ""
    # unknown on purpose (a bot that stopped cleanly is disarmed): the rule rests, no "unknown" alert
    resting: bool = False


def _unknown(why: str) -> Reading:
    return Reading(None, why)


@dataclass(slots=True)
class Readings:
    """Computes metric values for one evaluation; per-account aggregates are computed once and cached."""

    snapshot: Snapshot
    now: float
    accounts: Sequence[str]
    high: HighFn
    _positions: dict[str, tuple[int, float, bool]] | None = None
    _orders: dict[str, int] | None = None

    def read(self, metric: str, key: str | None, stale_after: float, bot: str | None = None) -> Reading:
        """`key` is an account id, or None for every watched account summed; `bot` the rule's bot."""
        if metric == "bot_silence":
            return self.bot_silence(bot)
        fn = _METRIC_FNS.get(metric)
        if fn is None:
            return _unknown(f"no such metric {metric!r}")
        return fn(self, key, stale_after)

    def bot_silence(self, bot: str | None) -> Reading:
        """Seconds since the bot's last heartbeat. Unknown (never a kill) until its first heartbeat
        after a start or a clean stop; a clean stop rests the rule until the next heartbeat.

        The daemon measures it on the monotonic clock (`BotStatus.silence`); only a snapshot built
        without that measure (a replay, a test) falls back to the wall clock's `now - last_seen`."""
        status = self.snapshot.bots.get(bot or "")
        if status is None:
            return _unknown(f"no heartbeat record for bot {bot!r}")
        if status.unknown_reason:
            return _unknown(status.unknown_reason)
        if status.last_seen is None:
            if status.stopped_at is not None:
                return Reading(None, f"bot {bot} stopped cleanly; disarmed until its next heartbeat", True)
            return _unknown(f"no heartbeat from bot {bot} yet")
        if status.silence is not None:
            return Reading(max(0.0, status.silence))
        return Reading(max(0.0, self.now - status.last_seen))

    # -- building blocks ------------------------------------------------------------------------
    def keys(self, key: str | None) -> list[str]:
        return list(self.accounts) if key is None else [key]

    def account_field(self, name: str, key: str | None, stale_after: float) -> Reading:
        """An AccountState field, summed over the accounts when key is None; unknown if any is unknown."""
        accts = self.keys(key)
        if not accts:
            return _unknown("no account data yet")
        total = 0.0
        for a in accts:
            r = self.one_field(self.snapshot.accounts.get(a), a, name, stale_after)
            if r.value is None:
                return r
            total += r.value
        return Reading(total)

    def one_field(self, acct: AccountState | None, account: str, name: str, stale_after: float) -> Reading:
        if acct is None:
            return _unknown(f"no data for account {account}")
        v = acct.value(name)
        if v is None or not math.isfinite(v):
            return _unknown(f"{name} of {account} is missing")
        age = self.now - acct.as_of.get(name, self.snapshot.taken_at)
        if age > stale_after:
            return _unknown(f"{name} of {account} is stale ({age:.0f} s old)")
        return Reading(v)

    def fresh(self, as_of: float | None, what: str, stale_after: float) -> str:
        """'' when a list (positions, orders, fills) is fresh enough, else why not."""
        if as_of is None:
            return f"{what} not received yet"
        age = self.now - as_of
        return f"{what} stale ({age:.0f} s old)" if age > stale_after else ""

    def positions(self) -> dict[str, tuple[int, float, bool]]:
        """Per account: (non-zero positions, largest |market value|, any market value missing)."""
        if self._positions is None:
            agg: dict[str, tuple[int, float, bool]] = {}
            for p in self.snapshot.positions:
                if p.quantity == 0:
                    continue
                n, big, missing = agg.get(p.account, (0, 0.0, False))
                mv = p.market_value
                if mv is None or not math.isfinite(mv):
                    missing = True
                else:
                    big = max(big, abs(mv))
                agg[p.account] = (n + 1, big, missing)
            self._positions = agg
        return self._positions

    def orders(self) -> dict[str, int]:
        if self._orders is None:
            counts: dict[str, int] = {}
            for o in self.snapshot.open_orders:
                if o.is_working:
                    counts[o.account] = counts.get(o.account, 0) + 1
            self._orders = counts
        return self._orders


def _money(name: str) -> Callable[[Readings, str | None, float], Reading]:
    return lambda r, key, stale: r.account_field(name, key, stale)


def _daily_pnl_pct(r: Readings, key: str | None, stale: float) -> Reading:
    pnl = r.account_field("daily_pnl", key, stale)
    base = r.account_field("previous_day_equity", key, stale)
    if pnl.value is None:
        return pnl
    if base.value is None:
        return base
    if base.value <= 0:
        return _unknown("previous-day equity is not positive")
    return Reading(pnl.value / base.value)


def _drawdown_parts(r: Readings, key: str | None, stale: float) -> tuple[Reading, float]:
    nl = r.account_field("net_liquidation", key, stale)
    if nl.value is None:
        return nl, math.nan
    high = r.high(key, "net_liquidation", nl.value, r.now)
    return Reading(max(0.0, high - nl.value)), high


def _drawdown(r: Readings, key: str | None, stale: float) -> Reading:
    return _drawdown_parts(r, key, stale)[0]


def _drawdown_pct(r: Readings, key: str | None, stale: float) -> Reading:
    dd, high = _drawdown_parts(r, key, stale)
    if dd.value is None:
        return dd
    if high <= 0:
        return _unknown("the day's high of net liquidation is not positive")
    return Reading(dd.value / high)


def _cushion(r: Readings, key: str | None, stale: float) -> Reading:
    if key is not None:
        return r.account_field("cushion", key, stale)
    # Summed accounts: IB's definition, excess liquidity over net liquidation, from the sums.
    el, nl = r.account_field("excess_liquidity", None, stale), r.account_field("net_liquidation", None, stale)
    if el.value is None:
        return el
    if nl.value is None:
        return nl
    return Reading(0.0 if nl.value <= 0 else el.value / nl.value)  # nothing left: no cushion at all


def _margin_ratio(r: Readings, key: str | None, stale: float) -> Reading:
    mm, nl = r.account_field("maint_margin_req", key, stale), r.account_field("net_liquidation", key, stale)
    if mm.value is None:
        return mm
    if nl.value is None:
        return nl
    if nl.value <= 0:
        return Reading(math.inf if mm.value > 0 else 0.0)  # equity gone while margin is owed: the worst
    return Reading(mm.value / nl.value)


def _position_stat(
    pick: Callable[[tuple[int, float, bool]], float], needs_values: bool
) -> Callable[[Readings, str | None, float], Reading]:
    def read(r: Readings, key: str | None, stale: float) -> Reading:
        why = r.fresh(r.snapshot.positions_as_of, "positions", stale)
        if why:
            return _unknown(why)
        values = [r.positions().get(a, (0, 0.0, False)) for a in r.keys(key)]
        if needs_values and any(missing for _, _, missing in values):
            return _unknown("a position has no market value")
        picked = [pick(v) for v in values]
        if needs_values:
            return Reading(max(picked, default=0.0))  # the largest single position, not a sum
        return Reading(float(sum(picked)))

    return read


def _open_orders(r: Readings, key: str | None, stale: float) -> Reading:
    why = r.fresh(r.snapshot.orders_as_of, "open orders", stale)
    if why:
        return _unknown(why)
    counts = r.orders()
    return Reading(float(sum(counts.get(a, 0) for a in r.keys(key))))


def _fills_per_minute(r: Readings, key: str | None, stale: float) -> Reading:
    why = r.fresh(r.snapshot.fills_as_of, "executions", stale)
    if why:
        return _unknown(why)
    wanted = set(r.keys(key))
    start = r.now - RATE_WINDOW
    return Reading(float(sum(1 for f in r.snapshot.fills if f.account in wanted and start < f.time <= r.now)))


def _orders_per_minute(r: Readings, key: str | None, stale: float) -> Reading:
    why = r.fresh(r.snapshot.orders_as_of, "open orders", stale)
    if why:
        return _unknown(why)
    wanted = set(r.keys(key))
    start = r.now - RATE_WINDOW
    events = r.snapshot.order_events
    return Reading(float(sum(1 for a, t in events if a in wanted and start < t <= r.now)))


def _heartbeat_rtt(r: Readings, key: str | None, stale: float) -> Reading:
    gw = r.snapshot.gateway
    if gw.heartbeat_rtt is None or not math.isfinite(gw.heartbeat_rtt):
        return _unknown("no heartbeat answered yet")
    why = r.fresh(gw.last_heartbeat, "heartbeat", stale)
    return _unknown(why) if why else Reading(gw.heartbeat_rtt)


def _gateway_down(r: Readings, key: str | None, stale: float) -> Reading:
    gw = r.snapshot.gateway
    if gw.down_since is not None:
        return Reading(max(0.0, r.now - gw.down_since))
    if gw.health in (Health.HEALTHY, Health.DEGRADED) or gw.connected:
        return Reading(0.0)
    return _unknown(f"gateway {gw.health.value} and no down-since time")  # never reads as "fine"


def _data_age(r: Readings, key: str | None, stale: float) -> Reading:
    # Measures staleness itself, so stale_after does not apply; the oldest piece of data counts.
    snap = r.snapshot
    accts = r.keys(key)
    if not accts:
        return _unknown("no account data yet")
    stamps: list[float] = []
    for a in accts:
        acct = snap.accounts.get(a)
        if acct is None:
            return _unknown(f"no data for account {a}")
        for name in _DATA_FIELDS:
            if acct.value(name) is not None:
                stamps.append(acct.as_of.get(name, snap.taken_at))
            elif name in acct.as_of:
                stamps.append(acct.as_of[name])
    stamps += [t for t in (snap.positions_as_of, snap.orders_as_of) if t is not None]
    if not stamps:
        return _unknown("no data received yet")
    return Reading(max(0.0, r.now - min(stamps)))


_METRIC_FNS: Mapping[str, Callable[[Readings, str | None, float], Reading]] = MappingProxyType(
    {
        "daily_pnl": _money("daily_pnl"),
        "daily_pnl_pct": _daily_pnl_pct,
        "unrealized_pnl": _money("unrealized_pnl"),
        "realized_pnl": _money("realized_pnl"),
        "net_liquidation": _money("net_liquidation"),
        "drawdown": _drawdown,
        "drawdown_pct": _drawdown_pct,
        "excess_liquidity": _money("excess_liquidity"),
        "cushion": _cushion,
        "margin_ratio": _margin_ratio,
        "gross_position_value": _money("gross_position_value"),
        "largest_position_value": _position_stat(lambda v: v[1], needs_values=True),
        "position_count": _position_stat(lambda v: float(v[0]), needs_values=False),
        "open_order_count": _open_orders,
        "fills_per_minute": _fills_per_minute,
        "orders_per_minute": _orders_per_minute,
        "heartbeat_rtt": _heartbeat_rtt,
        "gateway_down_seconds": _gateway_down,
        "data_age": _data_age,
    }
)
