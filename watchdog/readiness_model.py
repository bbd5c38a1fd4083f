"""Records of kill readiness: a close_all planned against the live book, and why parts would not close.

Frozen, plain values like `watchdog.model` (on which they build); written by `watchdog.kill.readiness`,
read by the outputs (metrics, notification, the `plan` table) and the daemon.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from watchdog.model import CloseOrderRequest, ContractRef, Quote, Severity


class PlanReason(enum.Enum):
    """Why a kill planned now would not close (part of) the book. A bounded metric label.

    Account-wide reasons (read-only API, gateway down, data stale, dry run) stop every closing order
    of the account; the others concern one position.
    """

    READ_ONLY_API = "read_only_api"  # the gateway refuses every write (error 321 "Read-Only mode")
    GATEWAY_DOWN = "gateway_down"  # a kill now would only be parked as pending
    DATA_STALE = "data_stale"  # the book this plan is based on is older than the bound
    DRY_RUN = "dry_run"  # kill.dry_run: nothing would be sent
    NO_PRICE = "no_price"  # a limit order is needed and there is no usable mark
    PRICE_STALE = "price_stale"  # the mark is older than the bound
    MARKET_CLOSED = "market_closed"  # the contract's market is closed now: an order would rest
    PRECAUTION_EXCEEDED = "precaution_exceeded"  # an order over the TWS order precautions
    FRACTIONAL_REMAINDER = "fractional_remainder"  # the API refuses fractional sizes: manual close
    UNKNOWN_CONTRACT = "unknown_contract"  # no contract details: no routable exchange known
    NOT_CLOSABLE = "not_closable"  # a security type the kill does not close through the API

    @property
    def account_wide(self) -> bool:
        return self in _ACCOUNT_WIDE

    @property
    def severity(self) -> Severity:
        """critical: nothing can be sent; info: expected at times (a closed market, a dry run)."""
        if self is PlanReason.READ_ONLY_API:
            return Severity.CRITICAL
        if self in (PlanReason.MARKET_CLOSED, PlanReason.DRY_RUN):
            return Severity.INFO
        return Severity.WARNING


_ACCOUNT_WIDE = frozenset(
    {PlanReason.READ_ONLY_API, PlanReason.GATEWAY_DOWN, PlanReason.DATA_STALE, PlanReason.DRY_RUN}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanProblem:
    reason: PlanReason
    detail: str  # for people: what exactly, and what to do


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionPlan:
    """What a close_all now would do to one position: its orders, or why it would not close."""

    account: str
    contract: ContractRef
    quantity: float  # the position, signed
    pending: float = 0.0  # our working closing quantity it is netted against
    orders: tuple[CloseOrderRequest, ...] = ()  # would be sent now (slices in order)
    session: str = ""  # regular, extended, closed; "" = not known
    hours_from_table: bool = False  # the contract's own hours did not cover now: the built-in table decided
    market_until: float | None = None  # epoch the session changes next; None = not within a week / unknown
    quote: Quote | None = None  # the price a limit order would start from (None: none known)
    problems: tuple[PlanProblem, ...] = ()

    @property
    def market_open(self) -> bool | None:
        return None if not self.session else self.session != "closed"

    @property
    def key(self) -> tuple[str, int]:
        return (self.account, self.contract.con_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountReadiness:
    account: str
    positions: tuple[PositionPlan, ...] = ()
    problems: tuple[PlanProblem, ...] = ()  # account-wide
    write_access: bool | None = None  # None = not proven either way
    write_access_as_of: float | None = None
    data_as_of: float | None = None  # epoch the positions were read
    data_fresh: bool = False

    @property
    def ready(self) -> bool:
        """True when every in-scope position would close now."""
        return not self.problems and not any(p.problems for p in self.positions)

    def problem_counts(self) -> dict[PlanReason, int]:
        """Per reason: positions it would leave open; an account-wide reason counts once."""
        counts = {p.reason: 1 for p in self.problems}
        for pos in self.positions:
            for reason in {p.reason for p in pos.problems}:
                counts[reason] = counts.get(reason, 0) + 1
        return counts


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    """The kill planned against the live book without sending anything (`kill.readiness_interval`)."""

    planned_at: float
    accounts: tuple[AccountReadiness, ...] = ()
    dry_run: bool = False
    source: str = "daemon"  # "daemon" or "gateway" (a one-off read-only look)

    @property
    def ready(self) -> bool:
        """Every account ready; no account known (the gateway never reached) is not ready."""
        return bool(self.accounts) and all(a.ready for a in self.accounts)
