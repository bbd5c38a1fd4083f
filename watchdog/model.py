"""Immutable records that flow from the gateway through the rules to the kill switch.

Only plain Python values live here (no ib_async objects, no camelCase). Timestamps are
wall-clock epoch seconds (float) taken from an injected clock, so rules can tell fresh data
from stale data and tests can control time.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

_Item = TypeVar("_Item")
EMPTY_MAP: Mapping[str, float] = MappingProxyType({})


class TradingState(enum.Enum):
    """Risk posture: ARMED watches and may kill; TRIPPED has killed and holds the lockout until reset."""

    ARMED = "armed"
    TRIPPED = "tripped"


class Health(enum.Enum):
    """What the watchdog knows about the gateway connection."""

    UNKNOWN = "unknown"  # never connected yet
    CONNECTING = "connecting"
    HEALTHY = "healthy"  # connected, heartbeats answered, data flowing
    DEGRADED = "degraded"  # socket and heartbeat fine, but the gateway lost IB's servers (1100 / 2110)
    DOWN = "down"  # disconnected or half-open (heartbeats unanswered)


class Action(enum.Enum):
    """What a rule (or a manual trigger) asks for, in increasing order of force."""

    ALERT = "alert"
    CANCEL_ALL = "cancel_all"
    CLOSE_ALL = "close_all"

    @property
    def is_kill(self) -> bool:
        return self is not Action.ALERT


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class BreachKind(enum.Enum):
    BREACH = "breach"  # the condition holds (for long enough): act
    WARNING = "warning"  # within the warning band before the threshold: alert only
    UNKNOWN = "unknown"  # data missing / NaN / stale for longer than allowed: alert only, never kill
    RECOVERED = "recovered"  # a previously announced breach/warning/unknown no longer holds


class KillOutcome(enum.Enum):
    FLAT = "flat"  # verified: no working orders and (for close_all) no positions left
    ESCALATED = "escalated"  # attempts exhausted, something is still open
    PENDING = "pending"  # gateway down: persisted, will run on reconnect
    DRY_RUN = "dry_run"  # planned and reported, nothing sent


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractRef:
    """The parts of a contract the watchdog needs: identity and how to route an order for it."""

    con_id: int
    symbol: str
    sec_type: str  # STK, FUT, OPT, CASH, FOP, ...
    currency: str = "USD"
    exchange: str = ""  # as reported (often empty or a primary exchange for positions)
    primary_exchange: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: float = 1.0
    min_tick: float = 0.0  # price increment from contract details; 0 = unknown (cents assumed)

    @property
    def label(self) -> str:
        return self.local_symbol or self.symbol


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    account: str
    contract: ContractRef
    quantity: float  # signed: > 0 long, < 0 short
    avg_cost: float = 0.0
    market_price: float | None = None
    market_value: float | None = None
    unrealized_pnl: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.account, self.contract.con_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenOrder:
    """A working order of the account, whichever client placed it (client 0 = TWS GUI / manual)."""

    order_id: int
    perm_id: int
    client_id: int
    account: str
    contract: ContractRef
    action: str  # BUY / SELL
    total_quantity: float
    filled: float = 0.0
    remaining: float = 0.0
    order_type: str = "MKT"
    lmt_price: float | None = None
    aux_price: float | None = None
    status: str = ""
    order_ref: str = ""
    outside_rth: bool = False
    why_held: str = ""  # orderStatus.whyHeld: non-empty while the gateway holds the order back
    # gone from the open-orders answer without a terminal status: still counted as possibly filling
    # (`gateway.unlisted_orders`), its state unknown
    unlisted: bool = False

    @property
    def signed_remaining(self) -> float:
        """Remaining quantity signed like a position change: BUY > 0, SELL < 0."""
        return self.remaining if self.action.upper() == "BUY" else -self.remaining

    @property
    def is_working(self) -> bool:
        """Possibly filling: the gateway has not confirmed a terminal state (see `is_terminal`)."""
        return not is_terminal(self.status)

    @property
    def state_label(self) -> str:
        """The status as a person reads it in a report: `PreSubmitted, held: locate`."""
        status = self.status or "unknown status"
        if self.unlisted:
            status = f"state unknown: last {status}, gone from the open orders without a terminal status"
        return f"{status}, held: {self.why_held}" if self.why_held else status


# IB order statuses (TWS API reference, "Order Status"; ib_async `OrderStatus`). Only these three
# are final: nothing fills afterwards. Everything else can still fill and is treated as working:
#  - PendingCancel: "your order is not confirmed canceled. You may still receive an execution while
#    your cancellation request is pending" (IB); ib_async also sets it locally on cancelOrder;
#  - PendingSubmit, ApiPending, PreSubmitted (a simulated order waiting for its election), Submitted;
#  - Inactive: "accepted … but currently the order is not working, due to system, exchange or other
#    issues. When the order becomes active, the order status … will change" (IB, order status colours)
#    — ib_async counts it as done, IB does not;
#  - a held order (orderStatus.whyHeld non-empty, e.g. "locate", "trading hours") in any status;
#  - states ib_async synthesises without the gateway (ValidationError, ApiUpdate) and any status
#    this code does not know, including "" (an order seen before its first orderStatus).
TERMINAL_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled"})
DONE_STATUSES = TERMINAL_STATUSES  # the old name


def is_terminal(status: str) -> bool:
    """True only for a status after which the order can never fill (IB: Filled, Cancelled, ApiCancelled)."""
    return status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    exec_id: str
    time: float  # epoch seconds
    account: str
    contract: ContractRef
    side: str  # BOT / SLD
    shares: float
    price: float
    order_id: int = 0
    perm_id: int = 0
    client_id: int = 0
    order_ref: str = ""
    commission: float | None = None


def exec_stem(exec_id: str) -> tuple[str, int]:
    """(the id up to its last period, the revision after it): IB corrects an execution by sending the
    same id with the part after the last period changed (`….01` → `….02`; TWS API reference,
    "Executions and Commissions")."""
    stem, dot, revision = exec_id.rpartition(".")
    if not dot or not revision.isdigit():
        return exec_id, 0
    return stem, int(revision)


def latest_revisions(items: Iterable[_Item], exec_id: Callable[[_Item], str]) -> list[_Item]:
    """One item per execution, in first-seen order: a correction replaces what it corrects (the
    highest revision of `exec_stem` wins); the same exec id seen twice counts once (the later copy)."""
    latest: dict[str, tuple[int, _Item]] = {}
    for item in items:
        stem, revision = exec_stem(exec_id(item))
        known = latest.get(stem)
        if known is None or revision >= known[0]:
            latest[stem] = (revision, item)
    return [item for _, item in latest.values()]


def without_corrected(fills: Iterable[Fill]) -> list[Fill]:
    """`latest_revisions` of our own Fill records."""
    return latest_revisions(fills, lambda f: f.exec_id)


OrderKey = tuple[int, int, int]


def order_key(o: OpenOrder | Fill) -> OrderKey:
    """One identity per order across clients: (permId, 0, 0) when known, else (0, clientId, orderId)."""
    return (o.perm_id, 0, 0) if o.perm_id else (0, o.client_id, o.order_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountState:
    """Account-level values. `None` means "not known"; `as_of` has the epoch time each field was last set."""

    account: str
    currency: str = "USD"
    net_liquidation: float | None = None
    excess_liquidity: float | None = None
    cushion: float | None = None  # ratio 0..1
    maint_margin_req: float | None = None
    init_margin_req: float | None = None
    available_funds: float | None = None
    gross_position_value: float | None = None
    previous_day_equity: float | None = None
    daily_pnl: float | None = None
    unrealized_pnl: float | None = None
    realized_pnl: float | None = None
    as_of: Mapping[str, float] = field(default_factory=lambda: EMPTY_MAP)

    def value(self, name: str) -> float | None:
        """A field by name, with NaN folded into None (unknown)."""
        v = getattr(self, name)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return float(v)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayStatus:
    health: Health = Health.UNKNOWN
    connected: bool = False
    server_version: int | None = None
    last_heartbeat: float | None = None  # epoch of the last answered reqCurrentTime
    heartbeat_rtt: float | None = None  # seconds
    clock_skew: float | None = None  # gateway clock minus ours, seconds
    down_since: float | None = None  # epoch when it went DOWN/DEGRADED, None while healthy
    last_error: str = ""
    write_access: bool | None = None  # False = the API is read-only (error 321); None = not yet proven


@dataclass(frozen=True, slots=True, kw_only=True)
class BotStatus:
    """What the dead-man's switch knows about one bot's heartbeats (`POST /v1/heartbeat/NAME`)."""

    name: str
    last_seen: float | None = None  # epoch of its last accepted heartbeat (display); None = not armed
    # seconds since its last heartbeat on the monotonic clock, as of the snapshot (None = not measured):
    # what bot_silence reads, so a step of the wall clock neither kills nor spares a bot
    silence: float | None = None
    stopped_at: float | None = None  # epoch of its clean stop (`/stop`); disarmed until the next heartbeat
    status: str = ""  # "ok" / "degraded" as the bot last reported it
    note: str = ""  # the bot's last note (size-capped, printable)
    unknown_reason: str = ""  # non-empty: the watchdog cannot hear this bot (listener down, flooded)


NO_BOTS: Mapping[str, BotStatus] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything the rules may look at, taken at one moment."""

    taken_at: float
    accounts: Mapping[str, AccountState]
    positions: tuple[Position, ...] = ()
    open_orders: tuple[OpenOrder, ...] = ()
    fills: tuple[Fill, ...] = ()  # today's executions
    gateway: GatewayStatus = field(default_factory=GatewayStatus)
    positions_as_of: float | None = None
    orders_as_of: float | None = None
    fills_as_of: float | None = None
    # order placements seen per account (new order ids) with their first-seen time, for orders/minute
    order_events: tuple[tuple[str, float], ...] = ()
    bots: Mapping[str, BotStatus] = field(default_factory=lambda: NO_BOTS)  # by bot name (dead-man)


@dataclass(frozen=True, slots=True, kw_only=True)
class Breach:
    """One rule result worth acting on or announcing: handed to the kill switch and the notifier."""

    rule: str
    kind: BreachKind
    action: Action
    severity: Severity
    account: str | None  # None = all accounts summed / not account-specific
    metric: str
    value: float | None
    threshold: float | None
    since: float  # epoch when the condition started holding
    message: str = ""
    # what the breach covers when that is not one account nor all of them (e.g. "bot alpha's
    # accounts (DU111111)"): the notification names it, so it says what the kill will touch
    where: str = ""
    # every metric of the rule is one a gateway outage moves by itself (data_age, heartbeat_rtt,
    # gateway_down_seconds): during an outage it is part of the outage (docs/alerting.md)
    about_outage: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseOrderRequest:
    """One closing order the kill switch wants on the wire."""

    account: str
    contract: ContractRef
    action: str  # BUY / SELL
    quantity: float  # > 0
    order_type: str  # MKT or LMT
    limit_price: float | None = None
    outside_rth: bool = False
    order_ref: str = ""
    exchange: str = "SMART"  # routable exchange chosen by the kill switch


@dataclass(frozen=True, slots=True, kw_only=True)
class KillReport:
    kill_id: str
    trigger: str  # rule name, "manual:SIGUSR1", "schedule:NAME", "lockout", ...
    action: Action
    accounts: tuple[str, ...]
    started: float
    finished: float
    outcome: KillOutcome
    dry_run: bool = False
    attempts: int = 0
    cancelled_orders: tuple[OpenOrder, ...] = ()
    close_orders: tuple[CloseOrderRequest, ...] = ()
    remaining_orders: tuple[OpenOrder, ...] = ()
    remaining_positions: tuple[Position, ...] = ()
    reason: str = ""  # why it was triggered; for ESCALATED, what is still wrong
    close_fills: tuple[Fill, ...] = ()  # executions of its closing orders heard by the report (kill.fills)
    close_order_ids: tuple[int | None, ...] = ()  # the order id of each of close_orders (None: not sent)
    rejected: Mapping[int, str] = field(default_factory=dict)  # closing order id → the gateway's rejection
    trigger_reason: str = ""  # why it was triggered, also when `reason` lists an escalation's problems

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractDetails:
    """What IB's contract details say about trading one contract (reqContractDetails + reqMarketRule).

    Hours are epoch [open, close) intervals parsed from `tradingHours` / `liquidHours` in the contract's
    own `timeZoneId`, holidays and early closes included; `hours_span` is the epoch range the text covers
    (outside it the hours are unknown, not closed)."""

    con_id: int
    exchange: str = ""  # the contract details' exchange (futures route there)
    min_tick: float = 0.0
    price_ladder: tuple[tuple[float, float], ...] = ()  # (low edge, increment) ascending; () = unknown
    time_zone: str = ""  # IB's timeZoneId, e.g. US/Eastern, MET
    trading_hours: tuple[tuple[float, float], ...] = ()  # every session, extended hours included
    liquid_hours: tuple[tuple[float, float], ...] = ()  # regular sessions
    hours_span: tuple[float, float] | None = None
    fetched_at: float = 0.0  # epoch


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """A price to close at and what is known of its age: a market data snapshot, else the portfolio mark.

    A portfolio mark carries no time of its own (IB's updatePortfolio has none): its age is known only
    from a change this process saw (`as_of` = when it changed); a mark that never changed while watched
    may have stood still for hours, so its age is unknown (`as_of` None). Delayed data without a trade
    time is about 15 minutes old (IB "Market Data Types"): `estimated` marks such an assumed `as_of`.
    """

    price: float
    as_of: float | None  # epoch of the price (last trade time, receipt, a mark's seen change); None = unknown
    source: str  # "bid", "ask", "last", "portfolio"
    delayed: bool = False  # delayed market data (reqMarketDataType 3): about 15 minutes old
    estimated: bool = False  # as_of is assumed (delayed data's usual lag), not the price's own time

    def age(self, now: float) -> float | None:
        """Seconds since the price, None when unknown."""
        return None if self.as_of is None else max(0.0, now - self.as_of)

    def describe(self, now: float) -> str:
        """E.g. "bid 170, 0s old", "delayed ask 170, delayed ~15 min", "portfolio mark 190, age unknown"."""
        kind = ("delayed " if self.delayed else "") + (
            "portfolio mark" if self.source == "portfolio" else self.source
        )
        age = self.age(now)
        if age is None:
            when = "age unknown"
        elif self.estimated:
            when = f"delayed ~{age / 60:.0f} min"
        else:
            when = f"{age:.0f}s old"
        return f"{kind} {self.price:g}, {when}"
