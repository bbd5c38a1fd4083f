"""Strict checks of a drill book before any scenario runs: bad input is one clear error (exit 2) naming
the file and the row, never a crash or a failed scenario half-way through the drill.

A scenario file is read as a regular file of at most `MAX_SCENARIO_BYTES` (a link to /dev/zero or a
FIFO is refused at once); `book.json` goes through the state directory's hardened reader.
"""

from __future__ import annotations

import math
import os
import stat
import time
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from watchdog.config.schema import Config
from watchdog.sim import Scenario, ScenarioError, Simulator
from watchdog.sim.scenario import parse_scenario

MAX_SCENARIO_BYTES = 4 * 1024 * 1024
MAX_ROWS = 2000  # positions, orders, prices: as many as the daemon's book.json keeps of each
MAX_QUANTITY = 1e9  # contracts or shares in one row: more is a typo, not a book
MAX_PRICE = 1e9  # base currency per unit
POSITION_KEYS = frozenset({"account", "symbol", "quantity", "avg_cost", "avg_price"})
ORDER_KEYS = frozenset(
    {
        "client_id",
        "account",
        "symbol",
        "action",
        "quantity",
        "order_type",
        "lmt_price",
        "aux_price",
        "outside_rth",
        "order_ref",
        "exchange",
        "tif",
    }
)


class BookError(ValueError):
    """The book cannot be used (missing, damaged, or not the config's accounts); the message says where."""


def read_scenario_file(path: str) -> Scenario:
    """The scenario file at `path`, parsed; BookError naming it when it is not a small regular file or
    not a valid scenario. Opened non-blocking (a FIFO does not hang) and checked on its descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BookError(f"{path}: cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BookError(f"{path}: not a regular file (a device, FIFO or directory is never a book)")
        if st.st_size > MAX_SCENARIO_BYTES:
            raise BookError(
                f"{path}: {st.st_size:,} bytes; a scenario file is at most {MAX_SCENARIO_BYTES:,}"
            )
        chunks, total = [], 0
        while total <= MAX_SCENARIO_BYTES:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_SCENARIO_BYTES:
            raise BookError(f"{path}: grew past {MAX_SCENARIO_BYTES:,} bytes while read")
    except OSError as exc:
        raise BookError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        data = yaml.safe_load(b"".join(chunks).decode("utf-8")) or {}
        return parse_scenario(data, path)
    except UnicodeDecodeError as exc:
        raise BookError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise BookError(f"{path}: invalid YAML: {exc}") from None
    except ScenarioError as exc:
        raise BookError(str(exc)) from None
    except (ValueError, TypeError) as exc:  # a number the simulator's parser could not take
        raise BookError(f"{path}: {exc}") from None


def _number(row: Mapping[str, Any], key: str, where: str, *, required: bool, positive: bool = False) -> None:
    value = row.get(key)
    if value is None:
        if required:
            raise BookError(f"{where}: {key} is missing")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BookError(f"{where}: {key} must be a number, got {value!r}")
    bound = MAX_QUANTITY if key == "quantity" else MAX_PRICE
    if not math.isfinite(value) or abs(value) > bound:
        raise BookError(f"{where}: {key} must be a finite number of at most {bound:g}, got {value!r}")
    if positive and value <= 0:
        raise BookError(f"{where}: {key} must be above 0, got {value!r}")


def check_book(
    where: str,
    config: Config,
    scenario: Scenario,
    known: Sequence[Any] = (),
    net_liquidation: Mapping[str, float] | None = None,
) -> None:
    """Every row typed, finite and bounded, of a book account the config watches, on a contract the
    simulator knows or the snapshot adds (`known`: its instruments). BookError names `where` and the row."""
    probe = Simulator(scenario.accounts, time.time)
    for inst in known:
        probe.universe.add(inst)
    accounts = set(scenario.accounts)
    watched = set(config.gateway.accounts) or accounts
    for name, rows in (
        ("positions", scenario.positions),
        ("orders", scenario.orders),
        ("prices", scenario.prices),
    ):
        if len(rows) > MAX_ROWS:
            raise BookError(f"{where}: {len(rows):,} {name}; a drill book holds at most {MAX_ROWS:,} of each")

    def row_common(row: Mapping[str, Any], at: str, allowed: frozenset[str]) -> None:
        unknown = sorted(str(k) for k in set(row) - allowed)
        if unknown:
            raise BookError(
                f"{at}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )
        account = row.get("account")
        if not isinstance(account, str) or account not in accounts:
            raise BookError(
                f"{at}: account {account!r} is not one of the book's ({', '.join(sorted(accounts))})"
            )
        if account not in watched:
            raise BookError(
                f"{at}: account {account} is not one the config watches ({', '.join(sorted(watched))})"
            )
        symbol = row.get("symbol")
        if (
            isinstance(symbol, bool)
            or not isinstance(symbol, int | str)
            or probe.universe.find(symbol) is None
        ):
            raise BookError(f"{at}: unknown contract {symbol!r} (neither in the simulator nor in the book)")
        _number(row, "quantity", at, required=True, positive=allowed is ORDER_KEYS)

    for i, row in enumerate(scenario.positions):
        at = f"{where}: positions[{i}]"
        row_common(row, at, POSITION_KEYS)
        _number(row, "avg_cost", at, required=False)
        _number(row, "avg_price", at, required=False)
    for i, row in enumerate(scenario.orders):
        at = f"{where}: orders[{i}]"
        row_common(row, at, ORDER_KEYS)
        if isinstance(row.get("client_id"), bool) or not isinstance(row.get("client_id", 0), int):
            raise BookError(f"{at}: client_id must be a whole number, got {row.get('client_id')!r}")
        if row.get("action") not in ("BUY", "SELL"):
            raise BookError(f"{at}: action must be BUY or SELL, got {row.get('action')!r}")
        for key in ("lmt_price", "aux_price"):
            _number(row, key, at, required=False)
        for key in ("order_type", "order_ref", "tif", "exchange"):
            if row.get(key) is not None and not isinstance(row.get(key), str):
                raise BookError(f"{at}: {key} must be text, got {row.get(key)!r}")
        if not isinstance(row.get("outside_rth", False), bool):
            raise BookError(f"{at}: outside_rth must be true or false, got {row.get('outside_rth')!r}")
    for contract, price in scenario.prices:
        if probe.universe.find(contract) is None:
            raise BookError(f"{where}: prices: unknown contract {contract!r}")
        _number({"price": price}, "price", f"{where}: prices[{contract}]", required=True, positive=True)
    if not math.isfinite(scenario.cash):
        raise BookError(f"{where}: cash must be a finite number, got {scenario.cash!r}")
    for account, value in (net_liquidation or {}).items():
        _number({"net_liquidation": value}, "net_liquidation", f"{where}: accounts.{account}", required=True)
