"""`book.json`: a bounded copy of the last snapshot's book (accounts, positions, working orders,
contracts, marks) that `ibkr-watchdog drill --book state` rehearses on.

The daemon checks it at the status cadence and rewrites it when positions or working orders changed,
and once a minute for marks and account values (atomic, not fsynced: a convenience copy, never read
back by the daemon). A reader gets `StateError` for a missing or
damaged file, never a partial book: a drill on half a book would evidence nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watchdog.errors import StateError
from watchdog.model import ContractRef, OpenOrder, Position, Snapshot
from watchdog.state.files import StateDirectory, why

log = logging.getLogger("watchdog.state.store")

BOOK_FILE = "book.json"
BOOK_VERSION = 1
MAX_ROWS = 2000  # positions and orders kept each; beyond that the file says how many were left out
REFRESH_EVERY = 60.0  # seconds: an unchanged book is still rewritten this often, so `updated` stays fresh
_ACCOUNT_FIELDS = (
    "currency",
    "net_liquidation",
    "excess_liquidity",
    "cushion",
    "maint_margin_req",
    "gross_position_value",
    "previous_day_equity",
)


_CONTRACT_FIELDS = tuple(f.name for f in dataclasses.fields(ContractRef))


def _contract(c: ContractRef) -> dict[str, Any]:
    return {name: getattr(c, name) for name in _CONTRACT_FIELDS}  # to_jsonable, minus its generality


def _number(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _position(p: Position) -> dict[str, Any]:
    return {
        "account": p.account,
        "contract": _contract(p.contract),
        "quantity": p.quantity,
        "avg_cost": _number(p.avg_cost),
        "market_price": _number(p.market_price),
    }


def _order(o: OpenOrder) -> dict[str, Any]:
    return {
        "client_id": o.client_id,
        "order_id": o.order_id,
        "perm_id": o.perm_id,
        "account": o.account,
        "contract": _contract(o.contract),
        "action": o.action,
        "remaining": o.remaining or max(0.0, o.total_quantity - o.filled),
        "order_type": o.order_type,
        "lmt_price": _number(o.lmt_price),
        "aux_price": _number(o.aux_price),
        "outside_rth": o.outside_rth,
        "order_ref": o.order_ref,
        "status": o.status,
    }


def book_from_snapshot(snapshot: Snapshot, limit: int = MAX_ROWS) -> dict[str, Any]:
    """The `book.json` body (without its `updated` stamp): plain JSON, at most `limit` rows of each list."""
    positions = [p for p in snapshot.positions if p.quantity]
    orders = [o for o in snapshot.open_orders if o.is_working]
    accounts = {
        name: {f: (a.currency if f == "currency" else _number(a.value(f))) for f in _ACCOUNT_FIELDS}
        for name, a in sorted(snapshot.accounts.items())
    }
    return {
        "version": BOOK_VERSION,
        "snapshot_taken_at": snapshot.taken_at,
        "accounts": accounts,
        "positions": [_position(p) for p in positions[:limit]],
        "orders": [_order(o) for o in orders[:limit]],
        "left_out": {"positions": max(0, len(positions) - limit), "orders": max(0, len(orders) - limit)},
    }


class BookWriter:
    """Writes `book.json` when positions or working orders changed, and every REFRESH_EVERY s for marks
    and account values (they move every second; a full rewrite each time would cost CPU for nothing).
    Failures are logged once."""

    def __init__(self, files: StateDirectory) -> None:
        self.files = files  # the store's: written relative to the held directory, never through a link
        self.path = files.path / BOOK_FILE
        self._shape: tuple[Any, ...] | None = None
        self._written_at = -math.inf
        self._failing = False

    def save(self, snapshot: Snapshot, now: float) -> bool:
        """True when the file was rewritten. Never raises: the watch loop must not stop for a copy."""
        shape = _shape(snapshot)
        if shape == self._shape and now - self._written_at < REFRESH_EVERY:
            return False
        body = book_from_snapshot(snapshot)
        try:
            data = json.dumps({**body, "updated": now}, sort_keys=True, allow_nan=False)  # C encoder: fast
            self.files.replace(BOOK_FILE, (data + "\n").encode(), durable=False)
        except (OSError, ValueError, StateError) as exc:
            if not self._failing:
                log.error("cannot write %s: %s (drill --book state would use an old book)", self.path, exc)
            self._failing = True
            return False
        self._failing = False
        self._shape, self._written_at = shape, now
        return True


def _shape(snapshot: Snapshot) -> tuple[Any, ...]:
    """What makes a different book: positions' quantities and the working orders (cheap to compare)."""
    positions = tuple((p.account, p.contract.con_id, p.quantity) for p in snapshot.positions if p.quantity)
    orders = tuple(
        (o.perm_id, o.client_id, o.order_id, o.remaining, o.lmt_price, o.aux_price, o.status)
        for o in snapshot.open_orders
        if o.is_working
    )
    return positions, orders, tuple(sorted(snapshot.accounts))


def load_book(state_dir: str | Path) -> dict[str, Any]:
    """The parsed `book.json` of a state directory.

    Raises StateError naming the file when it is missing, unreadable, not JSON, or not a book
    (wrong version, a list that is not a list): the caller must refuse it, never guess.
    """
    path = Path(state_dir) / BOOK_FILE
    missing = StateError(f"{path}: no book snapshot (a daemon of this version writes it while it runs)")
    if not path.parent.is_dir():
        raise missing
    directory = StateDirectory(path.parent, create=False)
    try:  # the one hardened reader: no link, no FIFO, a regular file of ours, 16 MiB at most
        raw = directory.read(BOOK_FILE)
    except OSError as exc:  # StateError too
        raise StateError(f"{path}: cannot read: {why(exc)}") from exc
    finally:
        directory.close()
    if raw is None:
        raise missing
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise StateError(f"{path} is damaged (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("version") != BOOK_VERSION:
        raise StateError(f"{path} is damaged or from another version (version: expected {BOOK_VERSION})")
    for key, kind in (("accounts", dict), ("positions", list), ("orders", list)):
        if not isinstance(data.get(key), kind):
            raise StateError(f"{path}: {key} is missing or not a {kind.__name__}")
    return data


def contract_from(data: Mapping[str, Any], where: str) -> ContractRef:
    """A ContractRef from its `book.json` form; StateError naming `where` when a field is wrong."""
    try:
        return ContractRef(
            con_id=int(data["con_id"]),
            symbol=str(data["symbol"]),
            sec_type=str(data["sec_type"]),
            currency=str(data.get("currency", "USD")),
            exchange=str(data.get("exchange", "")),
            primary_exchange=str(data.get("primary_exchange", "")),
            local_symbol=str(data.get("local_symbol", "")),
            trading_class=str(data.get("trading_class", "")),
            last_trade_date=str(data.get("last_trade_date", "")),
            strike=float(data.get("strike", 0.0)),
            right=str(data.get("right", "")),
            multiplier=float(data.get("multiplier", 1.0) or 1.0),
            min_tick=float(data.get("min_tick", 0.0) or 0.0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"{where}: contract unusable ({exc!r})") from None
