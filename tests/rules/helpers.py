"""Builders for rule-evaluation tests: rules from their one-line form, snapshots with timestamps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchdog.config.schema import Rule
from watchdog.model import AccountState, GatewayStatus, Health, Snapshot

T0 = 1_772_000_000.0  # 2026-02-25, a fixed injected clock


def rule(when: Any, name: str = "r", **kw: Any) -> Rule:
    """A Rule written as in rules.yaml (durations and percentages as strings)."""
    return Rule.model_validate({"name": name, "when": when, **kw})


def account(name: str, at: float, **values: float | None) -> AccountState:
    """An AccountState whose every given value was set at `at`."""
    return AccountState(account=name, as_of={k: at for k in values}, **values)  # type: ignore[arg-type]


def snap(
    at: float,
    accounts: Mapping[str, Mapping[str, float | None]] | None = None,
    *,
    values_at: float | None = None,
    gateway: GatewayStatus | None = None,
    **kw: Any,
) -> Snapshot:
    """A Snapshot taken at `at`; account values stamped `values_at` (default: `at`)."""
    stamp = at if values_at is None else values_at
    accts = {a: account(a, stamp, **v) for a, v in (accounts or {}).items()}
    gw = gateway or GatewayStatus(
        health=Health.HEALTHY, connected=True, last_heartbeat=at, heartbeat_rtt=0.01
    )
    return Snapshot(taken_at=at, accounts=accts, gateway=gw, **kw)


def pnl(at: float, **per_account: float | None) -> Snapshot:
    """A snapshot holding only daily P&L per account."""
    return snap(at, {a: {"daily_pnl": v} for a, v in per_account.items()})
