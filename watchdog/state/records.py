"""The records the state files hold: the latch (risk posture) and a pending kill."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watchdog.model import EMPTY_MAP, Action, TradingState


def position_key(account: str, con_id: int) -> str:
    """How a (account, conId) pair is spelled in state files."""
    return f"{account}|{con_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Latch:
    """The persisted risk posture. TRIPPED holds the lockout until a reset."""

    state: TradingState = TradingState.ARMED
    action: Action | None = None  # the strongest kill action since the trip
    trigger: str = ""
    reason: str = ""
    kill_id: str = ""
    tripped_at: float | None = None
    accounts: tuple[str, ...] = ()  # accounts under lockout; empty = every watched account
    # positions the lockout keeps (the book at the end of the last kill), position_key → quantity
    baseline: Mapping[str, float] = field(default_factory=lambda: EMPTY_MAP)
    baseline_known: bool = False  # False: lockout_flatten adopts the current book instead of closing it
    changed_at: float | None = None
    changed_by: str = ""
    corrupted: bool = False  # read from a damaged file: TRIPPED by fail-safe


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingKill:
    """A kill that must still run (gateway down, or interrupted by a restart)."""

    kill_id: str
    action: Action
    trigger: str
    reason: str = ""
    accounts: tuple[str, ...] = ()  # empty = every watched account
    created_at: float = 0.0
    dry_run: bool = False
    interrupted: str = ""  # "" = waits for the gateway; "stop" = a stop interrupted it while it ran
    corrupted: bool = False  # read from a damaged file: a close-all by fail-safe
