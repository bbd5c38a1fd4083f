"""The book a drill rehearses on: the daemon's last `book.json`, a simulator scenario file, or the demo book.

Everything ends up as a simulator `Scenario` (accounts, marks, positions, resting orders) plus the
contracts the built-in universe lacks, so every rehearsal starts from the same book.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from watchdog.config.schema import Config
from watchdog.drill.book_check import BookError, check_book, read_scenario_file
from watchdog.errors import StateError
from watchdog.model import ContractRef
from watchdog.sim import Instrument, Scenario, Simulator, SimulatorError, load_scenario
from watchdog.state.book import BOOK_FILE, contract_from, load_book

DEMO_ACCOUNTS = ("DU111111", "DU222222")
LIVE_STAND_INS = ("U1111111", "U2222222")  # demo book accounts for a live (paper: false) config


@dataclass(frozen=True, slots=True)
class DrillBook:
    """A book ready for the simulator, with where it came from (for the report)."""

    source: str  # "state", "scenario" or "demo"
    origin: str  # the file it was read from, in words
    scenario: Scenario
    instruments: tuple[Instrument, ...] = ()
    net_liquidation: Mapping[str, float] = field(default_factory=dict)  # per account, from the snapshot
    notes: tuple[str, ...] = ()
    labels: Mapping[int, str] = field(default_factory=dict)  # conId → local symbol (a state book's keys)

    @property
    def accounts(self) -> tuple[str, ...]:
        return self.scenario.accounts


def load_drill_book(config: Config, source: str, path: str | None) -> DrillBook:
    """`source`: "auto" (state when the daemon left a snapshot, else demo), "state", "scenario", "demo"."""
    if source == "scenario":
        if not path:
            raise BookError("--book scenario needs a FILE")
        spec = read_scenario_file(path)
        notes = ("the scenario's timeline is not played: the drill drives its own scenarios",)
        return _checked(config, DrillBook("scenario", path, replace(spec, timeline=()), notes=notes))
    if source == "auto" and not _present(Path(config.state_dir) / BOOK_FILE):
        note = (
            f"no daemon snapshot in {config.state_dir} to rehearse on; the built-in demo book is used "
            "instead (--book state insists on the snapshot)"
        )
        return _demo(config, note)
    if source in ("state", "auto"):
        try:  # present but unreadable or damaged: refused, never silently replaced by the demo book
            data = load_book(config.state_dir)
        except StateError as exc:
            raise BookError(str(exc)) from None
        return _checked(config, _from_state(data, str(Path(config.state_dir) / BOOK_FILE)))
    if source == "demo":
        return _demo(config, "the built-in demo book (ibkr-watchdog sim) is used")
    raise BookError(f"unknown book source {source!r}; use state, scenario FILE or demo")


def _present(path: Path) -> bool:
    try:
        path.stat()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # there, but not for us: load_book says why
    return True


def _checked(config: Config, book: DrillBook) -> DrillBook:
    check_book(book.origin, config, book.scenario, book.instruments, book.net_liquidation)
    missing = [a for a in config.gateway.accounts if a not in book.accounts]
    if missing:
        raise BookError(
            f"{book.origin}: the book has accounts {', '.join(book.accounts) or 'none'} but the config "
            f"watches {', '.join(missing)}; rehearse on a book of the accounts the config watches"
        )
    return book


def _demo(config: Config, note: str) -> DrillBook:
    """The simulator's demo book, its accounts renamed to the config's so the valve accepts them."""
    spec = load_scenario("default")
    stand_ins = LIVE_STAND_INS if not config.gateway.paper else DEMO_ACCOUNTS
    wanted = list(config.gateway.accounts) or list(stand_ins)
    mapping = {old: wanted[i % len(wanted)] for i, old in enumerate(DEMO_ACCOUNTS)}
    accounts = tuple(dict.fromkeys([*wanted, *(mapping[a] for a in spec.accounts)]))

    def renamed(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
        return tuple({**r, "account": mapping.get(str(r["account"]), r["account"])} for r in rows)

    positions = _merge_positions(renamed(spec.positions))
    spec = replace(spec, accounts=accounts, positions=positions, orders=renamed(spec.orders), timeline=())
    return DrillBook("demo", "built-in demo book", spec, notes=(note,))


def _merge_positions(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Two demo accounts folded into one account: one position per (account, contract)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (str(r["account"]), str(r["symbol"]))
        if key in merged:
            merged[key]["quantity"] += r["quantity"]
        else:
            merged[key] = dict(r)
    return tuple(r for r in merged.values() if r["quantity"])


def _instrument(c: ContractRef, mark: float | None) -> Instrument:
    route = "SMART"
    if c.sec_type in ("FUT", "FOP"):
        route = c.exchange or c.primary_exchange or "CME"
    elif c.sec_type == "CASH":
        route = "IDEALPRO"
    return Instrument(
        c.con_id,
        c.symbol,
        c.sec_type,
        route,
        currency=c.currency,
        primary_exchange=c.primary_exchange,
        last_trade_date=c.last_trade_date,
        strike=c.strike,
        right=c.right,
        multiplier=c.multiplier or 1.0,
        local_symbol=c.local_symbol or c.symbol,
        trading_class=c.trading_class,
        min_tick=c.min_tick or 0.01,
        price=mark if mark and mark > 0 else 100.0,
    )


def _from_state(data: Mapping[str, Any], where: str) -> DrillBook:
    notes: list[str] = []
    taken = data.get("snapshot_taken_at")
    if isinstance(taken, int | float):
        notes.append(f"snapshot taken {max(0.0, time.time() - taken):.0f} s before the drill")
    left_out = data.get("left_out") or {}
    if any(left_out.get(k) for k in ("positions", "orders")):
        notes.append(f"the snapshot was bounded: left out {left_out}")
    accounts = tuple(str(a) for a in data["accounts"])
    if not accounts:
        raise BookError(f"{where}: the snapshot has no account")
    instruments: dict[int, Instrument] = {}
    prices: dict[int, float] = {}
    positions: list[dict[str, Any]] = []
    for i, row in enumerate(data["positions"]):
        try:
            c = contract_from(row["contract"], f"{where}: positions[{i}]")
            mark = row.get("market_price")
            instruments.setdefault(c.con_id, _instrument(c, mark if _finite(mark) else None))
            if _finite(mark) and mark > 0:
                prices[c.con_id] = float(mark)
            avg = row.get("avg_cost")
            positions.append(
                {"account": row["account"], "symbol": c.con_id, "quantity": row["quantity"]}
                | ({"avg_cost": avg} if avg else {})
            )  # typed and bounded by check_book, which names the row
        except (KeyError, TypeError, ValueError, AttributeError, StateError) as exc:
            raise BookError(f"{where}: positions[{i}]: {_missing(exc)}") from None
    orders: list[dict[str, Any]] = []
    for i, row in enumerate(data["orders"]):
        try:
            c = contract_from(row["contract"], f"{where}: orders[{i}]")
            instruments.setdefault(c.con_id, _instrument(c, None))
            orders.append(
                {
                    "client_id": row.get("client_id", 0),
                    "account": row["account"],
                    "symbol": c.con_id,
                    "action": row["action"],
                    "quantity": row["remaining"],
                    "order_type": row.get("order_type", "LMT"),
                    "lmt_price": row.get("lmt_price"),
                    "aux_price": row.get("aux_price"),
                    "outside_rth": row.get("outside_rth", False),
                    "order_ref": row.get("order_ref", ""),
                }
            )  # typed and bounded by check_book, which names the row
        except (KeyError, TypeError, ValueError, AttributeError, StateError) as exc:
            raise BookError(f"{where}: orders[{i}]: {_missing(exc)}") from None
    nlv = {
        str(a): v["net_liquidation"]
        for a, v in data["accounts"].items()
        if isinstance(v, dict) and v.get("net_liquidation") is not None
    }
    spec = Scenario(
        name="state snapshot",
        accounts=accounts,
        prices=tuple(prices.items()),
        positions=tuple(positions),
        orders=tuple(orders),
    )
    labels = {c: i.local_symbol or i.symbol for c, i in instruments.items()}
    return DrillBook("state", where, spec, tuple(instruments.values()), nlv, tuple(notes), labels)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _missing(exc: Exception) -> str:
    return f"{exc.args[0]} is missing" if isinstance(exc, KeyError) else str(exc)


def build_simulator(book: DrillBook, clock: Any, *, watchdog_client_id: int) -> tuple[Simulator, list[str]]:
    """A simulator holding the book (not started). Returns it with notes on what could not be reproduced.

    The watchdog's own working orders are left out (the rehearsal's daemon would adopt them as its
    own); an order the simulator refuses is noted, not fatal."""
    spec = book.scenario
    # the gateway setting docs/deployment.md asks for: the watchdog is the Master API client, so it
    # sees every client's fills and order status (a scenario file may set another master to rehearse that)
    master = watchdog_client_id if spec.master_client_id is None else spec.master_client_id
    sim = Simulator(spec.accounts, clock, cash=spec.cash, fill=replace(spec.fill), master_client_id=master)
    for inst in book.instruments:
        if sim.universe.by_con_id.get(inst.con_id) is None:
            sim.universe.add(inst)
    notes: list[str] = []
    sim.set_session("regular")
    for key, price in spec.prices:
        sim.set_price(key, price)
    for pos in spec.positions:
        sim.set_position(**pos)
    for order in spec.orders:
        if int(order.get("client_id", 0)) == watchdog_client_id:
            notes.append(f"left out a working order of the watchdog's own client id: {order}")
            continue
        kw = {k: v for k, v in order.items() if v is not None}
        try:
            sim.place_order_as(**kw)
        except (SimulatorError, TypeError) as exc:
            notes.append(f"order not reproduced ({exc}): {order}")
    for account, nlv in book.net_liquidation.items():
        if account in sim.book.accounts:
            now = float(sim.account_values(account).get("NetLiquidation", "0") or 0)
            cash = float(sim.account_values(account).get("TotalCashValue", "0") or 0)
            sim.set_account_value(account, "TotalCashValue", cash + nlv - now)
    return sim, notes


def rehearsed(book: DrillBook, sim: Simulator, setup_notes: Sequence[str]) -> dict[str, Any]:
    """The book as the simulator holds it after set-up: what every scenario really rehearses.

    Read back, not the file's rows: an order the simulator refused, a working order of the watchdog's
    own client id left out, two rows of one position (the simulator keeps the last) all show as they
    were rehearsed, and the set-up notes say why."""
    notes = [*book.notes, *setup_notes]
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(book.scenario.positions):
        symbol = row.get("symbol")
        key = (
            str(row.get("account")),
            str(book.labels.get(symbol, symbol) if isinstance(symbol, int) else symbol),
        )
        if key in seen:
            notes.append(
                f"positions[{i}] repeats {key[1]} in {key[0]} (first at positions[{seen[key]}]): the "
                "simulator holds one position per account and contract, the last row's quantity"
            )
        seen.setdefault(key, i)

    def label(con_id: int, symbol: str) -> str:
        inst = sim.universe.by_con_id.get(con_id)
        return (inst.local_symbol or inst.symbol) if inst is not None else symbol

    return {
        "source": book.source,
        "origin": book.origin,
        "accounts": list(sim.book.accounts),
        "positions": [
            {
                "account": p.account,
                "symbol": label(p.con_id, p.symbol),
                "con_id": p.con_id,
                "quantity": p.quantity,
                "avg_cost": p.avg_cost,
                "mark": p.market_price,
            }
            for p in sim.positions()
        ],
        "orders": [
            {
                "account": o.account,
                "client_id": o.client_id,
                "symbol": label(o.con_id, o.symbol),
                "action": o.action,
                "remaining": o.quantity - o.filled,
                "order_type": o.order_type,
                "lmt_price": o.lmt_price,
            }
            for o in sim.open_orders()
        ],
        "notes": notes,
    }
