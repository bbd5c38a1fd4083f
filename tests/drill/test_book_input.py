"""Bad drill input is refused before any scenario runs, naming the file and the row (issue 18 review)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import write_config
from tests.drill.conftest import EXAMPLE, run_drill
from watchdog.config.load import load_config
from watchdog.config.schema import Config
from watchdog.drill.book import load_drill_book
from watchdog.drill.book_check import MAX_SCENARIO_BYTES, BookError
from watchdog.state.book import BOOK_FILE, BOOK_VERSION

HEAD = "name: x\naccounts: [DU111111, DU222222]\n"


def good_book() -> dict[str, Any]:
    stock = {"con_id": 990001, "symbol": "XYZQ", "sec_type": "STK", "currency": "USD", "exchange": "SMART"}
    return {
        "version": BOOK_VERSION,
        "snapshot_taken_at": time.time(),
        "accounts": {
            "DU111111": {"currency": "USD", "net_liquidation": 500000.0},
            "DU222222": {"currency": "USD", "net_liquidation": 250000.0},
        },
        "positions": [
            {
                "account": "DU111111",
                "contract": stock,
                "quantity": 300,
                "avg_cost": 10.0,
                "market_price": 12.0,
            }
        ],
        "orders": [
            {
                "client_id": 7,
                "account": "DU111111",
                "contract": stock,
                "action": "BUY",
                "remaining": 10,
                "order_type": "LMT",
                "lmt_price": 5.0,
            }
        ],
        "left_out": {"positions": 0, "orders": 0},
    }


def config_in(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path, 4002))


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            "positions:\n  - {account: DU111111, symbol: AAPL, quantity: .nan}\n",
            "positions[0]: quantity must be a finite",
        ),
        (
            "positions:\n  - {account: DU111111, symbol: AAPL, quantity: 1.0e+12}\n",
            "positions[0]: quantity must be a finite",
        ),
        (
            "positions:\n  - {account: DU111111, symbol: AAPL, quantity: '100'}\n",
            "positions[0]: quantity must be a number",
        ),
        (
            "positions:\n  - {account: DU111111, symbol: ZZZZ, quantity: 100}\n",
            "positions[0]: unknown contract 'ZZZZ'",
        ),
        (
            "positions:\n  - {account: DU999999, symbol: AAPL, quantity: 100}\n",
            "positions[0]: account 'DU999999'",
        ),
        ("positions:\n  - {symbol: AAPL, quantity: 100}\n", "positions[0]: account None"),
        (
            "positions:\n  - {account: DU111111, symbol: AAPL, quantity: 1, colour: red}\n",
            "unknown key(s) colour",
        ),
        (
            "orders:\n  - {client_id: 7, account: DU111111, symbol: AAPL, action: BUY, quantity: 1,"
            " lmt_price: .inf}\n",
            "orders[0]: lmt_price must be a finite",
        ),
        (
            "orders:\n  - {client_id: 7, account: DU111111, symbol: AAPL, action: HOLD, quantity: 1}\n",
            "orders[0]: action must be BUY or SELL",
        ),
        ("prices: {AAPL: -5}\n", "prices[AAPL]: price must be above 0"),
        ("fill: {partial_fills: abc}\n", "invalid literal"),
        ("positions: [\n", "invalid YAML"),
    ],
)
def test_a_bad_scenario_file_is_refused_naming_the_file_and_the_row(
    tmp_path: Path, body: str, why: str
) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(HEAD + body)
    with pytest.raises(BookError) as caught:
        load_drill_book(config_in(tmp_path), "scenario", str(path))
    assert str(caught.value).startswith(str(path)) and why in str(caught.value), str(caught.value)


def test_a_scenario_file_that_is_a_device_or_too_big_is_refused_at_once(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    with pytest.raises(BookError, match="not a regular file"):
        load_drill_book(config, "scenario", str(zero))
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(BookError, match="not a regular file"):
        load_drill_book(config, "scenario", str(fifo))
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(MAX_SCENARIO_BYTES + 1)
    with pytest.raises(BookError, match="a scenario file is at most 4,194,304"):
        load_drill_book(config, "scenario", str(big))


def _mutate(book: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    node: Any = book
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        ("positions.0.quantity", float("nan"), "positions[0]: quantity must be a finite"),
        ("positions.0.account", KeyError, "positions[0]: account is missing"),
        ("positions.0.account", "DU999999", "positions[0]: account 'DU999999'"),
        ("positions.0.quantity", "300", "positions[0]: quantity must be a number"),
        ("orders.0.account", KeyError, "orders[0]: account is missing"),
        ("orders.0.remaining", float("inf"), "orders[0]: quantity must be a finite"),
        (
            "accounts.DU111111.net_liquidation",
            float("nan"),
            "accounts.DU111111: net_liquidation must be a finite",
        ),
    ],
)
def test_a_bad_state_book_is_refused_naming_the_row(tmp_path: Path, path: str, value: Any, why: str) -> None:
    config = config_in(tmp_path)
    book = good_book()
    _mutate(book, path, value)
    state = Path(config.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / BOOK_FILE).write_text(json.dumps(book))
    with pytest.raises(BookError) as caught:
        load_drill_book(config, "state", None)
    assert str(caught.value).startswith(str(state / BOOK_FILE)) and why in str(caught.value), str(
        caught.value
    )


def test_the_good_state_book_loads(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    Path(config.state_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.state_dir) / BOOK_FILE).write_text(json.dumps(good_book()))
    assert load_drill_book(config, "state", None).scenario.positions[0]["quantity"] == 300


@pytest.mark.integration
def test_the_command_exits_2_before_any_scenario_on_a_book_linked_to_dev_zero(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "book.json").symlink_to("/dev/zero")
    run = run_drill(tmp_path, "--config", str(EXAMPLE), "--book", "state", timeout=30)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "book.json" in run.stderr and "Traceback" not in run.stderr
    assert "PASS" not in run.stdout and not run.report_dir.exists()
    nan = tmp_path / "nan.yaml"
    nan.write_text(HEAD + "positions:\n  - {account: DU111111, symbol: AAPL, quantity: .nan}\n")
    run = run_drill(tmp_path, "--config", str(EXAMPLE), "--book", "scenario", str(nan), timeout=30)
    assert run.returncode == 2 and f"{nan}: positions[0]: quantity" in run.stderr, run.stderr
    assert "PASS" not in run.stdout and not run.report_dir.exists()
