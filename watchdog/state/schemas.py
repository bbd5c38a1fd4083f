"""Strict schemas of the state files: whatever does not match exactly is damage, and damage fails safe.

Each file the daemon acts on is validated whole (pydantic, strict types, unknown keys refused, no NaN
or infinities): `null`, a string where a flag belongs (`"dry_run": "false"`), a string where a list
belongs (`"accounts": "DU111111"`), a missing key, extra nesting or a torn write are all damage. The
store turns damage into the safe reading (latch: TRIPPED; pending kill: a pending close-all of every
watched account, never a dry run; baseline: discarded) and reports it.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["BaselineFile", "LatchFile", "PendingKillFile", "ResetRequestFile", "StateDamage", "validate"]


class StateDamage(ValueError):
    """A state file that does not match its schema; the message names the file and the first problems."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class LatchFile(_Strict):
    """`latch.json` (written from `store.Latch`)."""

    state: Literal["armed", "tripped"]
    action: Literal["alert", "cancel_all", "close_all"] | None = None
    trigger: str = ""
    reason: str = ""
    kill_id: str = ""
    tripped_at: float | None = None
    accounts: list[str] = Field(default_factory=list)
    baseline: dict[str, float] = Field(default_factory=dict)
    baseline_known: bool = False
    changed_at: float | None = None
    changed_by: str = ""
    corrupted: bool = False


class PendingKillFile(_Strict):
    """`pending-kill.json` (written from `store.PendingKill`)."""

    kill_id: str = Field(min_length=1)
    action: Literal["cancel_all", "close_all"]
    trigger: str
    reason: str = ""
    accounts: list[str] = Field(default_factory=list)
    created_at: float = 0.0
    dry_run: bool = False
    interrupted: str = ""  # why it is pending: "" (gateway unusable), or "stop" (interrupted by a stop)
    corrupted: bool = False


class DayHigh(_Strict):
    account: str | None
    metric: str
    day: str
    high: float


class ResetRequestFile(_Strict):
    """`requests/reset-*.json`, written by `ibkr-watchdog reset`: bound to the trip it was made for."""

    request_id: str = Field(min_length=1)
    reason: str
    who: str = ""
    requested_at: float
    expires_at: float
    kill_id: str = ""  # the latch's kill id and trip time when the request was made
    tripped_at: float | None = None
    discard_pending: bool = False


M = TypeVar("M", bound=_Strict)


class BaselineFile(_Strict):
    """`baseline.json`: the day highs of the drawdown rules (a cache: damage discards it)."""

    day_highs: list[DayHigh] = Field(default_factory=list)


def validate(schema: type[M], data: Any, where: str) -> M:
    """`data` (parsed JSON) as `schema`, or StateDamage naming `where` and what is wrong (first 3)."""
    if not isinstance(data, dict):
        raise StateDamage(f"{where}: expected a JSON object, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:3]]
        more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise StateDamage(f"{where}: " + "; ".join(problems) + more) from None
