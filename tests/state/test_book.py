"""book.json: a bounded copy of the daemon's last book that the drill rehearses on; damage is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from watchdog.errors import StateError
from watchdog.model import AccountState, ContractRef, OpenOrder, Position, Snapshot
from watchdog.state.book import BOOK_FILE, BookWriter, book_from_snapshot, contract_from, load_book
from watchdog.state.files import StateDirectory

AAPL = ContractRef(con_id=265598, symbol="AAPL", sec_type="STK", primary_exchange="NASDAQ")


def _snapshot(n_positions: int = 2, price: float = 190.0) -> Snapshot:
    positions = (
        *tuple(
            Position(
                account="DU1", contract=ContractRef(con_id=i + 1, symbol=f"S{i}", sec_type="STK"), quantity=10
            )
            for i in range(n_positions - 1)
        ),
        Position(account="DU1", contract=AAPL, quantity=200, avg_cost=182.5, market_price=price),
    )
    orders = (
        OpenOrder(
            order_id=5,
            perm_id=77,
            client_id=7,
            account="DU1",
            contract=AAPL,
            action="SELL",
            total_quantity=50,
            remaining=50,
            order_type="LMT",
            lmt_price=210.0,
            status="Submitted",
        ),
        OpenOrder(
            order_id=6,
            perm_id=78,
            client_id=7,
            account="DU1",
            contract=AAPL,
            action="BUY",
            total_quantity=1,
            status="Cancelled",
        ),
    )
    accounts = {"DU1": AccountState(account="DU1", net_liquidation=1_000_000.0)}
    return Snapshot(taken_at=100.0, accounts=accounts, positions=positions, open_orders=orders)


def test_the_book_keeps_positions_working_orders_contracts_and_marks() -> None:
    body = book_from_snapshot(_snapshot())
    [*_, aapl] = body["positions"]
    assert aapl["contract"]["con_id"] == 265598 and aapl["contract"]["primary_exchange"] == "NASDAQ"
    assert (aapl["quantity"], aapl["avg_cost"], aapl["market_price"]) == (200, 182.5, 190.0)
    [order] = body["orders"]  # the cancelled one is not working: left out
    assert (order["client_id"], order["remaining"], order["lmt_price"]) == (7, 50, 210.0)
    assert body["accounts"]["DU1"]["net_liquidation"] == 1_000_000.0
    assert contract_from(aapl["contract"], "x") == AAPL


def test_the_book_is_bounded_and_says_how_much_it_left_out() -> None:
    body = book_from_snapshot(_snapshot(n_positions=12), limit=5)
    assert len(body["positions"]) == 5
    assert body["left_out"] == {"positions": 7, "orders": 0}


def test_the_writer_rewrites_a_changed_book_at_once_and_marks_once_a_minute(tmp_path: Path) -> None:
    writer = BookWriter(StateDirectory(tmp_path))
    assert writer.save(_snapshot(), now=1.0)
    assert not writer.save(_snapshot(), now=2.0)  # same book a second later: no rewrite
    assert not writer.save(_snapshot(price=191.0), now=3.0)  # only a mark moved: waits for the refresh
    assert writer.save(_snapshot(n_positions=3), now=4.0)  # a new position: at once
    assert writer.save(_snapshot(n_positions=3, price=191.0), now=4.0 + 61)  # marks refreshed each minute
    assert load_book(tmp_path)["positions"][-1]["market_price"] == 191.0


def test_a_writer_that_cannot_write_reports_and_carries_on(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    assert not BookWriter(StateDirectory(blocked / "state")).save(_snapshot(), now=1.0)


def test_a_link_in_place_of_the_book_is_replaced_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / BOOK_FILE).symlink_to(target)
    assert BookWriter(StateDirectory(state)).save(_snapshot(), now=1.0)
    assert target.read_text() == "keep me"
    assert not (state / BOOK_FILE).is_symlink() and load_book(state)["version"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "damaged"),
        (b'{"version": 99, "accounts": {}, "positions": [], "orders": []}', "another version"),
        (
            b'{"version": 1, "accounts": {}, "positions": {}, "orders": []}',
            "positions is missing or not a list",
        ),
    ],
)
def test_a_damaged_book_is_refused_naming_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / BOOK_FILE).write_bytes(content)
    with pytest.raises(StateError, match=message) as err:
        load_book(tmp_path)
    assert str(tmp_path / BOOK_FILE) in str(err.value)


def test_a_missing_book_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no book snapshot"):
        load_book(tmp_path)


def test_the_file_is_plain_json(tmp_path: Path) -> None:
    BookWriter(StateDirectory(tmp_path)).save(_snapshot(), now=5.0)
    data = json.loads((tmp_path / BOOK_FILE).read_text())
    assert data["updated"] == 5.0 and data["version"] == 1


@pytest.mark.parametrize("how", ["fifo", "symlink"])
def test_the_book_is_read_through_the_hardened_reader(tmp_path: Path, how: str) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"version": 1, "accounts": {}, "positions": [], "orders": []}')
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    if how == "fifo":
        os.mkfifo(state / BOOK_FILE)  # `drill --book state` waited for a writer for ever
    else:
        (state / BOOK_FILE).symlink_to(outside)
    with pytest.raises(StateError, match=r"not a regular file|symbolic link"):
        load_book(state)
