"""Reading `readiness.json` back for `ibkr-watchdog plan`: a strict schema, and how current the plan is.

The file is the daemon's (`watchdog.kill.readiness.readiness_json`, version 1), but `plan` trusts
nothing in it: every key and type is checked (no extra key, no duplicate key, no NaN or infinity, no
string for a number or a flag), and the verdicts are derived again from the problems listed, never
taken from a stored `ready` flag. Whether the plan is *current* is judged at read time from its age
against the interval it was planned at and from whether the daemon still runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from watchdog.outputs.messages import fmt_duration
from watchdog.readiness_model import PlanReason

DEFAULT_INTERVAL = 60.0  # seconds: kill.readiness_interval's default, for a file that does not say
LATE_INTERVALS = 2  # a plan older than this many intervals (plus the slack) is stale: a turn was missed
LATE_SLACK = 10.0  # seconds: a large book takes a while to plan and write
FUTURE_SLACK = 5.0  # seconds: clocks of two processes on one host agree better than this

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
# a reason is one of PlanReason's values (the JSON holds the value; the enum's own strictness wants
# an instance, so only this field takes the plain string)
Reason = Annotated[PlanReason, Field(strict=False)]


class _Problem(BaseModel):
    model_config = _STRICT
    reason: Reason
    detail: str


class _Order(BaseModel):
    model_config = _STRICT
    action: Literal["BUY", "SELL"]
    quantity: float = Field(gt=0)
    order_type: str
    limit_price: float | None
    exchange: str
    outside_rth: bool


class _Position(BaseModel):
    model_config = _STRICT
    con_id: int
    symbol: str
    sec_type: str
    quantity: float
    pending: float | None
    would_close: bool
    orders: list[_Order]
    session: str
    hours_from_table: bool
    market_open: bool | None
    market_until: float | None
    price: float | None
    price_source: str
    price_as_of: float | None
    problems: list[_Problem]


class _Account(BaseModel):
    model_config = _STRICT
    account: str
    ready: bool
    write_access: bool | None
    write_access_as_of: float | None
    data_as_of: float | None
    data_fresh: bool
    problem_counts: dict[Reason, int]
    problems: list[_Problem]
    positions: list[_Position]
    omitted: int = Field(ge=0)


class _Plan(BaseModel):
    model_config = _STRICT
    version: Literal[1]
    planned_at: float
    source: Literal["daemon", "gateway"]
    dry_run: bool
    ready: bool
    interval: float | None = Field(default=None, gt=0)
    accounts: list[_Account]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"the key {k!r} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_plan(raw: bytes) -> dict[str, Any]:
    """The checked plan as plain JSON values, with every `ready` / `would_close` derived again.

    Raises ValueError with one line saying what is wrong (the first problem found).
    """
    try:
        data = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(str(exc).splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ValueError(f"the top level is a JSON {type(data).__name__}, not an object")
    try:
        plan = _Plan.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "top level"
        raise ValueError(f"{where}: {first['msg']}") from None
    for account in plan["accounts"]:
        for p in account["positions"]:
            p["would_close"] = not p["problems"]
        # the counts cover positions beyond the listed ones too
        account["ready"] = (
            account["write_access"] is not False  # read-only: nothing would be sent
            and not account["problems"]
            and not any(account["problem_counts"].values())
            and all(p["would_close"] for p in account["positions"])
        )
    plan["ready"] = bool(plan["accounts"]) and all(a["ready"] for a in plan["accounts"])
    return plan


@dataclass(frozen=True, slots=True)
class Currency:
    """Whether a plan still describes the book: `stale` is None when it does, else why not (for people)."""

    age: float  # seconds since it was planned (negative: planned in the future)
    interval: float  # seconds between plans (kill.readiness_interval)
    stale: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "current": self.stale is None,
            "stale": self.stale,
            "age_seconds": round(self.age, 3),
            "interval_seconds": self.interval,
        }


def judge_currency(
    plan: dict[str, Any],
    *,
    now: float,
    daemon_running: bool,
    kill_running: bool,
    overtaken: str | None = None,
) -> Currency:
    """A daemon's plan is current while the daemon runs, no kill has paused readiness, nothing has
    `overtaken` it (a kill pending, the gateway down, a kill that ended after it was planned: why, in
    words), and it is no older than `LATE_INTERVALS` intervals (plus `LATE_SLACK`); a one-off look is
    current when made."""
    age = now - float(plan["planned_at"])
    interval = float(plan.get("interval") or DEFAULT_INTERVAL)
    stale: str | None = None
    if age < -FUTURE_SLACK:
        stale = f"planned {fmt_duration(-age)} in the future (a clock was changed?)"
    elif plan.get("source") == "gateway":
        stale = None
    elif not daemon_running:
        stale = "daemon not running"
    elif kill_running:
        stale = "paused while a kill runs"
    elif overtaken:
        stale = overtaken
    elif age > LATE_INTERVALS * interval + LATE_SLACK:
        stale = f"plan {fmt_duration(age)} old (interval {fmt_duration(interval)})"
    if not math.isfinite(age):  # planned_at is finite by the schema; now is a clock
        stale = "the plan's age is unknown"
    return Currency(age=age, interval=interval, stale=stale)
